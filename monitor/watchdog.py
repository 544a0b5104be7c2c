"""The watchdog: tells when a source has gone quiet, so that no mentions is never mistaken for no aggression.

A source is silent when it has returned no posts, or has only failed, for longer than its `silence_hours`. A source
that has never run is silent too: nothing was watched. The health is read from the collector_runs and cursors tables
only, so `weerbaar status`, the digest and the scheduler all see the same thing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import sqlite_utils

from .settings import Settings
from .times import parse_stored

FAILED_STATUSES = ("error", "stopped")
NOT_NO_AGGRESSION = "Geen meldingen betekent hier niet: geen agressie."


@dataclass
class SourceHealth:
    """What the collector_runs say about one enabled source, and whether it counts as silent."""

    source: str
    type: str
    silence_hours: float
    runs: int = 0
    first_run_at: str | None = None
    last_run_at: str | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_posts_at: str | None = None
    last_ok_at: str | None = None
    consecutive_failures: int = 0
    retry_after: str | None = None
    rate_limited: bool = False
    silent: bool = False
    quiet_hours: float | None = None
    failing_hours: float | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        """Return the health as a JSON-ready dict."""
        return asdict(self)


def _parse(timestamp: str | None) -> dt.datetime | None:
    if not timestamp:
        return None
    try:
        return parse_stored(timestamp)
    except ValueError:
        return None


def _hours_between(earlier: str, now: dt.datetime) -> float:
    return (now - _parse(earlier)).total_seconds() / 3600


def source_health(db: sqlite_utils.Database, settings: Settings, now: dt.datetime | None = None) -> list[SourceHealth]:
    """Return the health of every enabled source at NOW (default: the current time)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    report = []
    for name, config in settings.sources.items():
        if not config.enabled:
            continue
        health = SourceHealth(source=name, type=config.type, silence_hours=config.silence_hours)
        _read_runs(db, health)
        row = db.execute("SELECT retry_after FROM cursors WHERE source = ?", [name]).fetchone()
        health.retry_after = row[0] if row else None
        _judge(health, now)
        report.append(health)
    return report


def _read_runs(db: sqlite_utils.Database, health: SourceHealth) -> None:
    """Fill in the run history of one source from collector_runs."""
    runs = db.execute(
        """SELECT started_at, coalesce(finished_at, started_at), status, error_message, fetched
           FROM collector_runs WHERE source = ? ORDER BY id DESC""",
        [health.source],
    ).fetchall()
    health.runs = len(runs)
    if not runs:
        return
    health.last_run_at, health.last_status = runs[0][1], runs[0][2]
    counting_failures = True
    for started_at, ended_at, status, error, fetched in runs:
        if status in FAILED_STATUSES:
            health.last_error = health.last_error or error
            if counting_failures:
                health.consecutive_failures += 1
        elif status != "running":
            # A run still marked 'running' was cut off (a crash or kill); it neither breaks nor extends the streak.
            counting_failures = False
        if status == "ok" and health.last_ok_at is None:
            health.last_ok_at = ended_at
        if fetched and health.last_posts_at is None:
            health.last_posts_at = ended_at
    health.first_run_at = runs[-1][0]


def _judge(health: SourceHealth, now: dt.datetime) -> None:
    """Decide whether a source is silent and say why in one line."""
    window = health.silence_hours
    if health.runs == 0:
        health.silent = True
        health.reason = "has never run: nothing from this source has been watched"
        return
    # Unrounded: a window may be a fraction of an hour; the messages round for display.
    health.quiet_hours = _hours_between(health.last_posts_at or health.first_run_at, now)
    if health.consecutive_failures:
        health.failing_hours = _hours_between(health.last_ok_at or health.first_run_at, now)
    last_error = f" (last error: {health.last_error})" if health.last_error else ""
    if health.failing_hours is not None and health.failing_hours > window:
        health.silent = True
        health.reason = f"only failed runs for {health.failing_hours:.0f} hours{last_error}"
    elif health.quiet_hours > window:
        health.silent = True
        if health.last_posts_at is None:
            health.reason = f"no posts since its first run {health.quiet_hours:.0f} hours ago{last_error}"
        else:
            health.reason = f"no posts for {health.quiet_hours:.0f} hours{last_error}"
    elif health.consecutive_failures:
        health.reason = f"{health.consecutive_failures} failed run(s) in a row{last_error}"
    else:
        health.reason = "ok"
    retry_at = _parse(health.retry_after)
    health.rate_limited = retry_at is not None and retry_at > now
    if health.rate_limited:
        health.reason += f"; rate limited until {health.retry_after}"


def digest_warnings(db: sqlite_utils.Database, settings: Settings, now: dt.datetime | None = None) -> list[str]:
    """Return one Dutch warning line per silent source, for the top of the digest."""
    lines = []
    for health in source_health(db, settings, now):
        if not health.silent:
            continue
        name = f"Bron '{health.source}'"
        error = f" (laatste fout: {health.last_error})" if health.last_error else ""
        waiting = f" De bron wacht op de platformlimiet tot {health.retry_after}." if health.rate_limited else ""
        if health.runs == 0:
            line = f"{name} heeft nog nooit gedraaid."
        elif health.failing_hours is not None and health.failing_hours > health.silence_hours:
            line = f"{name} mislukt al {health.failing_hours:.0f} uur bij elke run{error}."
        elif health.last_posts_at is None:
            line = (
                f"{name} heeft sinds de eerste run ({health.quiet_hours:.0f} uur geleden) "
                f"nog geen berichten opgeleverd{error}."
            )
        else:
            line = f"{name} heeft al {health.quiet_hours:.0f} uur geen berichten opgeleverd{error}."
        lines.append(f"{line}{waiting} {NOT_NO_AGGRESSION}")
    return lines
