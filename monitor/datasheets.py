"""The datasheet beside every export, in the spirit of "Datasheets for Datasets" (Gebru et al.).

It says why the data exists, what it holds and when, how it was collected (with the gaps: sources that were silent
or failing), the consent it rests on, counts per label, platform, body type and month, the model versions, the
pseudonymisation applied, agreement figures where annotators labelled, and the terms of use. It holds counts only:
no text, name, handle or source error message.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlite_utils

from .coverage import collection_coverage
from .exports import SCHEMA_VERSION, ExportStats, day_range_utc
from .rendering import render
from .watchdog import source_health


def annotation_agreement(db: sqlite_utils.Database) -> list[dict]:
    """Return per category Krippendorff's alpha among annotators, where annotation rounds were imported."""
    if "annotations" not in db.table_names() or not db["annotations"].count:
        return []
    from .annotations import agreement_report

    report = agreement_report(db)
    return [{"category": c.category, "alpha": c.alpha, "items": c.alpha_items} for c in report["categories"]]


def write_datasheet(db: sqlite_utils.Database, settings, path: Path, stats: ExportStats, context: dict) -> None:
    """Write the datasheet of an export with STATS (gathered while writing) and CONTEXT (its options) to PATH."""
    first = dt.date.fromisoformat(stats.first_day) if stats.first_day else None
    last = dt.date.fromisoformat(stats.last_day) if stats.last_day else None
    coverage, silent = [], []
    if first and last:
        start, end = day_range_utc(first, last, settings.timezone)
        coverage = [c.as_dict() for c in collection_coverage(db, settings, first, last, start, end)]
    silent = [h.source for h in source_health(db, settings) if h.silent]
    consent = db.execute(
        "SELECT min(given_on), max(given_on), count(*) FROM consents WHERE withdrawn_at IS NULL"
    ).fetchone()
    withdrawn = db.execute("SELECT count(*) FROM consents WHERE withdrawn_at IS NOT NULL").fetchone()[0]
    text = render(
        "datasheet.md",
        schema_version=SCHEMA_VERSION,
        created=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        stats=stats,
        context=context,
        filters=context["filters"].as_dict(),
        coverage=coverage,
        silent=silent,
        consent={"first": consent[0], "last": consent[1], "officials": consent[2], "withdrawn": withdrawn},
        agreement=annotation_agreement(db),
        timezone=settings.timezone,
    )
    path.write_text(text, encoding="utf-8")
