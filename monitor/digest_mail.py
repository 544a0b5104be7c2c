"""The daily digest by mail: the whole digest to [digest] recipients, each official's part to their contacts.

The HTML part carries a trend chart per official (flagged posts per day over [digest] trend_days, drawn with
matplotlib's Agg backend and attached as an inline image), so nothing in the message loads from the internet. A
digest is queued in the outbox once per recipient, keyed by its id, and a scheduled digest is due once per day: a
service that starts after send_at makes up the one it missed.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from zoneinfo import ZoneInfo

import sqlite_utils

from .alerts import daily_flagged_counts
from .db import write_transaction
from .digests import Digest, build_collected_digest, build_digest, save_digest
from .mail import Attachment, Delivery, Mail, queue_mail, send_pending, split_addresses
from .rendering import render
from .settings import Settings

log = logging.getLogger(__name__)


def trend_chart(series: list[tuple[dt.date, int]], title: str) -> bytes:
    """Return a small PNG bar chart of flagged posts per day."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.8, 1.2), dpi=100)
    axes = figure.add_subplot()
    days = [d for d, _ in series]
    counts = [n for _, n in series]
    axes.bar(range(len(days)), counts, color="#e08a00", width=0.8)
    if counts:
        axes.bar([len(days) - 1], [counts[-1]], color="#b00020", width=0.8)
    axes.set_xticks([0, len(days) - 1], [days[0].strftime("%d-%m"), days[-1].strftime("%d-%m")] if days else [])
    axes.set_ylim(0, max(counts + [1]) * 1.15)
    axes.set_title(title, fontsize=8, loc="left")
    axes.tick_params(labelsize=7)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def add_trends(
    db: sqlite_utils.Database, settings: Settings, digest: Digest, current_model: tuple[str, str] | None = None
) -> None:
    """Fill DIGEST.trends with flagged posts per day over the trend_days up to the digest's day, per official."""
    days = settings.digest.trend_days
    first = digest.day - dt.timedelta(days=days - 1)
    ids = [o.official_id for o in digest.officials]
    counts = daily_flagged_counts(db, settings, ids, first, digest.day, current_model)
    digest.trends = {
        official_id: [(first + dt.timedelta(days=i), counts.get(official_id, {}).get(first + dt.timedelta(days=i), 0))
                      for i in range(days)]
        for official_id in ids
    }


def digest_mail(settings: Settings, digest: Digest) -> Mail:
    """Return the digest as a mail: plain text, HTML with inline CSS, and a chart per official with flagged posts."""
    charts, images = {}, []
    for official in digest.officials:
        series = digest.trends.get(official.official_id)
        if not series or not any(n for _, n in series):
            continue  # no chart of fourteen zeroes; the line under the name says "geen gemarkeerde berichten"
        content_id = f"trend-{official.official_id}@weerbaar"
        charts[official.official_id] = content_id
        images.append(Attachment(content_id, trend_chart(series, "Gemarkeerd per dag"),
                                 filename=f"trend-{official.official_id}.png"))
    context = {"digest": digest, "charts": charts, "trend_days": settings.digest.trend_days,
               "base_url": (settings.web.base_url or "").rstrip("/") or None}
    scope = "" if len(digest.officials) != 1 else f" voor {digest.officials[0].name}"
    subject = (f"Weerbaar-digest{scope} {digest.day.strftime('%d-%m-%Y')}: {digest.threats} dreiging(en), "
               f"{digest.flagged} gemarkeerd")
    return Mail(subject=subject, text=render("digest.txt", digest=digest),
                html=render("digest_mail.html", **context), images=images)


