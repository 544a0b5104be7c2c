"""One typed settings object: defaults, then the TOML file, then WEERBAAR_* environment variables.

Secrets (platform tokens, SMTP password) are read only from the environment. A secret found in the TOML file is an
error, so that nobody commits one by accident.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
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


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the file and field."""


class SourceSettings(BaseModel):
    """One collector: its type, whether it runs, how often, and how long it may stay silent."""

    model_config = ConfigDict(extra="allow")

    type: str
    enabled: bool = True
    # Fractions are allowed (0.05 is three seconds), so tests and trials need not wait a minute between runs.
    interval_minutes: float = Field(default=15, gt=0)
    silence_hours: float = Field(default=24, gt=0)


class ClassifierSettings(BaseModel):
    """Which model scores mentions, and where a label starts."""

    model: str = "weerbaar-onnx"
    model_path: Path = Path("models/weerbaar-e5-ft")
    batch_size: int = Field(default=32, ge=1)
    # A category's label is set when its probability is at or over its threshold.
    thresholds: dict[str, float] = Field(default_factory=lambda: {"aggression": 0.45, "threat": 0.69})
    # Score bands shown in digests: a probability at or over a band's floor gets that band.
    bands: dict[str, float] = Field(default_factory=lambda: {"high": 0.85, "medium": 0.65, "low": 0.0})


class DigestSettings(BaseModel):
    """Where and when the daily digest is written."""

    directory: Path = Path("var/digests")
    send_at: str = "07:30"


class WebSettings(BaseModel):
    """The review desk (`weerbaar web`): its public address, cookies, proxy and login limits.

    The key that signs session cookies is a secret: WEERBAAR_WEB_SECRET, from the environment only.
    """

    model_config = ConfigDict(extra="forbid")

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
    classifier: ClassifierSettings = ClassifierSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
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
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise SettingsError(f"{path}: configuration file not found")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        for name in SECRET_FIELDS:
            if name in data:
                raise SettingsError(
                    f"{path}: field '{name}' is a secret; set WEERBAAR_{name.upper()} in the environment instead"
                )
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise SettingsError(f"{path or 'settings'}: {exc}") from None
    finally:
        _CONFIG_FILE["path"] = None
