"""How well each source was collected in a period: the coverage a datasheet and a report must state beside counts.

A count of aggressive mentions means little without knowing which sources ran: a silent collector reads as "no
aggression". This reads the collector_runs table (and the settings' enabled sources, which may never have run).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import sqlite_utils

from .settings import Settings
from .watchdog import FAILED_STATUSES


@dataclass
class SourceCoverage:
    """One source's collection in a period: runs, failures, posts, and the days it ran successfully."""

    source: str
    enabled: bool
    runs: int
    failed_runs: int
    posts_fetched: int
    posts_new: int
    days_with_ok_run: int
    days_in_period: int
    first_run_at: str | None
    last_run_at: str | None

    @property
    def gap_days(self) -> int:
        """Return the days of the period without one successful run."""
        return self.days_in_period - self.days_with_ok_run

    def as_dict(self) -> dict:
        """Return the coverage as a JSON-ready dict."""
        return asdict(self) | {"gap_days": self.gap_days}


def collection_coverage(
    db: sqlite_utils.Database, settings: Settings, first: dt.date, last: dt.date, start_utc: str, end_utc: str
) -> list[SourceCoverage]:
    """Return per source (enabled in the settings, or with runs in the period) its collection from FIRST to LAST."""
    failed = ", ".join(f"'{status}'" for status in FAILED_STATUSES)
    rows = db.execute(
        f"""SELECT source, count(*), sum(status IN ({failed})), coalesce(sum(fetched), 0), coalesce(sum(new), 0),
                   count(DISTINCT CASE WHEN status NOT IN ({failed}, 'running') THEN substr(started_at, 1, 10) END),
                   min(started_at), max(started_at)
            FROM collector_runs WHERE started_at >= ? AND started_at < ? GROUP BY source""",
        [start_utc, end_utc],
    ).fetchall()
    days = (last - first).days + 1
    found = {row[0]: row for row in rows}
    names = sorted(set(found) | {name for name, source in settings.sources.items() if source.enabled})
    coverage = []
    for name in names:
        row = found.get(name, (name, 0, 0, 0, 0, 0, None, None))
        source = settings.sources.get(name)
        coverage.append(SourceCoverage(name, bool(source and source.enabled), row[1], row[2] or 0, row[3], row[4],
                                       min(row[5], days), days, row[6], row[7]))
    return coverage
