"""Erasure beyond the mentions: every other place an official's handle or a digest of their mentions is kept.

Withdrawal (monitor.officials.withdraw_official) erases the official's mentions and accounts; this module removes
what remains of them elsewhere: quarantined records that hold one of their handles, the per-account entries of
cursor maps (current and in run records), handles in run error messages, and digest files on disk, which are
rewritten from the database as it now is. Retention (monitor.retention) deletes digest files past the limit.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import sqlite_utils

from .db import audit, write_transaction
from .settings import Settings

ERASED_HANDLE = "[erased]"


def _handle_pattern(handles: list[str]) -> re.Pattern | None:
    """Return a pattern matching any of HANDLES as a whole handle (with or without @), case-insensitively."""
    if not handles:
        return None
    alternatives = "|".join(re.escape(h) for h in sorted(set(handles), key=len, reverse=True))
    return re.compile(rf"(?<![\w.@])@?(?:{alternatives})(?![\w]|\.\w|@\w)", re.IGNORECASE)


def _without_keys(cursor: str | None, keys: set[str]) -> str | None:
    """Return a per-account cursor map without KEYS, or the cursor unchanged when it is not such a map."""
    if not cursor:
        return cursor
    try:
        value = json.loads(cursor)
    except json.JSONDecodeError:
        return cursor
    if not isinstance(value, dict) or not keys & set(value):
        return cursor
    return json.dumps({k: v for k, v in value.items() if k not in keys}, sort_keys=True)


def erase_handles(db: sqlite_utils.Database, accounts: list[tuple[str, str]]) -> dict[str, int]:
    """Remove ACCOUNTS ((platform, handle) pairs) from quarantine, cursors and run records; return counts.

    Runs inside the caller's write transaction when there is one (withdrawal), so it all lands together.
    """
    handles = [handle for _, handle in accounts]
    pattern = _handle_pattern(handles)
    keys = {f"{platform}:{handle}" for platform, handle in accounts}
    counts = {"quarantine": 0, "cursors": 0, "runs": 0}
    if pattern is None:
        return counts
    with write_transaction(db):
        doomed = [
            row_id for row_id, location, reason, raw in db.execute(
                "SELECT id, location, reason, raw FROM quarantine").fetchall()
            if any(pattern.search(part or "") for part in (location, reason, raw))
        ]
        for start in range(0, len(doomed), 500):
            chunk = doomed[start:start + 500]
            db.execute(f"DELETE FROM quarantine WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        counts["quarantine"] = len(doomed)
        for source, cursor in db.execute("SELECT source, cursor FROM cursors").fetchall():
            cleaned = _without_keys(cursor, keys)
            if cleaned != cursor:
                db.execute("UPDATE cursors SET cursor = ? WHERE source = ?", [cleaned, source])
                counts["cursors"] += 1
        for run_id, before, after, message in db.execute(
                "SELECT id, cursor_before, cursor_after, error_message FROM collector_runs").fetchall():
            cleaned = (_without_keys(before, keys), _without_keys(after, keys),
                       pattern.sub(ERASED_HANDLE, message) if message else message)
            if cleaned != (before, after, message):
                db.execute("UPDATE collector_runs SET cursor_before = ?, cursor_after = ?, error_message = ? "
                           "WHERE id = ?", [*cleaned, run_id])
                counts["runs"] += 1
    return counts


def redact_kept_mentions(db: sqlite_utils.Database, mention_ids: list[int], name: str,
                         accounts: list[tuple[str, str]]) -> int:
    """Replace a withdrawn official's name and handles in the posts kept for other officials; return how many changed.

    Such a post stays because it also addresses someone who still consents, but the withdrawn official's name and
    handles in it are their personal data. The stored SHA-256 of the raw payload still identifies the post as
    received, so evidence for the others can be matched to the platform's copy.
    """
    patterns = [_handle_pattern([handle for _, handle in accounts])] if accounts else []
    if name.strip():
        patterns.append(re.compile(rf"(?<!\w){re.escape(name.strip())}(?!\w)", re.IGNORECASE))
    if not patterns or not mention_ids:
        return 0
    columns = [c for c in ("text", "context_text") if c in db["mentions"].columns_dict]
    changed = 0
    for row in db.execute(f"SELECT id, {', '.join(columns)} FROM mentions WHERE id IN "
                          "(SELECT value FROM json_each(?))", [json.dumps(mention_ids)]).fetchall():
        values = {}
        for column, value in zip(columns, row[1:]):
            if value is None:
                continue
            redacted = value
            for pattern in patterns:
                redacted = pattern.sub(ERASED_HANDLE, redacted)
            if redacted != value:
                values[column] = redacted
        if values:
            db["mentions"].update(row[0], values)
            changed += 1
    return changed


def rewrite_digests(db: sqlite_utils.Database, settings: Settings, actor: str = "system") -> dict[str, int]:
    """Rewrite every digest file still on disk from the database as it is now, so erased data leaves them too.

    A digest shows every consenting official, so after a withdrawal each one on disk names the official who left.
    Each is rendered again for its day (with each mention's newest score) in place; missing files are left alone.
    """
    from .digests import build_digest, write_digest_files

    rewritten = 0
    for digest_id, day, html_path, text_path in db.execute(
            "SELECT id, day, html_path, text_path FROM digests ORDER BY id").fetchall():
        html, text = Path(html_path), Path(text_path)
        if not html.exists() and not text.exists():
            continue
        digest = build_digest(db, settings, dt.date.fromisoformat(day))
        write_digest_files(digest, html, text)
        with write_transaction(db):
            db.execute("UPDATE digests SET officials = ?, flagged = ?, threats = ? WHERE id = ?",
                       [len(digest.officials), digest.flagged, digest.threats, digest_id])
        rewritten += 1
    if rewritten:
        with write_transaction(db):
            audit(db, "digests.rewritten", "digests", {"files": rewritten * 2}, actor)
    return {"digests_rewritten": rewritten}


def delete_digests_before(db: sqlite_utils.Database, cutoff_day: str) -> int:
    """Delete the digest files and records of days before CUTOFF_DAY (YYYY-MM-DD); return how many days."""
    rows = db.execute("SELECT id, html_path, text_path FROM digests WHERE day < ?", [cutoff_day]).fetchall()
    for _, html_path, text_path in rows:
        for path in (Path(html_path), Path(text_path)):
            path.unlink(missing_ok=True)
    with write_transaction(db):
        db.execute("DELETE FROM digests WHERE day < ?", [cutoff_day])
    return len(rows)
