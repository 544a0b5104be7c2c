"""Who is told what at once: a threat alert per stored threat, and a spike alert when an official's day runs hot.

A threat alert is queued in the outbox (monitor/mail.py) inside the transaction that stores the mention, and sent
right after the commit. It goes to the support desk ([alerts] recipients), to the support contacts of every official
the mention addresses, and to the official's own address only when [alerts] notify_official is set.

A spike alert compares an official's flagged count for one local day with that official's own daily counts over the
weeks before (z-score against the baseline's mean and standard deviation) and says what drives the burst: how many
distinct authors, how many wrote to the official for the first time, near-identical texts from several accounts,
and the post most of it replies to.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlite_utils

from .classifier import Verdict, band
from .db import counting_score_id, write_transaction
from .mail import Delivery, Mail, queue_mail, send_pending, split_addresses
from .rendering import plain, render
from .settings import Settings

PLATFORM_NAMES = {"x": "X", "mastodon": "Mastodon", "bluesky": "Bluesky"}
CATEGORY_NAMES = {"threat": "dreiging", "aggression": "agressie", "insult": "belediging",
                  "identity_attack": "aanval op identiteit"}
# Band names as staff read them. The lowest band of a flagged item is still over a threshold: it must not read as
# harmless, so it says so.
BAND_NAMES = {"high": "hoog", "medium": "midden", "low": "boven de drempel"}


def local_time(stamp: str, timezone: str) -> dt.datetime:
    """Return an ISO 8601 UTC STAMP as a local time in TIMEZONE."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo(timezone))


def review_url(settings: Settings, mention_id: int) -> str | None:
    """Return the review page of a mention when [web] base_url is set."""
    base = settings.web.base_url
    return f"{base.rstrip('/')}/mentions/{mention_id}" if base else None


def safe_link(url: str | None) -> str | None:
    """Return URL when it is an http(s) link, else None (a javascript: or data: link is never shown).

    A link with whitespace in it is refused too: a line break there would start a line of its own in the plain-text
    alert, where a post could forge "Beoordelen: https://..." beneath it.
    """
    if not url or any(ch.isspace() for ch in url):
        return None
    return url if url.lower().startswith(("https://", "http://")) else None


def official_recipients(db: sqlite_utils.Database, settings: Settings, official_ids: list[int]) -> dict[str, list[int]]:
    """Return {address: [official ids it is told about]}: the desk for all, each official's contacts for theirs."""
    told: dict[str, list[int]] = defaultdict(list)
    for address in settings.alerts.recipients:
        told[address].extend(official_ids)
    if official_ids:
        rows = db.execute(
            f"SELECT id, contacts, email FROM officials WHERE status = 'active' AND id IN "
            f"({', '.join('?' * len(official_ids))})",
            official_ids,
        ).fetchall()
        for official_id, contacts, email in rows:
            addresses = split_addresses(contacts)
            if settings.alerts.notify_official and email:
                addresses.append(email)
            for address in addresses:
                if official_id not in told[address]:
                    told[address].append(official_id)
    return dict(told)


def _officials(db: sqlite_utils.Database, official_ids: list[int]) -> dict[int, dict]:
    rows = db.execute(
        f"SELECT id, name, role, body_name FROM officials WHERE id IN ({', '.join('?' * len(official_ids))})",
        official_ids,
    ).fetchall()
    return {r[0]: {"id": r[0], "name": r[1], "role": r[2], "body_name": r[3]} for r in rows}


def queue_threat_alerts(
    db: sqlite_utils.Database, mention_id: int, official_ids: list[int], verdict: Verdict, settings: Settings
) -> int:
    """Queue one alert per recipient for a stored mention labelled threat; return how many were queued.

    Call inside the transaction that stores the mention. Nothing is queued for a mention without the threat label,
    or when mail is not configured or nobody is to be told.
    """
    if "threat" not in verdict.labels or not settings.mail.configured or not official_ids:
        return 0
    told = official_recipients(db, settings, list(official_ids))
    if not told:
        return 0
    row = db.execute(
        "SELECT platform, text, author_handle, url, created_at FROM mentions WHERE id = ?", [mention_id]
    ).fetchone()
    platform, text, author, url, created_at = row
    officials = _officials(db, list(official_ids))
    posted = local_time(created_at, settings.timezone)
    probability = verdict.scores.get("threat", 0.0)
    queued = 0
    # Recipients told about the same officials get the same message; grouping keeps rendering to once per group.
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for address, ids in told.items():
        groups[tuple(sorted(ids))].append(address)
    for ids, addresses in groups.items():
        names = [officials[i] for i in ids if i in officials]
        context = {
            "mention_id": mention_id,
            "officials": names,
            "platform": PLATFORM_NAMES.get(platform, platform),
            "posted_local": posted.strftime("%d-%m-%Y %H:%M"),
            "author": plain(author) or "onbekend",
            "url": safe_link(url),
            "text": plain(text),
            "band": BAND_NAMES.get(band(probability, settings.classifier.bands), "boven de drempel"),
            "probability": probability,
            "model": verdict.model,
            "review_url": review_url(settings, mention_id),
        }
        subject = (f"Weerbaar: dreiging tegen {', '.join(o['name'] for o in names)} op {context['platform']}, "
                   f"{context['posted_local']}")
        mail = Mail(subject=subject, text=render("alert.txt", **context), html=render("alert.html", **context))
        queued += queue_mail(db, "threat", f"threat:{mention_id}", addresses, mail, settings.mail.sender,
                             mention_id=mention_id)
    return queued


