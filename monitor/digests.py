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

    @property
    def threats(self) -> int:
        """Return the number of threats across all officials."""
        return sum(len(o.threats) for o in self.officials)

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
    db: sqlite_utils.Database, start: str, end: str, current_model: tuple[str, str] | None
) -> dict[int, tuple[int, int]]:
    rows = db.execute(
        f"""
        SELECT t.official_id, count(*), coalesce(sum(s.flagged), 0)
        FROM mentions m JOIN mention_targets t ON t.mention_id = m.id
        LEFT JOIN scores s ON s.id = {counting_score_id()}
        WHERE m.created_at >= :start AND m.created_at < :end
        GROUP BY t.official_id
        """,
        {"start": start, "end": end} | _model_parameters(current_model),
    ).fetchall()
    return {official_id: (total, flagged) for official_id, total, flagged in rows}


def build_digest(
    db: sqlite_utils.Database, settings: Settings, day: dt.date, current_model: tuple[str, str] | None = None
) -> Digest:
    """Gather one local day's flagged mentions per official, with counts against the previous day.

    A mention scored by several model versions counts with CURRENT_MODEL's (name, version) score when it has one,
    else with its newest; so after a rescore or a rollback the digest follows the configured model.
    """
    zone = ZoneInfo(settings.timezone)
    start, end = day_bounds(day, settings.timezone)
    today = _counts(db, start, end, current_model)
    before = _counts(db, *day_bounds(day - dt.timedelta(days=1), settings.timezone), current_model)
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
        WHERE m.created_at >= :start AND m.created_at < :end AND s.flagged = 1
        """,
        {"start": start, "end": end} | _model_parameters(current_model),
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
        silent_sources=_silent_sources(db, settings, start, end),
        warnings=_watchdog_warnings(db, settings),
        models=sorted(models),
    )


def _silent_sources(db: sqlite_utils.Database, settings: Settings, start: str, end: str) -> list[str]:
    """Return a line for each enabled source that brought in no mentions for the day."""
    lines = []
    for name, config in settings.sources.items():
        if not config.enabled:
            continue
        count = db.execute(
            "SELECT count(*) FROM mentions WHERE source = ? AND created_at >= ? AND created_at < ?", [name, start, end]
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
    """Render a day's digest to HTML and plain text in the digest directory and record it (see build_digest)."""
    digest = build_digest(db, settings, day, current_model)
    directory = Path(settings.digest.directory)
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / f"digest-{day.isoformat()}.html"
    text_path = directory / f"digest-{day.isoformat()}.txt"
    write_digest_files(digest, html_path, text_path)
    db["digests"].insert(
        {
            "day": day.isoformat(),
            "created_at": digest.generated_at,
            "html_path": str(html_path),
            "text_path": str(text_path),
            "officials": len(digest.officials),
            "flagged": digest.flagged,
            "threats": digest.threats,
        }
    )
    return html_path, text_path, digest
