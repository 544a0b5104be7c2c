"""Rescoring: score stored mentions again with the current model, next to the scores earlier versions gave them.

A mention keeps one score row per model and version, so a rescore adds rows and never changes another version's;
readers pick the current model's score (db.counting_score_id). Each batch commits on its own: an interrupted run keeps
what it finished, and running it again skips those mentions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import sqlite_utils

from .classifier import Classifier, judge
from .db import audit, counting_score_id, score_row, utcnow, write_transaction
from .digests import day_bounds
from .settings import Settings


@dataclass
class RescoreResult:
    """What a rescore did, in counts; never any mention content."""

    model: str
    model_version: str
    since: str
    until: str | None
    force: bool
    considered: int = 0
    rescored: int = 0
    skipped: int = 0
    newly_flagged: int = 0
    no_longer_flagged: int = 0
    gone: int = 0

    def as_dict(self) -> dict:
        """Return the result as a JSON-ready dict."""
        return asdict(self)


def rescore(
    db: sqlite_utils.Database,
    settings: Settings,
    classifier: Classifier,
    since: dt.date,
    until: dt.date | None = None,
    force: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    actor: str = "cli",
) -> RescoreResult:
    """Score the stored mentions posted on local days SINCE to UNTIL (inclusive) again with CLASSIFIER.

    Days are calendar days in settings.timezone, like the digest's. Mentions that already have a score from this
    model and version are skipped unless FORCE, which replaces that version's rows only. New rows are judged with
    the configured thresholds, exactly as the pipeline judges new mentions.
    """
    if until is not None and until < since:
        raise ValueError(f"until ({until}) is before since ({since})")
    start = day_bounds(since, settings.timezone)[0]
    end = day_bounds(until, settings.timezone)[1] if until is not None else None
    result = RescoreResult(
        model=classifier.name,
        model_version=classifier.version,
        since=since.isoformat(),
        until=until.isoformat() if until is not None else None,
        force=force,
    )
    current = {"model": classifier.name, "model_version": classifier.version}
    # Only officials who still consent: a withdrawn official's mentions are erased, and nothing may bring them back.
    candidates = db.execute(
        f"""
        SELECT m.id, length(m.text),
               EXISTS (SELECT 1 FROM scores s WHERE s.mention_id = m.id AND s.model = :model
                       AND s.model_version = :model_version)
        FROM mentions m
        WHERE EXISTS (SELECT 1 FROM mention_targets t JOIN officials o ON o.id = t.official_id
                      WHERE t.mention_id = m.id AND o.status = 'active')
          AND m.created_at >= :start {"AND m.created_at < :end" if end else ""}
        """,
        current | {"start": start, "end": end},
    ).fetchall()
    result.considered = len(candidates)
    result.skipped = sum(1 for _, _, scored in candidates if scored and not force)
    # Batches of similar length pad least, so a classifier that pads per batch does the least work.
    pending = sorted((row for row in candidates if force or not row[2]), key=lambda row: (row[1], row[0]))
    todo = [mention_id for mention_id, _, _ in pending]
    size = batch_size or settings.classifier.batch_size
    completed = False
    try:
        for first in range(0, len(todo), size):
            batch = todo[first : first + size]
            _rescore_batch(db, settings, classifier, batch, force, result)
            if progress:
                progress(len(batch))
        completed = True
    finally:
        # One audit line, also for a run cut short: the batches it committed stay.
        if result.considered:
            with write_transaction(db):
                audit(db, "scores.rescored", f"model:{classifier.name}@{classifier.version}",
                      result.as_dict() | {"completed": completed}, actor)
    return result


def _rescore_batch(
    db: sqlite_utils.Database,
    settings: Settings,
    classifier: Classifier,
    mention_ids: list[int],
    force: bool,
    result: RescoreResult,
) -> None:
    """Score one batch of mentions and commit their rows for the current version in one transaction."""
    texts = dict(
        db.execute(
            "SELECT id, text FROM mentions WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(mention_ids)]
        )
    )
    present = [mention_id for mention_id in mention_ids if mention_id in texts]
    # Score outside the transaction, as the pipeline does: it is the slow part and must not hold the write lock.
    verdicts = judge(classifier, [texts[i] for i in present], settings.classifier.thresholds) if present else []
    result.gone += len(mention_ids) - len(present)
    current = {"model": classifier.name, "model_version": classifier.version}
    on_conflict = (
        "DO UPDATE SET probabilities = excluded.probabilities, labels = excluded.labels, "
        "flagged = excluded.flagged, scored_at = excluded.scored_at"
        if force
        else "DO NOTHING"
    )
    now = utcnow()
    with write_transaction(db):
        for mention_id, verdict in zip(present, verdicts):
            # Read what counted before inside the transaction: the mention may have been erased meanwhile.
            before = db.execute(
                f"SELECT m.id, s.flagged FROM mentions m LEFT JOIN scores s ON s.id = {counting_score_id(':id')} "
                "WHERE m.id = :id",
                current | {"id": mention_id},
            ).fetchone()
            if before is None:
                result.gone += 1
                continue
            row = score_row(mention_id, classifier, verdict, now)
            cursor = db.execute(
                f"INSERT INTO scores ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)}) "
                f"ON CONFLICT (mention_id, model, model_version) {on_conflict}",
                row,
            )
            if cursor.rowcount == 0:
                # Another run scored it with this version since the selection.
                result.skipped += 1
                continue
            result.rescored += 1
            was_flagged = bool(before[1])
            result.newly_flagged += int(verdict.flagged and not was_flagged)
            result.no_longer_flagged += int(was_flagged and not verdict.flagged)
