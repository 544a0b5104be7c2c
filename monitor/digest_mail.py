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


class TrendCharts:
    """Draws small PNG bar charts of flagged posts per day, reusing one figure (a new one per chart costs 2x)."""

    def __init__(self, days: int):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.8, 1.2), dpi=100)
        self.axes = self.figure.add_subplot()
        self.bars = self.axes.bar(range(days), [0] * days, color="#e08a00", width=0.8)
        self.bars[-1].set_color("#b00020")  # the digest's own day
        self.axes.tick_params(labelsize=7)
        for side in ("top", "right"):
            self.axes.spines[side].set_visible(False)
        self.axes.set_title("Gemarkeerd per dag", fontsize=8, loc="left")

    def draw(self, series: list[tuple[dt.date, int]]) -> bytes:
        """Return the PNG of one official's series of (day, flagged count)."""
        counts = [n for _, n in series]
        for bar, height in zip(self.bars, counts):
            bar.set_height(height)
        self.axes.set_ylim(0, max(counts + [1]) * 1.15)
        self.axes.set_xticks([0, len(series) - 1], [series[0][0].strftime("%d-%m"), series[-1][0].strftime("%d-%m")])
        self.figure.tight_layout(pad=0.3)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        return buffer.getvalue()


def trend_images(settings: Settings, digest: Digest) -> dict[int, Attachment]:
    """Return a chart per official of DIGEST with any flagged post in its trend (no chart of only zeroes)."""
    charts = TrendCharts(settings.digest.trend_days)
    images = {}
    for official in digest.officials:
        series = digest.trends.get(official.official_id)
        if series and len(series) == settings.digest.trend_days and any(n for _, n in series):
            images[official.official_id] = Attachment(
                f"trend-{official.official_id}@weerbaar", charts.draw(series),
                filename=f"trend-{official.official_id}.png",
            )
    return images


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


def digest_mail(settings: Settings, digest: Digest, images: dict[int, Attachment] | None = None) -> Mail:
    """Return the digest as a mail: plain text, HTML with inline CSS, and the chart of each official in it.

    At most [digest] mail_items_per_official mentions per official are in it; the rest are counted and named as waiting
    in the review desk."""
    images = trend_images(settings, digest) if images is None else images
    digest = digest.capped(settings.digest.mail_items_per_official)
    shown = {o.official_id: images[o.official_id] for o in digest.officials if o.official_id in images}
    context = {"digest": digest, "charts": {oid: image.content_id for oid, image in shown.items()},
               "trend_days": settings.digest.trend_days, "base_url": (settings.web.base_url or "").rstrip("/") or None}
    scope = "" if len(digest.officials) != 1 else f" voor {digest.officials[0].name}"
    subject = (f"Weerbaar-digest{scope} {digest.day.strftime('%d-%m-%Y')}: {digest.threats} dreiging(en), "
               f"{digest.flagged} gemarkeerd")
    return Mail(subject=subject, text=render("digest.txt", digest=digest),
                html=render("digest_mail.html", **context), images=list(shown.values()))


def digest_mails(db: sqlite_utils.Database, settings: Settings, digest: Digest) -> list[tuple[list[str], Mail]]:
    """Return (recipients, mail) pairs: the whole digest for [digest] recipients, each official's part for contacts.

    Drawn and rendered before the write transaction that records and queues them, so no lock is held meanwhile.
    """
    if not settings.mail.configured:
        return []
    contacts: dict[str, set[int]] = {}
    for official_id, value in db.execute("SELECT id, contacts FROM officials WHERE status = 'active'"):
        for address in split_addresses(value):
            contacts.setdefault(address, set()).add(official_id)
    images = trend_images(settings, digest)  # drawn once, shared by the whole digest and every part
    mails = []
    if settings.digest.recipients:
        mails.append((list(settings.digest.recipients), digest_mail(settings, digest, images)))
    for address, official_ids in contacts.items():
        if address in settings.digest.recipients:
            continue  # they have the whole digest already
        part = digest.only(official_ids)
        if part.officials:
            mails.append(([address], digest_mail(settings, part, images)))
    return mails


def queue_digest(db: sqlite_utils.Database, settings: Settings, digest_id: int, mails) -> int:
    """Queue the digest DIGEST_ID's MAILS once per recipient; return rows added."""
    with write_transaction(db):
        return sum(queue_mail(db, "digest", f"digest:{digest_id}", recipients, mail, settings.mail.sender)
                   for recipients, mail in mails)


def make_and_send_digest(
    db: sqlite_utils.Database,
    settings: Settings,
    current_model: tuple[str, str] | None = None,
    due_on: dt.date | None = None,
    send: bool = True,
    day: dt.date | None = None,
):
    """Write the digest of what was collected since the previous one (or of posting DAY), queue it and send it.

    Return (html path, text path, digest, delivery). The digest's record and its outbox rows commit together, so a
    crash leaves either no digest (the next start makes it) or a queued one (the next send delivers it).
    """
    if day is None:
        digest = build_collected_digest(db, settings, current_model=current_model)
        stem = f"digest-collected-{_stamp(settings, digest)}"
    else:
        digest = build_digest(db, settings, day, current_model)
        stem = f"digest-{day.isoformat()}"
    mail = send and settings.mail.configured
    mails = []
    if mail:
        add_trends(db, settings, digest, current_model)
        mails = digest_mails(db, settings, digest)
    with write_transaction(db):
        html_path, text_path, digest_id = save_digest(db, settings, digest, stem, due_on)
        queue_digest(db, settings, digest_id, mails)
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
