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
    flagged: Counter = field(default_factory=Counter)
    error: str | None = None
    retry_after: str | None = None


def get_cursor(db: sqlite_utils.Database, source: str) -> str | None:
    """Return the stored cursor of SOURCE, or None before its first run."""
    row = db.execute("SELECT cursor FROM cursors WHERE source = ?", [source]).fetchone()
    return row[0] if row else None


def match_official(mention: Mention, accounts: dict[tuple[str, str], int]) -> int | None:
    """Return the consenting official a mention is aimed at, from its target or the @handles in its text."""
    candidates = []
    if mention.target_handle:
        candidates.append(mention.target_handle)
    candidates.extend(_MENTIONED.findall(mention.text))
    for handle in candidates:
        key = (mention.platform, normalise_handle(mention.platform, handle))
        if key in accounts:
            return accounts[key]
    if mention.platform == "mastodon":
        # Mastodon replies often show only the local part (@name) of user@instance.
        local = {h.split("@")[0]: oid for (p, h), oid in accounts.items() if p == "mastodon"}
        for handle in candidates:
            name = normalise_handle("mastodon", handle)
            if "@" not in name and name in local:
                return local[name]
    return None


def store_batch(
    db: sqlite_utils.Database,
    source: str,
    run_id: int,
    batch: Batch,
    classifier: Classifier,
    settings: Settings,
    summary: SourceRun,
) -> None:
    """Score a batch's new mentions and commit them with their scores, quarantined records and cursor."""
    accounts = consenting_accounts(db)
    summary.fetched += len(batch.mentions)
    fresh: list[tuple[Mention, int]] = []
    seen: set[tuple[str, str]] = set()
    duplicates = unmatched = 0
    for mention in batch.mentions:
        key = (mention.platform, mention.post_id)
        if key in seen or db.execute(
            "SELECT 1 FROM mentions WHERE platform = ? AND post_id = ?", list(key)
        ).fetchone():
            duplicates += 1
            continue
        seen.add(key)
        official_id = match_official(mention, accounts)
        if official_id is None:
            # Data minimisation: a post about nobody who consented is not kept.
            unmatched += 1
            continue
        fresh.append((mention, official_id))
    # Score outside the transaction: it is the slow part and must not hold the write lock.
    verdicts = judge(classifier, [m.text for m, _ in fresh], settings.classifier.thresholds) if fresh else []
    now = utcnow()
    flagged: Counter = Counter()
    with write_transaction(db):
        for (mention, official_id), verdict in zip(fresh, verdicts):
            row = mention.as_row() | {"official_id": official_id, "collected_at": now, "source": source}
            mention_id = db["mentions"].insert(row).last_pk
            db["scores"].insert(score_row(mention_id, classifier, verdict, now))
            flagged.update(verdict.labels)
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
            [len(batch.mentions), len(fresh), duplicates, len(batch.quarantined), unmatched,
             batch.cursor, run_id],
        )
    summary.new += len(fresh)
    summary.duplicates += duplicates
    summary.unmatched += unmatched
    summary.quarantined += len(batch.quarantined)
    summary.flagged.update(flagged)
    for item in batch.quarantined:
        log.warning("%s: quarantined %s: %s", source, item.location, item.reason)


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
            store_batch(db, source.name, run_id, batch, classifier, settings, summary)
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
    """Run every enabled source once and return what each did."""
    return [
        run_source(db, source, classifier, settings, should_stop)
        for source in build_sources(settings, db, only)
        if not (should_stop and should_stop())
    ]
