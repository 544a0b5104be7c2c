"""Exports of research tools: 4CAT datasets (CSV or NDJSON) and Zeeschuimer captures (NDJSON).

Researchers collect posts with these tools and run our classifier over them. Each export is read like a file source:
the cursor is the number of lines consumed, and a record that cannot become a mention is quarantined with its line.

4CAT CSV columns (its `map_item` output): ``id``, ``thread_id``, ``timestamp`` (UTC, "YYYY-MM-DD HH:MM:SS") or
``created_at`` (ISO 8601), ``unix_timestamp``, ``author``, ``author_fullname``, ``author_id``, ``body``, ``link`` (or
``url``), ``language_guess``, ``replied_user`` (X) or ``replied_to_user`` (Bluesky). 4CAT's NDJSON holds the raw
items: an X GraphQL tweet (with ``__import_meta`` when it came from Zeeschuimer) or a Bluesky post view.

Zeeschuimer NDJSON: one item a line with ``item_id``, ``source_platform`` ("twitter.com", "x.com", "bsky.app"),
``timestamp_collected`` (ms) and ``data``, the platform's raw item.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import sqlite_utils

from monitor.mentions import Mention, MentionError, make_mention
from monitor.pipeline import register_source_type
from monitor.settings import Settings, SourceSettings

from .files import BATCH_SIZE, FileSource, parse_generic

EXPORT_FORMATS = ("generic", "4cat", "zeeschuimer")
ZEESCHUIMER_PLATFORMS = {"twitter.com": "x", "x.com": "x", "bsky.app": "bluesky"}
_HOSTS = {"x.com": "x", "twitter.com": "x", "mobile.twitter.com": "x", "bsky.app": "bluesky"}
X_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


class ExportFormatError(ValueError):
    """The export's format cannot be recognised; the message names the file."""


# -- X and Bluesky raw items, as Zeeschuimer and 4CAT's NDJSON keep them ---------------------------------------------


def parse_x_tweet(tweet: dict, raw: object) -> Mention:
    """Turn an X GraphQL tweet result (legacy.full_text, core.user_results...) into a mention."""
    if "legacy" not in tweet and isinstance(tweet.get("tweet"), dict):
        tweet = tweet["tweet"]  # TweetWithVisibilityResults wraps the tweet one level deeper
    legacy = tweet.get("legacy") or {}
    user = ((tweet.get("core") or {}).get("user_results") or {}).get("result") or {}
    # X moved screen_name from user.legacy to user.core in 2025; exports from either era exist.
    screen_name = (user.get("legacy") or {}).get("screen_name") or (user.get("core") or {}).get("screen_name")
    # Posts over 280 characters keep their full text in note_tweet; legacy.full_text is cut short.
    note = (((tweet.get("note_tweet") or {}).get("note_tweet_results") or {}).get("result") or {}).get("text")
    post_id = tweet.get("rest_id") or legacy.get("id_str")
    replied = legacy.get("in_reply_to_screen_name")
    return make_mention(
        platform="x",
        post_id=post_id,
        text=note or legacy.get("full_text"),
        created_at=_x_time(legacy.get("created_at")),
        raw=raw,
        target_handle=f"@{replied}" if replied else None,
        author_handle=f"@{screen_name}" if screen_name else None,
        author_id=legacy.get("user_id_str") or user.get("rest_id"),
        url=f"https://x.com/{screen_name}/status/{post_id}" if screen_name and post_id else None,
        in_reply_to=legacy.get("in_reply_to_status_id_str"),
        lang=legacy.get("lang"),
    )


def _x_time(value: object) -> object:
    """Return X's created_at as ISO 8601, or the value unchanged so make_mention names the bad field."""
    if not isinstance(value, str):
        return value
    try:
        return dt.datetime.strptime(value, X_TIME_FORMAT).isoformat()
    except ValueError:
        return value