def queue_alerts_for_new_links(
    db: sqlite_utils.Database, mention_id: int, official_ids: list[int], settings: Settings,
    current_model: tuple[str, str] | None = None,
) -> int:
    """Queue the threat alert of a stored mention for officials it was just linked to (found again via their search).

    The desk and contacts told before are not told again (one alert per mention and recipient); the new officials'
    contacts are. The mention's counting score decides, as everywhere (CURRENT_MODEL's, else the newest).
    """
    if not settings.mail.configured or not official_ids:
        return 0
    row = db.execute(
        f"SELECT probabilities, labels, model || '@' || model_version FROM scores WHERE id = "
        f"{counting_score_id(':mention')}",
        {"mention": mention_id, "model": (current_model or (None, None))[0],
         "model_version": (current_model or (None, None))[1]},
    ).fetchone()
    if row is None:
        return 0
    labels = json.loads(row[1])
    verdict = Verdict(scores=json.loads(row[0]), labels=labels, flagged=bool(labels), model=row[2])
    return queue_threat_alerts(db, mention_id, official_ids, verdict, settings)


# -- spikes ---------------------------------------------------------------------------------------------------------


@dataclass
class Spike:
    """One official's burst on one local day, with what drives it."""

    official_id: int
    name: str
    day: dt.date
    count: int
    baseline_mean: float
    baseline_stdev: float
    z: float
    authors: int = 0
    first_time_authors: int = 0
    # (phrasing, number of distinct accounts that posted it), most accounts first
    repeated_texts: list[tuple[str, int]] = field(default_factory=list)
    # (post id replied to, how many of the flagged posts reply to it, a link when that post is stored)
    replied_to: tuple[str, int, str | None] | None = None


def daily_flagged_counts(
    db: sqlite_utils.Database, settings: Settings, official_ids: list[int] | None, first: dt.date, last: dt.date,
    current_model: tuple[str, str] | None = None,
) -> dict[int, Counter]:
    """Return {official_id: Counter(local day -> flagged mentions)} for the local days FIRST to LAST.

    Counted per UTC hour in SQL and folded into local days here: every hour falls in one local day (the Dutch
    offset changes by whole hours), and SQLite need not know about time zones.
    """
    from .digests import day_bounds

    start, _ = day_bounds(first, settings.timezone)
    _, end = day_bounds(last, settings.timezone)
    model, version = current_model or (None, None)
    where = ""
    params: dict = {"start": start, "end": end, "model": model, "model_version": version}
    if official_ids is not None:
        where = f"AND t.official_id IN ({', '.join(str(int(i)) for i in official_ids) or 'NULL'})"
    rows = db.execute(
        f"""
        SELECT t.official_id, substr(m.created_at, 1, 13) AS hour, count(*)
        FROM mentions m JOIN mention_targets t ON t.mention_id = m.id
        JOIN scores s ON s.id = {counting_score_id()}
        WHERE m.created_at >= :start AND m.created_at < :end AND s.flagged = 1 {where}
        GROUP BY t.official_id, hour
        """,
        params,
    ).fetchall()
    zone = ZoneInfo(settings.timezone)
    counts: dict[int, Counter] = defaultdict(Counter)
    for official_id, hour, n in rows:
        moment = dt.datetime.fromisoformat(hour + ":00:00+00:00").astimezone(zone)
        counts[official_id][moment.date()] += n
    return counts


def find_spikes(
    db: sqlite_utils.Database, settings: Settings, day: dt.date, current_model: tuple[str, str] | None = None
) -> list[Spike]:
    """Return the officials whose flagged count on local DAY is a spike against their own baseline."""
    config = settings.alerts
    today = daily_flagged_counts(db, settings, None, day, day, current_model)
    candidates = [oid for oid, days in today.items() if days[day] >= config.spike_min_count]
    if not candidates:
        return []
    first = day - dt.timedelta(days=config.spike_baseline_days)
    history = daily_flagged_counts(db, settings, candidates, first, day - dt.timedelta(days=1), current_model)
    officials = _officials(db, candidates)
    spikes = []
    for official_id in candidates:
        series = [history.get(official_id, Counter())[first + dt.timedelta(days=i)]
                  for i in range(config.spike_baseline_days)]
        mean = statistics.fmean(series)
        # A quiet official has a standard deviation near zero; one flagged post a day is the least spread counted,
        # so that a jump from 0 to spike_min_count is a spike and a jump from 0 to 1 is not.
        stdev = max(statistics.pstdev(series), 1.0)
        count = today[official_id][day]
        z = (count - mean) / stdev
        if z >= config.spike_z and official_id in officials:
            spike = Spike(official_id, officials[official_id]["name"], day, count, mean, stdev, z)
            _describe_spike(db, settings, spike, current_model)
            spikes.append(spike)
    return spikes