def queue_digest(db: sqlite_utils.Database, settings: Settings, digest: Digest, digest_id: int) -> int:
    """Queue DIGEST once per recipient: the whole to [digest] recipients, each official's part to their contacts."""
    if not settings.mail.configured:
        return 0
    key = f"digest:{digest_id}"
    queued = 0
    contacts: dict[str, set[int]] = {}
    for official_id, value in db.execute("SELECT id, contacts FROM officials WHERE status = 'active'"):
        for address in split_addresses(value):
            contacts.setdefault(address, set()).add(official_id)
    with write_transaction(db):
        if settings.digest.recipients:
            queued += queue_mail(db, "digest", key, settings.digest.recipients, digest_mail(settings, digest),
                                 settings.mail.sender)
        for address, official_ids in contacts.items():
            if address in settings.digest.recipients:
                continue  # they have the whole digest already
            part = digest.only(official_ids)
            if part.officials:
                queued += queue_mail(db, "digest", key, [address], digest_mail(settings, part), settings.mail.sender)
    return queued


def send_posting_day_digest(
    db: sqlite_utils.Database, settings: Settings, day: dt.date, current_model: tuple[str, str] | None = None
):
    """Write one posting day's digest (`weerbaar digest --date D --send`), queue it and send it; see make_and_send."""
    digest = build_digest(db, settings, day, current_model)
    add_trends(db, settings, digest, current_model)
    with write_transaction(db):
        html_path, text_path, digest_id = save_digest(db, settings, digest, f"digest-{day.isoformat()}")
        queue_digest(db, settings, digest, digest_id)
    return html_path, text_path, digest, send_pending(db, settings.mail, kinds=("digest",))


def make_and_send_digest(
    db: sqlite_utils.Database,
    settings: Settings,
    current_model: tuple[str, str] | None = None,
    due_on: dt.date | None = None,
    send: bool = True,
):
    """Write the digest of what was collected since the previous one, queue it for its recipients and send it.

    Return (html path, text path, digest, delivery). The digest's record and its outbox rows commit together, so a
    crash leaves either no digest (the next start makes it) or a queued one (the next send delivers it).
    """
    digest = build_collected_digest(db, settings, current_model=current_model)
    mail = send and settings.mail.configured
    if mail:
        add_trends(db, settings, digest, current_model)
    with write_transaction(db):
        html_path, text_path, digest_id = save_digest(
            db, settings, digest, f"digest-collected-{_stamp(settings, digest)}", due_on
        )
        if mail:
            queue_digest(db, settings, digest, digest_id)
    delivery = send_pending(db, settings.mail, kinds=("digest",)) if mail else Delivery()
    return html_path, text_path, digest, delivery


def _stamp(settings: Settings, digest: Digest) -> str:
    until = dt.datetime.fromisoformat(digest.collected_until.replace("Z", "+00:00"))
    return until.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%dT%H%M%S")


def send_at_today(settings: Settings, now: dt.datetime | None = None) -> dt.datetime:
    """Return today's send_at as a local time."""
    zone = ZoneInfo(settings.timezone)
    now = (now or dt.datetime.now(zone)).astimezone(zone)
    hour, minute = (int(part) for part in settings.digest.send_at.split(":"))
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


def digest_due(db: sqlite_utils.Database, settings: Settings, now: dt.datetime | None = None) -> dt.date | None:
    """Return today's date when today's scheduled digest is past its send_at and not made yet, else None."""
    zone = ZoneInfo(settings.timezone)
    now = (now or dt.datetime.now(zone)).astimezone(zone)
    if now < send_at_today(settings, now):
        return None
    made = db.execute("SELECT 1 FROM digests WHERE due_on = ?", [now.date().isoformat()]).fetchone()
    return None if made else now.date()


def run_scheduled_digest(
    db: sqlite_utils.Database, settings: Settings, current_model: tuple[str, str] | None = None,
    now: dt.datetime | None = None,
):
    """Make and send today's digest if it is due and not made yet (also when the service starts late); else None."""
    due = digest_due(db, settings, now)
    if due is None:
        return None
    result = make_and_send_digest(db, settings, current_model, due_on=due)
    log.info("digest due %s written: %s (%d threat(s)); mail sent %d, queued %d", due, result[1],
             result[2].threats, result[3].sent, result[3].deferred)
    return result
