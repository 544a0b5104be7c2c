"""Exports of research tools: 4CAT datasets (CSV or NDJSON) and Zeeschuimer captures (NDJSON).

Researchers collect posts with these tools and run our classifier over them. Each export is read like a file source:
the cursor is the number of lines consumed, and a record that cannot become a mention is quarantined with its line.

4CAT CSV columns (its `map_item` output): ``id``, ``thread_id``, ``timestamp`` (UTC, "YYYY-MM-DD HH:MM:SS") or
``created_at`` (ISO 8601), ``unix_timestamp``, ``author``, ``author_fullname``, ``author_id``, ``body``, ``link`` (or
``url``), ``language_guess`` (X) or ``languages`` (Bluesky, comma-separated), ``replied_user`` (X),
``replied_author`` or ``replied_to_user`` (Bluesky), ``is_retweet``. 4CAT's NDJSON holds the raw items: an X API v2
tweet (4CAT's own X search: the author inlined as ``author_user``, the replied-to account as ``in_reply_to_user``,
referenced posts inlined in ``referenced_tweets``), an X GraphQL tweet (with ``__import_meta`` when it came from
Zeeschuimer) or a Bluesky post view.

Zeeschuimer NDJSON: one item a line with ``item_id``, ``source_platform`` ("twitter.com", "x.com", "bsky.app"),
``timestamp_collected`` (ms) and ``data``, the platform's raw item. Zeeschuimer's CSV export holds the same mapped
columns as 4CAT's, separated by semicolons.

Every raw platform item is converted by its platform's own module (scrapers.twitter, scrapers.bluesky); this module
only unwraps the tools' envelopes and reads their flat CSV columns. Retweets are skipped: someone else's words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import sqlite_utils

from monitor.mentions import Mention, MentionError, make_mention
from monitor.settings import ExportSourceSettings, Settings
from monitor.times import iso_from_epoch

from . import bluesky, twitter
from .files import BATCH_SIZE, FileSource, csv_delimiter, parse_generic

EXPORT_FORMATS = ("generic", "4cat", "zeeschuimer")
ZEESCHUIMER_PLATFORMS = {"twitter.com": "x", "x.com": "x", "bsky.app": "bluesky"}
_HOSTS = {"x.com": "x", "twitter.com": "x", "mobile.twitter.com": "x", "bsky.app": "bluesky"}


class ExportFormatError(ValueError):
    """The export's format cannot be recognised; the message names the file."""


# -- X and Bluesky raw items, as Zeeschuimer and 4CAT's NDJSON keep them: each platform's own converter reads them ----


def _x_graphql_item(tweet: dict, raw: object) -> Mention | None:
    """Return the mention an X web-client tweet is, or None for a retweet (someone else's words)."""
    return None if twitter.is_retweet(tweet) else twitter.graphql_tweet_to_mention(tweet, raw)


def _x_api_v2_item(tweet: dict, raw: object) -> Mention | None:
    """Return the mention a 4CAT X API v2 tweet (with ``author_user``) is, or None for a retweet."""
    if twitter.is_retweet(tweet):
        return None
    replied_user = tweet.get("in_reply_to_user")
    replied = replied_user.get("username") if isinstance(replied_user, dict) else None
    return twitter.tweet_to_mention(tweet, {}, replied, raw=raw)


# -- Zeeschuimer ------------------------------------------------------------------------------------------------------


def parse_zeeschuimer_item(item: dict, raw: object) -> Mention | None:
    """Turn one Zeeschuimer NDJSON item into a mention; raise MentionError naming the bad field."""
    if not isinstance(item, dict):
        raise MentionError("(record)", "not a JSON object")
    source_platform = str(item.get("source_platform") or "")
    platform = ZEESCHUIMER_PLATFORMS.get(source_platform.lower())
    if platform is None:
        raise MentionError(
            "source_platform", f"{source_platform!r} is not monitored (expected {', '.join(ZEESCHUIMER_PLATFORMS)})"
        )
    data = item.get("data")
    if not isinstance(data, dict):
        raise MentionError("data", "missing or not an object")
    return _x_graphql_item(data, raw) if platform == "x" else bluesky.post_to_mention(data, None, raw)


def parse_zeeschuimer_record(record: dict, raw: object, platform: str | None = None) -> Mention | None:
    """Turn one Zeeschuimer NDJSON item, or one row of its semicolon-separated CSV export, into a mention."""
    if isinstance(record, dict) and "data" in record and "source_platform" in record:
        return parse_zeeschuimer_item(record, raw)
    if not isinstance(record, dict):
        raise MentionError("(record)", "not a JSON object")
    return _parse_4cat_row(record, raw, platform)


# -- 4CAT --------------------------------------------------------------------------------------------------------------


def parse_4cat_record(record: dict, raw: object, platform: str | None = None) -> Mention | None:
    """Turn one 4CAT CSV row or NDJSON item into a mention; PLATFORM is used when the row cannot tell."""
    if not isinstance(record, dict):
        raise MentionError("(record)", "not a JSON object")
    meta = record.get("__import_meta")
    if isinstance(meta, dict):
        # 4CAT stores a Zeeschuimer item as its data with the Zeeschuimer envelope under __import_meta.
        data = {key: value for key, value in record.items() if key != "__import_meta"}
        return parse_zeeschuimer_item({**meta, "data": data}, raw)
    if "rest_id" in record and "legacy" in record:
        return _x_graphql_item(record, raw)
    if "author_user" in record and "text" in record:
        return _x_api_v2_item(record, raw)
    if isinstance(record.get("record"), dict) and str(record.get("uri", "")).startswith("at://"):
        return bluesky.post_to_mention(record, None, raw)
    return _parse_4cat_row(record, raw, platform)


