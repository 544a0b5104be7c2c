"""Files of posts: the bundled sample, the generic format, and exports from research tools.

The generic format is JSON Lines (or CSV with the same column names), one post a line:
``platform`` (x, mastodon, bluesky), ``id``, ``text``, ``created_at`` (ISO 8601) are required;
``author``, ``author_id``, ``url``, ``target`` (the official's handle), ``in_reply_to`` and ``lang`` are optional.
Without ``target`` the official is found from the @handles in the text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlite_utils

from monitor.mentions import Mention, MentionError, make_mention
from monitor.settings import FileSourceSettings, Settings

from .base import MALFORMED, Batch, Quarantined, malformed_reason

BATCH_SIZE = 200
# A record longer than this is no post (platforms allow a few thousand characters): it is quarantined, not parsed.
MAX_RECORD_BYTES = 1_000_000
MAX_FIELD_CHARS = 100_000
# Bytes at the start and at the end of what was read whose SHA-256 tells a replaced file from a grown one.
FINGERPRINT_BYTES = 4096
log = logging.getLogger(__name__)


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
    """Read posts from a JSONL or CSV file in the generic format, from where the last committed batch ended.

    The cursor holds the last line consumed, the byte offset after it and SHA-256s of the first and last bytes read
    (up to FINGERPRINT_BYTES each). A file that is now shorter than that offset, or whose fingerprinted bytes
    changed, was truncated or replaced: it is read again from the start (the pipeline skips posts already stored).
    """

    def __init__(self, name: str, path: str | Path, batch_size: int = BATCH_SIZE):
        self.name = name
        self.path = Path(path)
        self.batch_size = batch_size
        # Subclasses for other export formats swap in their own record parser.
        self.parse: Callable[[dict, object], Mention | None] = parse_generic

    def fetch(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of mentions from the lines after CURSOR."""
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: file not found")
        start = self._resume_line(cursor)
        batch = Batch()
        last = (start, 0)
        for line_no, end_offset, record, raw, error in self._records():
            if line_no <= start:
                continue
            if error is None:
                try:
                    mention = self.parse(record, raw)
                    if mention is not None:  # None: a record that is not a mention (a retweet), skipped
                        batch.mentions.append(mention)
                except MALFORMED as exc:
                    error = malformed_reason(exc)
            if error is not None:
                batch.quarantined.append(Quarantined(f"{self.path}:{line_no}", error, _printable(raw)))
            last = (line_no, end_offset)
            if len(batch.mentions) + len(batch.quarantined) >= self.batch_size:
                batch.cursor = self._cursor(*last)
                yield batch
                batch = Batch()
        if batch.mentions or batch.quarantined:
            batch.cursor = self._cursor(*last)
            yield batch

    def _cursor(self, line_no: int, offset: int) -> str:
        head, tail = _fingerprints(self.path, offset)
        return json.dumps({"path": str(self.path), "line": line_no, "offset": offset, "head": head, "tail": tail})

    def _resume_line(self, cursor: str | None) -> int:
        """Return the last line consumed, or 0 when the cursor is empty, another file's, or the file changed under it."""
        state = _cursor_state(cursor)
        if state.get("path") != str(self.path):
            return 0
        line = int(state.get("line", 0))
        offset = state.get("offset")
        if offset is None:
            return line  # a cursor from before offsets were kept: trust its line count
        size = self.path.stat().st_size
        if size < offset or _fingerprints(self.path, offset) != (state.get("head"), state.get("tail")):
            log.warning("%s: %s was %s since the last run; reading it again from the start", self.name, self.path,
                        "truncated" if size < offset else "replaced")
            return 0
        return line

    def _records(self) -> Iterator[tuple[int, int, dict | None, bytes, str | None]]:
        """Yield (line number, byte offset after it, parsed record, raw bytes, error) for every non-empty line."""
        if self.path.suffix.lower() == ".csv":
            yield from self._csv_records()
            return
        offset = 0
        with self.path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                offset += len(raw)
                raw = raw.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                if len(raw) > MAX_RECORD_BYTES:
                    yield line_no, offset, None, raw, f"record of {len(raw)} bytes is over the limit of {MAX_RECORD_BYTES}"
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield line_no, offset, None, raw, f"not valid UTF-8 at byte {exc.start}"
                    continue
                try:
                    yield line_no, offset, json.loads(text), raw, None
                except (json.JSONDecodeError, RecursionError) as exc:
                    reason = f"not valid JSON: {exc.msg} at column {exc.colno}" if isinstance(
                        exc, json.JSONDecodeError) else "JSON nested too deeply"
                    yield line_no, offset, None, raw, reason

    def _csv_records(self) -> Iterator[tuple[int, int, dict | None, bytes, str | None]]:
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line_no = data[: exc.start].count(b"\n") + 1
            yield line_no, len(data), None, b"", f"not valid UTF-8 at byte {exc.start}"
            return
        # Byte offset after each physical line, so the cursor can say where a record ended.
        ends = [index + 1 for index, byte in enumerate(data) if byte == 0x0A]
        first_line = text.split("\n", 1)[0]
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=csv_delimiter(first_line))
        # The csv module's own field limit (128 KiB) would end the whole read with an error; a huge field is
        # quarantined below instead, so one line never blocks a file.
        csv.field_size_limit(max(csv.field_size_limit(), len(data) + 1))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line_no = reader.line_num
                yield line_no, _offset_after(ends, line_no, len(data)), None, b"", f"not valid CSV: {exc}"
                continue
            line_no = reader.line_num
            raw = json.dumps(row, ensure_ascii=False).encode("utf-8")
            end = _offset_after(ends, line_no, len(data))
            long_fields = [key for key, value in row.items() if isinstance(value, str) and len(value) > MAX_FIELD_CHARS]
            if long_fields:
                yield line_no, end, None, raw, (f"field '{long_fields[0]}' is over the limit of {MAX_FIELD_CHARS} "
                                                "characters")
            elif None in row:
                yield line_no, end, None, raw, f"{len(row[None])} more value(s) than the header has columns"
            else:
                yield line_no, end, dict(row), raw, None


def csv_delimiter(header: str) -> str:
    """Return the delimiter of a CSV file judged by its header line: ';' (Zeeschuimer, Dutch Excel) or ','."""
    return ";" if header.count(";") > header.count(",") else ","


def _offset_after(ends: list[int], line_no: int, size: int) -> int:
    return ends[line_no - 1] if 0 < line_no <= len(ends) else size


def _fingerprints(path: Path, offset: int) -> tuple[str, str]:
    """Return SHA-256s of the first and of the last FINGERPRINT_BYTES before OFFSET in PATH."""
    with path.open("rb") as handle:
        head = handle.read(min(offset, FINGERPRINT_BYTES))
        handle.seek(max(0, offset - FINGERPRINT_BYTES))
        tail = handle.read(min(offset, FINGERPRINT_BYTES))
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


def _cursor_state(cursor: str | None) -> dict:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    return state if isinstance(state, dict) else {}


def _printable(raw: bytes) -> str:
    """Return raw bytes as text, with undecodable bytes escaped, for the quarantine table."""
    return raw.decode("utf-8", "backslashreplace")
