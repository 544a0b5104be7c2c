"""One typed settings object: defaults, then the TOML file, then WEERBAAR_* environment variables.

Secrets (platform tokens, SMTP password) are read only from the environment. A secret found in the TOML file is an
error, so that nobody commits one by accident.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path("config/weerbaar.toml")
SECRET_FIELDS = (
    "x_bearer_token",
    "mastodon_access_token",
    "bluesky_app_password",
    "smtp_password",
    "web_secret",
)
# An e-mail address as the registry and the settings accept it: something@domain.tld, no spaces.
EMAIL_ADDRESS = re.compile(r"^[^@\s;,<>]+@[^@\s;,<>]+\.[^@\s;,<>]+$")


def check_addresses(addresses: list[str]) -> list[str]:
    """Return ADDRESSES stripped; raise ValueError naming the first that is not an e-mail address."""
    clean = [a.strip() for a in addresses if a.strip()]
    for address in clean:
        if not EMAIL_ADDRESS.match(address):
            raise ValueError(f"not an e-mail address: {address!r}")
    return clean


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the file and field."""


class StrictModel(BaseModel):
    """A settings table that rejects keys it does not declare: a typo must fail, not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SourceSettings(StrictModel):
    """What every collector has: its type, whether it runs, how often, and how long it may stay silent."""

    type: str
    enabled: bool = True
    # Fractions are allowed (0.05 is three seconds), so tests and trials need not wait a minute between runs.
    interval_minutes: float = Field(default=15, gt=0)
    silence_hours: float = Field(default=24, gt=0)


class FileSourceSettings(SourceSettings):
    """A file of posts in the generic format (JSON Lines or CSV)."""

    type: Literal["file"]
    path: Path


class ExportSourceSettings(SourceSettings):
    """A research-tool export: a 4CAT dataset or a Zeeschuimer capture."""

    type: Literal["4cat", "zeeschuimer"]
    path: Path
    # The platform of a CSV whose rows cannot tell (no link or id that names it).
    platform: Literal["x", "mastodon", "bluesky"] | None = None


class PlatformSourceSettings(SourceSettings):
    """What every platform API collector has: where the API is and how patiently it is retried (scrapers.http)."""

    base_url: str | None = None
    retry_attempts: int = Field(default=4, ge=1)
    retry_wait_seconds: float = Field(default=1.0, ge=0)
    retry_max_wait_seconds: float = Field(default=30.0, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)


class XSourceSettings(PlatformSourceSettings):
    """X API v2: mentions of the consenting officials' accounts within a monthly read budget."""

    type: Literal["x"]
    monthly_read_budget: int = Field(default=10_000, ge=0)
    # X accepts 5 (mentions) or 10 (search) up to 100 posts a page; a smaller page is raised to the minimum.
    page_size: int = Field(default=100, ge=1, le=100)


class MastodonSourceSettings(PlatformSourceSettings):
    """Mastodon: authorised accounts' notifications, and hashtag timelines on one instance for the others."""

    type: Literal["mastodon"]
    instance: str | None = None
    hashtags: list[str] = Field(default_factory=list)


class BlueskySourceSettings(PlatformSourceSettings):
    """Bluesky: post search per account, or the notifications of the account we log in as."""

    type: Literal["bluesky"]
    login_handle: str | None = None
    page_size: int = Field(default=100, ge=1, le=100)


# One settings model per source type, chosen by the table's `type`.
AnySourceSettings = Annotated[
    FileSourceSettings | ExportSourceSettings | XSourceSettings | MastodonSourceSettings | BlueskySourceSettings,
    Field(discriminator="type"),
]
SOURCE_TYPE_NAMES = ("file", "4cat", "zeeschuimer", "x", "mastodon", "bluesky")
Probability = Annotated[float, Field(ge=0, le=1)]


class ClassifierSettings(StrictModel):
    """Which model scores mentions, and where a label starts."""

    model: str = "weerbaar-onnx"
    model_path: Path = Path("models/weerbaar-e5-ft")
    batch_size: int = Field(default=32, ge=1)
    # A category's label is set when its probability is at or over its threshold; the defaults are the model's own.
    thresholds: dict[str, Probability] = Field(default_factory=lambda: {
        "aggression": 0.55, "threat": 0.5333, "insult": 0.7, "identity_attack": 0.3})
    # Score bands shown in digests: a probability at or over a band's floor gets that band.
    bands: dict[str, Probability] = Field(default_factory=lambda: {"high": 0.85, "medium": 0.65, "low": 0.0})


