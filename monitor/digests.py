"""The daily digest for staff: per official, threats first, then other flagged mentions, as HTML and plain text."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from .classifier import band
from .db import counting_score_id, utcnow
from .rendering import render
from .settings import Settings
from .times import local_minute, now, parse_stored, post_time


@dataclass
class DigestItem:
    """One flagged mention as staff see it."""

    mention_id: int
    platform: str
    url: str | None
    author: str | None
    posted_at: str
    text: str
    labels: list[str]
    category: str
    probability: float
    band: str

    @property
    def band_name(self) -> str:
        """Return the band in Dutch; a flagged item's lowest band says it is over a threshold, never 'low'."""
        from .alerts import BAND_NAMES

        return BAND_NAMES.get(self.band, self.band)

    @property
    def category_name(self) -> str:
        """Return the category in Dutch (dreiging, agressie, ...)."""
        from .alerts import CATEGORY_NAMES

        return CATEGORY_NAMES.get(self.category, self.category)


@dataclass
class OfficialDigest:
    """One official's day: threats, other flagged mentions, and counts against the day before."""

    official_id: int
    name: str
    role: str
    body_name: str
    threats: list[DigestItem] = field(default_factory=list)
    flagged: list[DigestItem] = field(default_factory=list)
    mentions: int = 0
    mentions_before: int = 0
    flagged_count: int = 0
    flagged_before: int = 0
    # Threats and other flagged mentions left out of a capped digest (Digest.capped), still counted.
    threats_hidden: int = 0
    flagged_hidden: int = 0


@dataclass
class Digest:
    """Everything one day's digest shows."""

    day: dt.date
    generated_at: str
    generated_local: str
    officials: list[OfficialDigest]
    silent_sources: list[str]
    warnings: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    # Set for a digest of what was collected in (collected_from, collected_until]; None for one posting day.
    collected_from: str | None = None
    collected_until: str | None = None
    posting_days: list[dt.date] = field(default_factory=list)
    # Local display of the collection window, and the trend of flagged posts per official (for the mail's charts).
    window_local: str | None = None
    trends: dict[int, list[tuple[dt.date, int]]] = field(default_factory=dict)

    @property
    def officials_affected(self) -> int:
        """Return how many officials have at least one flagged mention in this digest."""
        return sum(1 for o in self.officials if o.threats or o.flagged or o.threats_hidden or o.flagged_hidden)

    @property
    def posting_days_text(self) -> str:
        """Return the posting days covered, as staff read them ('28-11-2026 t/m 30-11-2026')."""
        if not self.posting_days:
            return "geen"
        first, last = self.posting_days[0], self.posting_days[-1]
        if first == last:
            return first.strftime("%d-%m-%Y")
        return f"{first.strftime('%d-%m-%Y')} t/m {last.strftime('%d-%m-%Y')} ({len(self.posting_days)} dagen)"

    def only(self, official_ids: set[int]) -> Digest:
        """Return this digest narrowed to OFFICIAL_IDS (an official's part, for their contacts).

        The lines about silent sources and watchdog warnings stay out: they are about the whole installation, and their
        run errors can name other officials' handles.
        """
        import dataclasses

        return dataclasses.replace(self, officials=[o for o in self.officials if o.official_id in official_ids],
                                   silent_sources=[], warnings=[])

    def capped(self, items_per_official: int) -> Digest:
        """Return this digest with at most ITEMS_PER_OFFICIAL mentions shown per official, threats first (each list is
        already ordered most probable first); what is left out is counted in threats_hidden and flagged_hidden."""
        import dataclasses

        officials = []
        for official in self.officials:
            threats = official.threats[:items_per_official]
            flagged = official.flagged[: items_per_official - len(threats)]
            officials.append(dataclasses.replace(
                official, threats=threats, flagged=flagged,
                threats_hidden=official.threats_hidden + len(official.threats) - len(threats),
                flagged_hidden=official.flagged_hidden + len(official.flagged) - len(flagged)))
        return dataclasses.replace(self, officials=officials)

    @property
    def threats(self) -> int:
        """Return the number of threats across all officials, those a capped digest leaves out included."""
        return sum(len(o.threats) + o.threats_hidden for o in self.officials)

    @property
    def flagged(self) -> int:
        """Return the number of flagged mentions across all officials, threats included."""
        return sum(o.flagged_count for o in self.officials)


