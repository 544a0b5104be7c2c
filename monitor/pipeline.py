"""One monitoring run: collect from each source since its cursor, score, store, and move the cursor.

A batch's mentions, scores, quarantined records and the source's new cursor are written in one transaction, so the
cursor never runs ahead of the data: a crash anywhere loses nothing and duplicates nothing on the next run.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from scrapers.base import Batch, Source, SourceStopped
from scrapers.source_types import build_source

from .alerts import queue_alerts_for_new_links, queue_spike_alerts, queue_threat_alerts, send_alerts
from .classifier import Classifier, judge
from .db import audit, quarantine_excerpt, score_row, utcnow, write_transaction
from .mentions import Mention, normalise_handle, payload_hash
from .officials import consenting_accounts
from .settings import Settings

log = logging.getLogger(__name__)
# The collector_runs ids this process is running now (serve runs sources in threads).
_ACTIVE_RUNS: set[int] = set()
_MENTIONED = re.compile(r"@([A-Za-z0-9_.\-]+(?:@[A-Za-z0-9.\-]+\.[A-Za-z]{2,})?)")



def build_sources(settings: Settings, db: sqlite_utils.Database, only: list[str] | None = None) -> list[Source]:
    """Build the enabled sources named in the settings (or just ONLY), through the table in scrapers.source_types."""
    if only:
        unknown = set(only) - set(settings.sources)
        if unknown:
            raise ValueError(f"unknown source(s): {', '.join(sorted(unknown))}")
    # Named sources run even when disabled (a person asked for them); otherwise every enabled one.
    chosen = {name: config for name, config in settings.sources.items() if (name in only if only else config.enabled)}
    return [build_source(name, config, settings, db) for name, config in chosen.items()]


@dataclass
class SourceRun:
    """What one source's run did."""

    source: str
    status: str = "ok"
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    quarantined: int = 0
    unmatched: int = 0
    linked: int = 0
    flagged: Counter = field(default_factory=Counter)
    error: str | None = None
    retry_after: str | None = None
    alerts_queued: int = 0
    alerts_sent: int = 0


def get_cursor(db: sqlite_utils.Database, source: str) -> str | None:
    """Return the stored cursor of SOURCE, or None before its first run."""
    row = db.execute("SELECT cursor FROM cursors WHERE source = ?", [source]).fetchone()
    return row[0] if row else None


def reset_cursor(db: sqlite_utils.Database, source: str, actor: str = "cli") -> str | None:
    """Forget SOURCE's cursor and rate-limit wait on purpose, so its next run reads from the start; return the old one.

    Posts already stored are skipped when read again, so a reset repeats reads, never stored data.
    """
    old = get_cursor(db, source)
    with write_transaction(db):
        db.execute("DELETE FROM cursors WHERE source = ?", [source])
        audit(db, "cursor.reset", f"source:{source}", {"had_cursor": old is not None}, actor)
    return old


def mark_interrupted_runs(db: sqlite_utils.Database) -> int:
    """Mark runs still shown as running whose process is gone (killed, crashed, machine restarted) as interrupted.

    A run records its process id; one with no live process behind it will never finish, so it must not read as
    running forever. Returns how many were marked.
    """
    stale = [run_id for run_id, pid in db.execute(
        "SELECT id, pid FROM collector_runs WHERE status = 'running'").fetchall() if not _run_alive(run_id, pid)]
    if stale:
        with write_transaction(db):
            db.execute(
                f"UPDATE collector_runs SET status = 'interrupted', errors = 1, finished_at = coalesce(finished_at, ?), "
                "error_message = 'the process ended mid-run (killed or crashed); the next run resumes from the "
                f"last committed batch' WHERE id IN ({','.join('?' * len(stale))})", [utcnow(), *stale])
    return len(stale)