class DigestSettings(StrictModel):
    """Where and when the daily digest is written, and who gets it by mail."""

    directory: Path = Path("var/digests")
    send_at: str = "07:30"
    # Who receive the whole digest (all officials); each official's contacts get that official's part.
    recipients: list[str] = Field(default_factory=list)
    # Days of history in the trend chart of each official.
    trend_days: int = Field(default=14, ge=2, le=90)
    # Mentions shown per official in a digest MAIL, threats first and the most probable first; the rest are counted
    # and left to the review desk, so a pile-on cannot make a mail that no server or reader takes. The digest files
    # and the desk show everything.
    mail_items_per_official: int = Field(default=25, ge=1)

    _recipients = field_validator("recipients")(check_addresses)


class MailSettings(StrictModel):
    """The SMTP server that alerts and digests are handed to; the password only from WEERBAAR_SMTP_PASSWORD."""

    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    sender: str | None = None
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    timeout_seconds: float = Field(default=30, gt=0)
    # The project's one retry policy (scrapers/http.RetryPolicy): a connection refused or a 4xx answer is retried
    # this often within one run; what still fails stays queued for the next run or `weerbaar alerts retry`.
    retry_attempts: int = Field(default=3, ge=1)
    retry_wait_seconds: float = Field(default=1.0, ge=0)
    retry_max_wait_seconds: float = Field(default=10.0, ge=0)

    @property
    def configured(self) -> bool:
        """Return whether a host and a sender are set, so that mail can be sent."""
        return bool(self.host and self.sender)


class AlertSettings(StrictModel):
    """Who is told about a threat at once, and when a day's flagged count is a spike."""

    # The support desk: every threat and spike alert goes here.
    recipients: list[str] = Field(default_factory=list)
    # Also mail the official's own address (officials.email); off by default, staff usually act first.
    notify_official: bool = False
    # A day is a spike when its flagged count is at least spike_min_count and spike_z standard deviations above the
    # official's own daily mean over the spike_baseline_days before it.
    spike_z: float = Field(default=2.0, gt=0)
    spike_min_count: int = Field(default=5, ge=1)
    spike_baseline_days: int = Field(default=56, ge=7)

    _recipients = field_validator("recipients")(check_addresses)