def _column(row: dict, *names: str) -> str:
    """Return the first non-empty of the columns NAMES in a CSV row, stripped ('' when none)."""
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _parse_4cat_row(row: dict, raw: object, platform: str | None) -> Mention | None:
    link = _column(row, "link", "url")
    platform = platform or _platform_of(link, str(row.get("id") or ""))
    if platform is None:
        raise MentionError("link", "cannot tell the platform from 'link' or 'id'; give the export's platform")
    if _column(row, "is_retweet").lower() == "yes":
        return None
    unix = _column(row, "unix_timestamp")
    try:
        created_at: object = iso_from_epoch(unix) if unix.isdigit() else (row.get("created_at") or row.get("timestamp"))
    except ValueError:
        raise MentionError("unix_timestamp", f"not an epoch time: {unix!r}") from None
    author = _column(row, "author") or None
    replied = _column(row, "replied_user", "replied_author", "replied_to_user") or None
    text: object = row.get("body")
    if platform == "x":
        author = f"@{author.lstrip('@')}" if author else None
        replied = f"@{replied.lstrip('@')}" if replied else None
        text = twitter.unescape_x_text(text)
    lang = _column(row, "language_guess", "languages", "lang").split(",")[0].strip()
    return make_mention(
        platform=platform,
        post_id=row.get("id"),
        text=text,
        created_at=created_at,
        raw=raw,
        target_handle=replied,
        author_handle=author,
        author_id=(row.get("author_id") or "").strip() or None,
        url=link or None,
        lang=lang if lang and lang not in ("N/A", "und") else None,
    )


def _platform_of(link: str, post_id: str) -> str | None:
    """Return the platform a 4CAT row came from, judged by its link or id."""
    if post_id.startswith("at://"):
        return "bluesky"
    parsed = urlparse(link)
    host = (parsed.hostname or "").lower().removeprefix("www.")
    if host in _HOSTS:
        return _HOSTS[host]
    # Mastodon instances have many hosts; their post links look like https://host/@user/123456.
    parts = parsed.path.strip("/").split("/")
    if len(parts) == 2 and parts[0].startswith("@") and parts[1].isdigit():
        return "mastodon"
    return None


# -- the source ----------------------------------------------------------------------------------------------------


class ExportSource(FileSource):
    """Read a research-tool export line by line; the cursor is the number of lines consumed."""

    def __init__(
        self,
        name: str,
        path: str | Path,
        export_format: str,
        platform: str | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        super().__init__(name, path, batch_size)
        if export_format not in EXPORT_FORMATS:
            raise ExportFormatError(f"{path}: unknown format {export_format!r} (expected {', '.join(EXPORT_FORMATS)})")
        self.export_format = export_format
        self.parse: Callable[[dict, object], Mention] = {
            "generic": parse_generic,
            "4cat": lambda record, raw: parse_4cat_record(record, raw, platform),
            "zeeschuimer": lambda record, raw: parse_zeeschuimer_record(record, raw, platform),
        }[export_format]


def detect_format(path: str | Path) -> str:
    """Return 'generic', '4cat' or 'zeeschuimer' for an export, judged by its columns or first record."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    if path.suffix.lower() == ".csv":
        delimiter = csv_delimiter(first)
        columns = {column.strip().strip('"').lower() for column in first.strip().split(delimiter)}
        if "body" in columns:
            # Zeeschuimer writes its CSV with semicolons, 4CAT with commas; the columns are the same.
            return "zeeschuimer" if delimiter == ";" else "4cat"
        if {"platform", "text"} <= columns:
            return "generic"
        raise ExportFormatError(f"{path}: CSV without a 'body' (4CAT) or 'platform' and 'text' (generic) column")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        raise ExportFormatError(f"{path}: the first line is not JSON; give --format") from None
    if isinstance(record, dict):
        if "source_platform" in record and "data" in record:
            return "zeeschuimer"
        if {"__import_meta", "rest_id", "body", "author_user"} & set(record) or "uri" in record:
            return "4cat"
        if {"platform", "text"} <= set(record):
            return "generic"
    raise ExportFormatError(f"{path}: not a 4CAT, Zeeschuimer or generic export; give --format")


def open_export(path: str | Path, export_format: str = "auto", platform: str | None = None) -> ExportSource:
    """Return a source that reads the export at PATH once, named after the file."""
    path = Path(path).resolve()
    chosen = detect_format(path) if export_format == "auto" else export_format
    return ExportSource(f"import:{path.name}", path, chosen, platform)


def export_source(name: str, config: ExportSourceSettings, settings: Settings,
                  db: sqlite_utils.Database) -> ExportSource:
    """Build a 4CAT or Zeeschuimer source from its [sources.NAME] table (the entry of scrapers.source_types)."""
    return ExportSource(name, settings.resolve(config.path), config.type, config.platform)