def _run_alive(run_id: int, pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return run_id in _ACTIVE_RUNS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def match_officials(mention: Mention, accounts: dict[tuple[str, str], int]) -> dict[int, str]:
    """Return {official_id: handle} for every consenting official a mention addresses.

    The target (the account whose search found the post) comes first, then the handles the platform says the post
    addresses, then every @handle in the text, so a post naming two officials reaches both. An official's own post
    (a reply in their own thread) is not a mention of them.
    """
    candidates = []
    if mention.target_handle:
        candidates.append(mention.target_handle)
    candidates.extend(mention.addressed)
    candidates.extend(_MENTIONED.findall(mention.text))
    matched: dict[int, str] = {}
    for handle in candidates:
        name = normalise_handle(mention.platform, handle)
        official_id = accounts.get((mention.platform, name))
        if official_id is not None:
            matched.setdefault(official_id, name)
    if mention.author_handle:
        author = accounts.get((mention.platform, normalise_handle(mention.platform, mention.author_handle)))
        matched.pop(author, None)
    return matched


def _link_rows(mention_id: int, targets: dict[int, str], now: str) -> list[dict]:
    return [
        {"mention_id": mention_id, "official_id": official_id, "handle": handle, "linked_at": now}
        for official_id, handle in targets.items()
    ]


def store_batch(
    db: sqlite_utils.Database,
    source: str,
    run_id: int,
    batch: Batch,
    classifier: Classifier,
    settings: Settings,
    summary: SourceRun,
) -> None:
    """Score a batch's new mentions and commit them with their officials, scores, quarantined records and cursor.

    A post already stored is not stored again, but it is linked to any consenting official it addresses that it was
    not linked to yet (the same reply found through a second official's search). Consent is read again inside the
    write transaction, so a withdrawal that lands while the batch is being scored wins: nothing is stored for an
    official whose consent ended.
    """
    summary.fetched += len(batch.mentions)
    accounts = consenting_accounts(db)
    fresh: list[Mention] = []
    seen: set[tuple[str, str]] = set()
    for mention in batch.mentions:
        key = (mention.platform, mention.post_id)
        if key in seen:
            continue
        seen.add(key)
        if match_officials(mention, accounts) and not _stored_id(db, mention):
            fresh.append(mention)
    # Score outside the transaction: it is the slow part and must not hold the write lock.
    verdicts = judge(classifier, [m.text for m in fresh], settings.classifier.thresholds) if fresh else []
    verdict_of = {(m.platform, m.post_id): v for m, v in zip(fresh, verdicts)}
    now = utcnow()
    flagged: Counter = Counter()
    new = duplicates = unmatched = linked = 0
    with write_transaction(db):
        accounts = consenting_accounts(db)
        seen.clear()
        for mention in batch.mentions:
            key = (mention.platform, mention.post_id)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            targets = match_officials(mention, accounts)
            stored = _stored_id(db, mention)
            if stored is not None:
                duplicates += 1
                known = {row[0] for row in db.execute(
                    "SELECT official_id FROM mention_targets WHERE mention_id = ?", [stored])}
                added = {oid: h for oid, h in targets.items() if oid not in known}
                if added:
                    db["mention_targets"].insert_all(_link_rows(stored, added, now))
                    linked += len(added)
                    summary.alerts_queued += queue_alerts_for_new_links(
                        db, stored, list(added), settings, (classifier.name, classifier.version))
                continue
            if not targets or key not in verdict_of:
                # Data minimisation: a post about nobody who consented (now) is not kept.
                unmatched += 1
                continue
            verdict = verdict_of[key]
            row = mention.as_row() | {"collected_at": now, "source": source}
            mention_id = db["mentions"].insert(row).last_pk
            db["mention_targets"].insert_all(_link_rows(mention_id, targets, now))
            db["scores"].insert(score_row(mention_id, classifier, verdict, now))
            summary.alerts_queued += queue_threat_alerts(db, mention_id, list(targets), verdict, settings)
            flagged.update(verdict.labels)
            new += 1
        for item in batch.quarantined:
            db["quarantine"].insert(
                {
                    "source": source,
                    "run_id": run_id,
                    "location": item.location,
                    "reason": item.reason,
                    "raw": quarantine_excerpt(item.raw),
                    "raw_sha256": payload_hash(item.raw) if item.raw is not None else None,
                    "quarantined_at": now,
                }
            )
        if batch.cursor is not None:
            db["cursors"].upsert({"source": source, "cursor": batch.cursor, "updated_at": now}, pk="source")
        db.execute(
            """UPDATE collector_runs SET fetched = fetched + ?, new = new + ?, duplicates = duplicates + ?,
               quarantined = quarantined + ?, unmatched = unmatched + ?, cursor_after = ? WHERE id = ?""",
            [len(batch.mentions), new, duplicates, len(batch.quarantined), unmatched, batch.cursor, run_id],
        )
    summary.new += new
    summary.duplicates += duplicates
    summary.unmatched += unmatched
    summary.linked += linked
    summary.quarantined += len(batch.quarantined)
    summary.flagged.update(flagged)
    for item in batch.quarantined:
        log.warning("%s: quarantined %s: %s", source, item.location, item.reason)


def _stored_id(db: sqlite_utils.Database, mention: Mention) -> int | None:
    row = db.execute(
        "SELECT id FROM mentions WHERE platform = ? AND post_id = ?", [mention.platform, mention.post_id]
    ).fetchone()
    return row[0] if row else None


def retry_after(db: sqlite_utils.Database, source: str) -> str | None:
    """Return the time before which a rate-limited SOURCE must not be asked again, if one is recorded."""
    row = db.execute("SELECT retry_after FROM cursors WHERE source = ?", [source]).fetchone()
    return row[0] if row else None


def run_source(
    db: sqlite_utils.Database,
    source: Source,
    classifier: Classifier,
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
) -> SourceRun:
    """Collect, score and store everything SOURCE has after its cursor; record the run.

    SHOULD_STOP is asked after each committed batch; when it says yes the run ends there as 'interrupted'.
    """
    summary = SourceRun(source=source.name)
    wait_until = retry_after(db, source.name)
    if wait_until and wait_until > utcnow():
        summary.status, summary.retry_after = "waiting", wait_until
        summary.error = f"rate limited until {wait_until}"
        return summary
    mark_interrupted_runs(db)
    cursor = get_cursor(db, source.name)
    with write_transaction(db):
        run_id = db["collector_runs"].insert(
            {"source": source.name, "started_at": utcnow(), "status": "running", "cursor_before": cursor,
             "pid": os.getpid()}
        ).last_pk
    _ACTIVE_RUNS.add(run_id)
    try:
        for batch in source.fetch(cursor):
            queued_before = summary.alerts_queued
            store_batch(db, source.name, run_id, batch, classifier, settings, summary)
            if summary.alerts_queued > queued_before:
                # Right after the commit: a threat must not wait for the rest of the run.
                summary.alerts_sent += send_alerts(db, settings).sent
            if should_stop is not None and should_stop():
                summary.status, summary.error = "interrupted", "stopped on request after a committed batch"
                log.info("%s: stopping after a committed batch", source.name)
                break
    except SourceStopped as exc:
        summary.status, summary.error, summary.retry_after = "stopped", str(exc), exc.retry_after
        log.warning("%s: stopped early: %s", source.name, exc)
        if exc.retry_after:
            db.execute(
                "INSERT INTO cursors (source, cursor, updated_at, retry_after) VALUES (?, NULL, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET retry_after = excluded.retry_after",
                [source.name, utcnow(), exc.retry_after],
            )
            db.conn.commit()
    except Exception as exc:  # one failing source must not stop the others
        summary.status, summary.error = "error", f"{type(exc).__name__}: {exc}"
        if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
            summary.error = (f"database is locked: another process held the write lock longer than the busy timeout "
                             f"({exc}); the batch was not stored and is read again on the next run")
        log.error("%s: run failed: %s", source.name, summary.error)
    finally:
        _ACTIVE_RUNS.discard(run_id)
    _finish_run(db, run_id, summary)
    return summary


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _finish_run(db: sqlite_utils.Database, run_id: int, summary: SourceRun) -> None:
    """Record how a run ended; if the database stays locked even for that, say so (the run reads as interrupted)."""
    try:
        with write_transaction(db):
            db["collector_runs"].update(
                run_id,
                {
                    "finished_at": utcnow(),
                    "status": summary.status,
                    "errors": 0 if summary.status in ("ok", "interrupted") else 1,
                    "error_message": summary.error,
                },
            )
    except sqlite3.OperationalError as exc:
        if not _is_locked(exc):
            raise
        log.error("%s: could not record the end of run %d, the database is still locked: %s", summary.source,
                  run_id, exc)


def run_once(
    db: sqlite_utils.Database,
    settings: Settings,
    classifier: Classifier,
    only: list[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[SourceRun]:
    """Run every enabled source once, then check for spikes and send what is queued; return what each source did."""
    runs = [
        run_source(db, source, classifier, settings, should_stop)
        for source in build_sources(settings, db, only)
        if not (should_stop and should_stop())
    ]
    if settings.mail.configured:
        queue_spike_alerts(db, settings, current_model=(classifier.name, classifier.version))
        # Also what earlier runs could not deliver (server down, 4xx).
        send_alerts(db, settings)
    return runs