def day_bounds(day: dt.date, timezone: str) -> tuple[str, str]:
    """Return the UTC start and end of a local calendar day, correct across daylight-saving changes."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return post_time(start), post_time(end)


def latest_day(db: sqlite_utils.Database, timezone: str) -> dt.date | None:
    """Return the local day of the newest stored mention, or None when there are none."""
    row = db.execute("SELECT max(created_at) FROM mentions").fetchone()
    if not row or not row[0]:
        return None
    return parse_stored(row[0]).astimezone(ZoneInfo(timezone)).date()


def _model_parameters(current_model: tuple[str, str] | None) -> dict[str, str | None]:
    model, model_version = current_model or (None, None)
    return {"model": model, "model_version": model_version}


def _counts(
    db: sqlite_utils.Database, column: str, start: str, end: str, current_model: tuple[str, str] | None
) -> dict[int, tuple[int, int]]:
    """Return {official_id: (mentions, flagged)} for mentions whose COLUMN lies in [START, END)."""
    rows = db.execute(
        f"""
        SELECT t.official_id, count(*), coalesce(sum(s.flagged), 0)
        FROM mentions m JOIN mention_targets t ON t.mention_id = m.id
        LEFT JOIN scores s ON s.id = {counting_score_id()}
        WHERE m.{column} >= :start AND m.{column} < :end
        GROUP BY t.official_id
        """,
        {"start": start, "end": end} | _model_parameters(current_model),
    ).fetchall()
    return {official_id: (total, flagged) for official_id, total, flagged in rows}


@dataclass(frozen=True)
class _Window:
    """Which mentions a digest covers: COLUMN (created_at or collected_at) in [start, end), and the window before."""

    column: str
    start: str
    end: str
    before_start: str
    before_end: str


def build_digest(
    db: sqlite_utils.Database, settings: Settings, day: dt.date, current_model: tuple[str, str] | None = None
) -> Digest:
    """Gather one local posting day's flagged mentions per official, with counts against the previous day.

    A mention scored by several model versions counts with CURRENT_MODEL's (name, version) score when it has one,
    else with its newest; so after a rescore or a rollback the digest follows the configured model.
    """
    start, end = day_bounds(day, settings.timezone)
    window = _Window("created_at", start, end, *day_bounds(day - dt.timedelta(days=1), settings.timezone))
    digest = _build(db, settings, window, day, current_model)
    digest.posting_days = [day]
    return digest


def build_collected_digest(
    db: sqlite_utils.Database,
    settings: Settings,
    since: str | None = None,
    until: str | None = None,
    current_model: tuple[str, str] | None = None,
) -> Digest:
    """Gather what was collected after SINCE up to UNTIL (default: after the previous such digest, up to now).

    A post collected late (an import, a backlog, a collector that was down) lands in the first digest after it was
    collected, whatever day it was posted; the digest says which posting days it spans. Counts compare with the
    window of the same length before it. The first digest ever covers the day before UNTIL.
    """
    until = until or utcnow()
    if since is None:
        row = db.execute(
            "SELECT max(collected_until) FROM digests WHERE collected_until IS NOT NULL AND collected_until <= ?",
            [until],
        ).fetchone()
        since = row[0] if row and row[0] else _shift(until, -86_400)
    length = (_parse(until) - _parse(since)).total_seconds()
    # Stored collected_at values and window bounds share one format, so they compare as text; the window is
    # (since, until], which as [start, end) is [since + 1 microsecond, until + 1 microsecond).
    start, end = _shift(since, 1e-6), _shift(until, 1e-6)
    window = _Window("collected_at", start, end, _shift(start, -length), start)
    zone = ZoneInfo(settings.timezone)
    digest = _build(db, settings, window, _parse(until).astimezone(zone).date(), current_model)
    digest.collected_from, digest.collected_until = since, until
    fmt = "%d-%m-%Y %H:%M"
    digest.window_local = f"{_parse(since).astimezone(zone).strftime(fmt)} tot {_parse(until).astimezone(zone).strftime(fmt)}"
    hours = db.execute(
        "SELECT DISTINCT substr(created_at, 1, 13) FROM mentions WHERE collected_at >= ? AND collected_at < ?",
        [start, end],
    ).fetchall()
    digest.posting_days = sorted({
        dt.datetime.fromisoformat(h + ":00:00+00:00").astimezone(zone).date() for (h,) in hours if h
    })
    return digest


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _shift(stamp: str, seconds: float) -> str:
    return (_parse(stamp) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _build(
    db: sqlite_utils.Database, settings: Settings, window: _Window, day: dt.date, current_model: tuple[str, str] | None
) -> Digest:
    zone = ZoneInfo(settings.timezone)
    today = _counts(db, window.column, window.start, window.end, current_model)
    before = _counts(db, window.column, window.before_start, window.before_end, current_model)
    officials = {}
    for official_id, name, role, body_name in db.execute(
        "SELECT id, name, role, body_name FROM officials WHERE status = 'active' ORDER BY name"
    ).fetchall():
        entry = OfficialDigest(official_id, name, role, body_name)
        entry.mentions, entry.flagged_count = today.get(official_id, (0, 0))
        entry.mentions_before, entry.flagged_before = before.get(official_id, (0, 0))
        officials[official_id] = entry
    models = set()
    rows = db.execute(
        f"""
        SELECT m.id, t.official_id, m.platform, m.url, m.author_handle, m.created_at, m.text,
               s.probabilities, s.labels, s.model || '@' || s.model_version
        FROM mentions m JOIN mention_targets t ON t.mention_id = m.id
        JOIN scores s ON s.id = {counting_score_id()}
        WHERE m.{window.column} >= :start AND m.{window.column} < :end AND s.flagged = 1
        """,
        {"start": window.start, "end": window.end} | _model_parameters(current_model),
    ).fetchall()
    for mention_id, official_id, platform, url, author, created_at, text, probs, labels, model in rows:
        if official_id not in officials:
            continue
        models.add(model)
        probabilities = json.loads(probs)
        label_list = json.loads(labels)
        category = "threat" if "threat" in label_list else max(label_list, key=lambda c: probabilities.get(c, 0))
        probability = probabilities.get(category, 0.0)
        item = DigestItem(
            mention_id=mention_id,
            platform=platform,
            url=url if url and url.lower().startswith(("https://", "http://")) else None,
            author=author,
            posted_at=local_minute(parse_stored(created_at), zone),
            text=text,
            labels=label_list,
            category=category,
            probability=probability,
            band=band(probability, settings.classifier.bands),
        )
        (officials[official_id].threats if category == "threat" else officials[official_id].flagged).append(item)
    for entry in officials.values():
        entry.threats.sort(key=lambda i: i.probability, reverse=True)
        entry.flagged.sort(key=lambda i: i.probability, reverse=True)
    ordered = sorted(officials.values(), key=lambda o: (-len(o.threats), -o.flagged_count, o.name))
    return Digest(
        day=day,
        generated_at=utcnow(),
        generated_local=local_minute(now(), zone),
        officials=ordered,
        silent_sources=_silent_sources(db, settings, window.column, window.start, window.end),
        warnings=_watchdog_warnings(db, settings),
        models=sorted(models),
    )


def _silent_sources(db: sqlite_utils.Database, settings: Settings, column: str, start: str, end: str) -> list[str]:
    """Return a line for each enabled source that brought in no mentions for the day (or collection window)."""
    lines = []
    for name, config in settings.sources.items():
        if not config.enabled:
            continue
        count = db.execute(
            f"SELECT EXISTS (SELECT 1 FROM mentions WHERE source = ? AND {column} >= ? AND {column} < ?)",
            [name, start, end],
        ).fetchone()[0]
        if count:
            continue
        last = db.execute(
            "SELECT status, finished_at, error_message FROM collector_runs WHERE source = ? ORDER BY id DESC LIMIT 1",
            [name],
        ).fetchone()
        if last is None:
            lines.append(f"{name}: geen berichten; deze bron heeft nog nooit gedraaid")
        elif last[0] != "ok":
            lines.append(f"{name}: geen berichten; laatste run {last[1]} eindigde met '{last[0]}': {last[2]}")
        else:
            lines.append(f"{name}: geen berichten voor deze dag (laatste run {last[1]} zonder fouten)")
    return lines


def _watchdog_warnings(db: sqlite_utils.Database, settings: Settings) -> list[str]:
    """Return the watchdog's warnings about silent collectors, if the watchdog is installed."""
    try:
        from .watchdog import digest_warnings
    except ImportError:
        return []
    return digest_warnings(db, settings)


