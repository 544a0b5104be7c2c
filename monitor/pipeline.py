"""One monitoring run: collect from each source since its cursor, score, store, and move the cursor.

A batch's mentions, scores, quarantined records and the source's new cursor are written in one transaction, so the
cursor never runs ahead of the data: a crash anywhere loses nothing and duplicates nothing on the next run.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from scrapers.base import Batch, Source, SourceStopped

from .alerts import queue_alerts_for_new_links, queue_spike_alerts, queue_threat_alerts, send_alerts
from .classifier import Classifier, judge
from .db import score_row, utcnow, write_transaction
from .mentions import Mention, normalise_handle
from .officials import consenting_accounts
from .settings import Settings, SourceSettings

log = logging.getLogger(__name__)
_MENTIONED = re.compile(r"@([A-Za-z0-9_.\-]+(?:@[A-Za-z0-9.\-]+\.[A-Za-z]{2,})?)")

SourceFactory = Callable[[str, SourceSettings, Settings, sqlite_utils.Database], Source]
_SOURCE_TYPES: dict[str, SourceFactory] = {}


def register_source_type(type_name: str, factory: SourceFactory) -> None:
    """Make a collector type available to the [sources.NAME] tables of the settings."""
    _SOURCE_TYPES[type_name] = factory


def _file_source(name: str, config: SourceSettings, settings: Settings, db: sqlite_utils.Database) -> Source:
    from pathlib import Path

    from scrapers.files import FileSource

    path = getattr(config, "path", None)
    if not path:
        raise ValueError(f"source {name!r}: field 'path' is required for type 'file'")
    return FileSource(name, settings.resolve(Path(path)))


register_source_type("file", _file_source)


def build_sources(settings: Settings, db: sqlite_utils.Database, only: list[str] | None = None) -> list[Source]:
    """Build the enabled sources named in the settings (or just ONLY)."""
    _load_platform_collectors()
    sources = []
    for name, config in settings.sources.items():
        if only and name not in only:
            continue
        if not config.enabled and not only:
            continue
        if config.type not in _SOURCE_TYPES:
            raise ValueError(
                f"source {name!r}: unknown type {config.type!r} (available: {', '.join(sorted(_SOURCE_TYPES))})"
            )
        sources.append(_SOURCE_TYPES[config.type](name, config, settings, db))
    if only:
        unknown = set(only) - set(settings.sources)
        if unknown:
            raise ValueError(f"unknown source(s): {', '.join(sorted(unknown))}")
    return sources


def _load_platform_collectors() -> None:
    """Import the collectors so that they register their source types."""
    import scrapers.registry  # noqa: F401
    import scrapers.research_tools  # noqa: F401


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


def match_officials(mention: Mention, accounts: dict[tuple[str, str], int]) -> dict[int, str]:
    """Return {official_id: handle} for every consenting official a mention addresses.

    The target (the account whose search found the post) comes first, then every @handle in the text, so a post
    naming two officials reaches both.
    """
    candidates = []
    if mention.target_handle:
        candidates.append(mention.target_handle)
    candidates.extend(_MENTIONED.findall(mention.text))
    matched: dict[int, str] = {}
    for handle in candidates:
        name = normalise_handle(mention.platform, handle)
        official_id = accounts.get((mention.platform, name))
        if official_id is not None:
            matched.setdefault(official_id, name)
    if mention.platform == "mastodon":
        # Mastodon replies often show only the local part (@name) of user@instance.
        local = {h.split("@")[0]: (oid, h) for (p, h), oid in accounts.items() if p == "mastodon"}
        for handle in candidates:
            name = normalise_handle("mastodon", handle)
            if "@" not in name and name in local:
                official_id, full = local[name]
                matched.setdefault(official_id, full)
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
                    "raw": item.raw,
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
    cursor = get_cursor(db, source.name)
    run_id = db["collector_runs"].insert(
        {"source": source.name, "started_at": utcnow(), "status": "running", "cursor_before": cursor}
    ).last_pk
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
        log.error("%s: run failed: %s", source.name, summary.error)
    db["collector_runs"].update(
        run_id,
        {
            "finished_at": utcnow(),
            "status": summary.status,
            "errors": 0 if summary.status in ("ok", "interrupted") else 1,
            "error_message": summary.error,
        },
    )
    return summary


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