_URL = re.compile(r"https?://\S+")
_HANDLE = re.compile(r"@[\w.\-]+(@[\w.\-]+)?")
_NOT_WORD = re.compile(r"[^\w]+")


def phrasing(text: str) -> str:
    """Return TEXT reduced to its words: no handles, links, case, punctuation or repeated spaces."""
    text = _HANDLE.sub(" ", _URL.sub(" ", text.lower()))
    return " ".join(_NOT_WORD.sub(" ", text).split())


def _describe_spike(
    db: sqlite_utils.Database, settings: Settings, spike: Spike, current_model: tuple[str, str] | None
) -> None:
    from .digests import day_bounds

    start, end = day_bounds(spike.day, settings.timezone)
    model, version = current_model or (None, None)
    rows = db.execute(
        f"""
        SELECT m.id, coalesce(m.author_id, m.author_handle, ''), m.text, m.in_reply_to, m.platform
        FROM mention_targets t JOIN mentions m ON m.id = t.mention_id
        JOIN scores s ON s.id = {counting_score_id()}
        WHERE t.official_id = :official AND m.created_at >= :start AND m.created_at < :end AND s.flagged = 1
        """,
        {"official": spike.official_id, "start": start, "end": end, "model": model, "model_version": version},
    ).fetchall()
    authors = {author for _, author, _, _, _ in rows if author}
    spike.authors = len(authors)
    if authors:
        earlier = {
            r[0]
            for r in db.execute(
                f"""SELECT DISTINCT coalesce(m.author_id, m.author_handle, '') FROM mention_targets t
                    JOIN mentions m ON m.id = t.mention_id
                    WHERE t.official_id = ? AND m.created_at < ? AND coalesce(m.author_id, m.author_handle, '')
                    IN ({', '.join('?' * len(authors))})""",
                [spike.official_id, start, *authors],
            )
        }
        spike.first_time_authors = len(authors - earlier)
    by_phrasing: dict[str, set[str]] = defaultdict(set)
    example: dict[str, str] = {}
    for _, author, text, _, _ in rows:
        key = phrasing(text)
        if key:
            by_phrasing[key].add(author)
            example.setdefault(key, plain(text))
    repeated = sorted(((example[k], len(v)) for k, v in by_phrasing.items() if len(v) >= 2), key=lambda p: -p[1])
    spike.repeated_texts = [(text[:280], n) for text, n in repeated[:3]]
    replies = Counter((platform, parent) for _, _, _, parent, platform in rows if parent)
    if replies:
        (platform, parent), n = replies.most_common(1)[0]
        stored = db.execute("SELECT url FROM mentions WHERE platform = ? AND post_id = ?", [platform, parent]).fetchone()
        spike.replied_to = (parent, n, safe_link(stored[0]) if stored else None)


def queue_spike_alerts(
    db: sqlite_utils.Database, settings: Settings, day: dt.date | None = None,
    current_model: tuple[str, str] | None = None,
) -> int:
    """Find today's (or DAY's) spikes and queue one alert per official, day and recipient; return rows queued."""
    if not settings.mail.configured:
        return 0
    day = day or dt.datetime.now(ZoneInfo(settings.timezone)).date()
    spikes = find_spikes(db, settings, day, current_model)
    queued = 0
    with write_transaction(db):
        for spike in spikes:
            told = [a for a, ids in official_recipients(db, settings, [spike.official_id]).items() if ids]
            if not told:
                continue
            context = {"spike": spike, "day": day.strftime("%d-%m-%Y"), "review_url": settings.web.base_url}
            subject = f"Weerbaar: piek van {spike.count} gemarkeerde berichten aan {spike.name} op {context['day']}"
            mail = Mail(subject=subject, text=render("spike.txt", **context), html=render("spike.html", **context))
            queued += queue_mail(db, "spike", f"spike:{spike.official_id}:{day.isoformat()}", told, mail,
                                 settings.mail.sender, official_id=spike.official_id)
    return queued


def spike_summary(spike: Spike) -> dict:
    """Return a spike as plain data (for --json output and logs), without any post text."""
    return {
        "official_id": spike.official_id, "day": spike.day.isoformat(), "count": spike.count,
        "baseline_mean": round(spike.baseline_mean, 2), "z": round(spike.z, 2) if math.isfinite(spike.z) else None,
        "authors": spike.authors, "first_time_authors": spike.first_time_authors,
        "repeated_texts": len(spike.repeated_texts),
        "replied_to": spike.replied_to[0] if spike.replied_to else None,
    }



def send_alerts(db: sqlite_utils.Database, settings: Settings) -> Delivery:
    """Send the queued threat and spike alerts now; what cannot be delivered stays queued."""
    return send_pending(db, settings.mail, kinds=("threat", "spike"))