def parse_bluesky_post(post: dict, raw: object, reply_to_handle: str | None = None) -> Mention:
    """Turn a Bluesky post view (uri, author, record) or feed item ({post, reply}) into a mention."""
    if "uri" not in post and isinstance(post.get("post"), dict):
        parent_author = (((post.get("reply") or {}).get("parent") or {}).get("author") or {}).get("handle")
        reply_to_handle = reply_to_handle or parent_author
        post = post["post"]
    record = post.get("record") or {}
    author = post.get("author") or {}
    uri, handle = post.get("uri"), author.get("handle")
    reply_to_handle = reply_to_handle or (post.get("4CAT_metadata") or {}).get("reply_to")
    langs = record.get("langs") or []
    return make_mention(
        platform="bluesky",
        post_id=uri,
        text=record.get("text"),
        created_at=record.get("createdAt") or record.get("created_at"),
        raw=raw,
        target_handle=reply_to_handle,
        author_handle=handle,
        author_id=author.get("did"),
        url=f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}" if handle and uri else None,
        in_reply_to=((record.get("reply") or {}).get("parent") or {}).get("uri"),
        lang=langs[0] if langs else None,
    )


# -- Zeeschuimer ------------------------------------------------------------------------------------------------------


def parse_zeeschuimer_item(item: dict, raw: object) -> Mention:
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
    return parse_x_tweet(data, raw) if platform == "x" else parse_bluesky_post(data, raw)


# -- 4CAT --------------------------------------------------------------------------------------------------------------


def parse_4cat_record(record: dict, raw: object, platform: str | None = None) -> Mention:
    """Turn one 4CAT CSV row or NDJSON item into a mention; PLATFORM is used when the row cannot tell."""
    if not isinstance(record, dict):
        raise MentionError("(record)", "not a JSON object")
    meta = record.get("__import_meta")
    if isinstance(meta, dict):
        # 4CAT stores a Zeeschuimer item as its data with the Zeeschuimer envelope under __import_meta.
        data = {key: value for key, value in record.items() if key != "__import_meta"}
        return parse_zeeschuimer_item({**meta, "data": data}, raw)
    if "rest_id" in record and "legacy" in record:
        return parse_x_tweet(record, raw)
    if isinstance(record.get("record"), dict) and str(record.get("uri", "")).startswith("at://"):
        return parse_bluesky_post(record, raw)
    return _parse_4cat_row(record, raw, platform)


def _parse_4cat_row(row: dict, raw: object, platform: str | None) -> Mention:
    link = (row.get("link") or row.get("url") or "").strip()
    platform = platform or _platform_of(link, str(row.get("id") or ""))
    if platform is None:
        raise MentionError("link", "cannot tell the platform from 'link' or 'id'; give the export's platform")
    unix = str(row.get("unix_timestamp") or "").strip()
    if unix.isdigit():
        created_at: object = dt.datetime.fromtimestamp(int(unix), dt.timezone.utc).isoformat()
    else:
        created_at = row.get("created_at") or row.get("timestamp")
    author = (row.get("author") or "").strip() or None
    replied = (row.get("replied_user") or row.get("replied_to_user") or "").strip() or None
    if platform == "x":
        author = f"@{author.lstrip('@')}" if author else None
        replied = f"@{replied.lstrip('@')}" if replied else None
    lang = (row.get("language_guess") or row.get("lang") or "").strip()
    return make_mention(
        platform=platform,
        post_id=row.get("id"),
        text=row.get("body"),
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
            "zeeschuimer": parse_zeeschuimer_item,
        }[export_format]


def detect_format(path: str | Path) -> str:
    """Return 'generic', '4cat' or 'zeeschuimer' for an export, judged by its columns or first record."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    if path.suffix.lower() == ".csv":
        columns = {column.strip().lower() for column in first.strip().split(",")}
        if "body" in columns:
            return "4cat"
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
        if {"__import_meta", "rest_id", "body"} & set(record) or "uri" in record:
            return "4cat"
        if {"platform", "text"} <= set(record):
            return "generic"
    raise ExportFormatError(f"{path}: not a 4CAT, Zeeschuimer or generic export; give --format")


def open_export(path: str | Path, export_format: str = "auto", platform: str | None = None) -> ExportSource:
    """Return a source that reads the export at PATH once, named after the file."""
    path = Path(path).resolve()
    chosen = detect_format(path) if export_format == "auto" else export_format
    return ExportSource(f"import:{path.name}", path, chosen, platform)


def _export_source_type(export_format: str):
    def factory(name: str, config: SourceSettings, settings: Settings, db: sqlite_utils.Database) -> ExportSource:
        path = getattr(config, "path", None)
        if not path:
            raise ValueError(f"source {name!r}: field 'path' is required for type {export_format!r}")
        return ExportSource(name, settings.resolve(Path(path)), export_format, getattr(config, "platform", None))

    return factory


register_source_type("4cat", _export_source_type("4cat"))
register_source_type("zeeschuimer", _export_source_type("zeeschuimer"))