def write_digest_files(digest: Digest, html_path: Path, text_path: Path) -> None:
    """Render DIGEST to its HTML and plain-text files, replacing what they held."""
    html_path.write_text(render("digest.html", digest=digest), encoding="utf-8")
    text_path.write_text(render("digest.txt", digest=digest), encoding="utf-8")


def write_digest(
    db: sqlite_utils.Database, settings: Settings, day: dt.date, current_model: tuple[str, str] | None = None
) -> tuple[Path, Path, Digest]:
    """Render a posting day's digest to HTML and plain text in the digest directory and record it (see build_digest)."""
    digest = build_digest(db, settings, day, current_model)
    html_path, text_path, _ = save_digest(db, settings, digest, f"digest-{day.isoformat()}")
    return html_path, text_path, digest


def save_digest(
    db: sqlite_utils.Database, settings: Settings, digest: Digest, stem: str, due_on: dt.date | None = None
) -> tuple[Path, Path, int]:
    """Write DIGEST as STEM.html and STEM.txt in the digest directory, record it, and return the paths and its id."""
    directory = Path(settings.digest.directory)
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / f"{stem}.html"
    text_path = directory / f"{stem}.txt"
    write_digest_files(digest, html_path, text_path)
    digest_id = db["digests"].insert(
        {
            "day": digest.day.isoformat(),
            "created_at": digest.generated_at,
            "html_path": str(html_path),
            "text_path": str(text_path),
            "officials": len(digest.officials),
            "flagged": digest.flagged,
            "threats": digest.threats,
            "collected_from": digest.collected_from,
            "collected_until": digest.collected_until,
            "posting_days": ",".join(d.isoformat() for d in digest.posting_days),
            "due_on": due_on.isoformat() if due_on else None,
        }
    ).last_pk
    return html_path, text_path, digest_id