class WebSettings(StrictModel):
    """The review desk (`weerbaar web`): its public address, cookies, proxy and login limits.

    The key that signs session cookies is a secret: WEERBAAR_WEB_SECRET, from the environment only.
    """

    # The address staff open, e.g. "https://weerbaar.zwolle.nl"; links in digests and mails are built on it.
    base_url: str | None = None
    # Secure cookies (sent over HTTPS only). None: on when base_url starts with https://.
    secure_cookies: bool | None = None
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are believed (uvicorn's forwarded_allow_ips).
    trusted_proxies: list[str] = Field(default_factory=list)
    session_hours: float = Field(default=8, gt=0)
    # Failed logins allowed per user name and per client address within the window, before logins are refused.
    login_attempts: int = Field(default=5, ge=1)
    login_window_minutes: float = Field(default=15, gt=0)
    queue_page_size: int = Field(default=50, ge=1, le=500)

    def cookies_secure(self) -> bool:
        """Return whether session cookies carry the Secure flag."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return bool(self.base_url and self.base_url.lower().startswith("https://"))


class Settings(BaseSettings):
    """All of Weerbaar's settings."""

    model_config = SettingsConfigDict(env_prefix="WEERBAAR_", env_nested_delimiter="__", extra="forbid")

    db_path: Path = Path("var/weerbaar.db")
    timezone: str = "Europe/Amsterdam"
    retention_days: int = Field(default=365, ge=1)
    # How long a write waits for another process holding the database's write lock before the run fails.
    busy_timeout_seconds: float = Field(default=10.0, gt=0)
    classifier: ClassifierSettings = ClassifierSettings()
    digest: DigestSettings = DigestSettings()
    mail: MailSettings = MailSettings()
    alerts: AlertSettings = AlertSettings()
    web: WebSettings = WebSettings()
    sources: dict[str, AnySourceSettings] = Field(default_factory=dict)
    x_bearer_token: SecretStr | None = None
    mastodon_access_token: SecretStr | None = None
    bluesky_app_password: SecretStr | None = None
    smtp_password: SecretStr | None = None
    web_secret: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read init arguments, then the environment, then the TOML file (earlier wins)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _CONFIG_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def resolve(self, path: Path) -> Path:
        """Resolve a relative path against the working directory, or the project folder for bundled files."""
        if path.is_absolute() or path.exists():
            return path
        bundled = PROJECT_ROOT / path
        return bundled if bundled.exists() else path


_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from CONFIG_PATH (or $WEERBAAR_CONFIG, or config/weerbaar.toml if present) and the environment."""
    path = config_path or os.environ.get("WEERBAAR_CONFIG")
    if path is None:
        for candidate in (DEFAULT_CONFIG, PROJECT_ROOT / DEFAULT_CONFIG):
            if candidate.exists():
                path = candidate
                break
    text = ""
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise SettingsError(f"{path}: configuration file not found")
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        _refuse_secrets(path, text, data)
    _CONFIG_FILE["path"] = path
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_errors(path, text, exc)) from None
    except ValueError as exc:
        raise SettingsError(f"{path or 'settings'}: {exc}") from None
    finally:
        _CONFIG_FILE["path"] = None
    if path is not None:
        unknown = unknown_keys(settings, data)
        if unknown:
            raise SettingsError("\n".join(
                f"{path}{f':{line}' if (line := _line_of(text, table, key)) else ''}: "
                f"[{'.'.join(table) or 'top level'}] {key}: unknown key" for table, key in unknown))
    return settings


def unknown_keys(model: BaseModel, data: dict, table: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Return (table, key) for every key in DATA that MODEL (and the models inside it) does not declare.

    pydantic already refuses them in models that forbid extra keys; this catches them in any settings table, also
    one declared as a plain BaseModel (which would drop an unknown key silently).
    """
    found = []
    fields = type(model).model_fields
    for key, value in data.items():
        if key not in fields:
            found.append((table, key))
            continue
        current = getattr(model, key, None)
        if isinstance(current, BaseModel) and isinstance(value, dict):
            found += unknown_keys(current, value, (*table, key))
        elif isinstance(current, dict) and isinstance(value, dict):
            for name, entry in current.items():
                if isinstance(entry, BaseModel) and isinstance(value.get(name), dict):
                    found += unknown_keys(entry, value[name], (*table, key, name))
    return found


def is_secret_key(key: str) -> bool:
    """Return whether a settings key names a secret (a token, password or key) that belongs in the environment."""
    key = key.lower()
    return key in SECRET_FIELDS or key in ("password", "token", "secret", "api_key", "bearer_token") or key.endswith(
        ("_password", "_token", "_secret", "_api_key"))


def _refuse_secrets(path: Path, text: str, data: dict, table: tuple[str, ...] = ()) -> None:
    """Raise SettingsError for a secret anywhere in the TOML file, at the top level or in any table."""
    for key, value in data.items():
        if isinstance(value, dict):
            _refuse_secrets(path, text, value, (*table, key))
        elif is_secret_key(key):
            where = f"[{'.'.join(table)}] " if table else ""
            line = _line_of(text, table, key)
            env = f"WEERBAAR_{key.upper()}" if not table else "the environment"
            raise SettingsError(
                f"{path}{f':{line}' if line else ''}: {where}field '{key}' is a secret; set it in {env} instead"
                " and remove it from the file"
            )


def _line_of(text: str, table: tuple[str, ...], key: str) -> int | None:
    """Return the line of KEY in TABLE of a TOML text (best effort: plain [table] headers and key = value lines)."""
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = tuple(part.strip().strip('"') for part in stripped.strip("[]").split("."))
        elif current == table and stripped.split("=", 1)[0].strip().strip('"') == key and "=" in stripped:
            return number
    return None


def describe_errors(path: Path | None, text: str, exc: ValidationError) -> str:
    """Return a ValidationError as lines naming the file, line, table and key of each problem."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if len(loc) >= 3 and loc[0] == "sources" and loc[2] in SOURCE_TYPE_NAMES:
            loc.pop(2)  # the union member pydantic tried, named by the table's own `type`
        table, key = tuple(loc[:-1]), loc[-1] if loc else "?"
        if error["type"] == "union_tag_invalid":
            table, key = tuple(loc), "type"
            message = f"unknown source type (expected one of {', '.join(SOURCE_TYPE_NAMES)})"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = error["msg"]
        line = _line_of(text, table, key)
        where = f"{path or 'settings'}{f':{line}' if line else ''}"
        lines.append(f"{where}: [{'.'.join(table) or 'top level'}] {key}: {message}")
    return "\n".join(lines)
