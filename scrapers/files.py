"""Files of posts: the bundled sample, the generic format, and exports from research tools.

The generic format is JSON Lines (or CSV with the same column names), one post a line:
``platform`` (x, mastodon, bluesky), ``id``, ``text``, ``created_at`` (ISO 8601) are required;
``author``, ``author_id``, ``url``, ``target`` (the official's handle), ``in_reply_to`` and ``lang`` are optional.
Without ``target`` the official is found from the @handles in the text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlite_utils

from monitor.mentions import Mention, MentionError, make_mention
from monitor.settings import FileSourceSettings, Settings

from .base import Batch, Quarantined

BATCH_SIZE = 200


def parse_generic(record: dict, raw: object) -> Mention:
    """Turn one generic-format record into a mention; raise MentionError naming the bad field."""
    if not isinstance(record, dict):
        raise MentionError("(record)", "not a JSON object")
    return make_mention(
        platform=str(record.get("platform", "")).strip().lower(),
        post_id=record.get("id"),
        text=record.get("text"),
        created_at=record.get("created_at"),
        raw=raw,
        target_handle=record.get("target") or None,
        author_handle=record.get("author") or None,
        author_id=record.get("author_id") or None,
        url=record.get("url") or None,
        in_reply_to=record.get("in_reply_to") or None,
        lang=record.get("lang") or None,
    )


def file_source(name: str, config: FileSourceSettings, settings: Settings, db: sqlite_utils.Database) -> FileSource:
    """Build a file source from its [sources.NAME] table (the entry of scrapers.source_types)."""
    return FileSource(name, settings.resolve(config.path))


class FileSource:
    """Read posts from a JSONL or CSV file in the generic format; the cursor is the number of lines consumed."""

    def __init__(self, name: str, path: str | Path, batch_size: int = BATCH_SIZE):
        self.name = name
        self.path = Path(path)
        self.batch_size = batch_size
        # Subclasses for other export formats swap in their own record parser.
        self.parse: Callable[[dict, object], Mention | None] = parse_generic

    def fetch(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of mentions from the lines after CURSOR."""
        start = _cursor_line(cursor, self.path)
        batch = Batch()
        for line_no, record, raw, error in self._records():
            if line_no <= start:
                continue
            if error is None:
                try:
                    mention = self.parse(record, raw)
                    if mention is not None:  # None: a record that is not a mention (a retweet), skipped
                        batch.mentions.append(mention)
                except MentionError as exc:
                    error = str(exc)
                except (AttributeError, TypeError, KeyError) as exc:
                    # A field of the wrong JSON type deep in a payload; the line is kept for a person to see.
                    error = f"unexpected structure: {type(exc).__name__}: {exc}"
            if error is not None:
                batch.quarantined.append(Quarantined(f"{self.path}:{line_no}", error, _printable(raw)))
            batch.cursor = json.dumps({"path": str(self.path), "line": line_no})
            if len(batch.mentions) + len(batch.quarantined) >= self.batch_size:
                yield batch
                batch = Batch()
        if batch.mentions or batch.quarantined:
            yield batch

    def _records(self) -> Iterator[tuple[int, dict | None, bytes, str | None]]:
        """Yield (line number, parsed record, raw bytes, error) for every non-empty line."""
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: file not found")
        if self.path.suffix.lower() == ".csv":
            yield from self._csv_records()
            return
        with self.path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                raw = raw.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield line_no, None, raw, f"not valid UTF-8 at byte {exc.start}"
                    continue
                try:
                    yield line_no, json.loads(text), raw, None
                except json.JSONDecodeError as exc:
                    yield line_no, None, raw, f"not valid JSON: {exc.msg} at column {exc.colno}"

    def _csv_records(self) -> Iterator[tuple[int, dict | None, bytes, str | None]]:
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line_no = data[: exc.start].count(b"\n") + 1
            yield line_no, None, b"", f"not valid UTF-8 at byte {exc.start}"
            return
        first_line = text.split("\n", 1)[0]
        reader = csv.DictReader(io.StringIO(text), delimiter=csv_delimiter(first_line))
        for row in reader:
            yield reader.line_num, dict(row), json.dumps(row, ensure_ascii=False).encode("utf-8"), None


def csv_delimiter(header: str) -> str:
    """Return the delimiter of a CSV file judged by its header line: ';' (Zeeschuimer, Dutch Excel) or ','."""
    return ";" if header.count(";") > header.count(",") else ","


def _cursor_line(cursor: str | None, path: Path) -> int:
    """Return the last line consumed, or 0 when the cursor is empty or belongs to another file."""
    if not cursor:
        return 0
    try:
        state = json.loads(cursor)
    except json.JSONDecodeError:
        return 0
    return int(state.get("line", 0)) if state.get("path") == str(path) else 0


def _printable(raw: bytes) -> str:
    """Return raw bytes as text, with undecodable bytes escaped, for the quarantine table."""
    return raw.decode("utf-8", "backslashreplace")
