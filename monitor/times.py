"""Timestamps, parsed and formatted in one place: every stored time is UTC text with a Z suffix.

Two stored forms: a post's time to the second (``YYYY-MM-DDTHH:MM:SSZ``, what platforms give) and a moment of our own
to the microsecond (``YYYY-MM-DDTHH:MM:SS.ffffffZ``: collection, cursors, retry times), both sortable as text.
"""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc
# Posts before the first of these platforms existed, or more than a day ahead of now, are broken records (year 1,
# year 9999), not posts: they would sort before or after everything and escape retention.
EARLIEST_POST = dt.datetime(2006, 1, 1, tzinfo=UTC)
FUTURE_SLACK = dt.timedelta(days=1)
X_LEGACY_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


def now() -> dt.datetime:
    """Return the current time, aware, in UTC."""
    return dt.datetime.now(UTC)


def iso_utc(moment: dt.datetime) -> str:
    """Return MOMENT as ISO 8601 UTC text to the microsecond with a Z suffix (naive moments are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> str:
    """Return the current UTC time as ISO 8601 text to the microsecond."""
    return iso_utc(now())


def parse_timestamp(value: object) -> str:
    """Parse an ISO 8601 timestamp of a post and return it in UTC as YYYY-MM-DDTHH:MM:SSZ.

    Raise ValueError for anything else, including dates no real post can have (before 2006, or more than a day
    in the future).
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date out of range: {value!r}") from None
    if not EARLIEST_POST <= parsed <= now() + FUTURE_SLACK:
        raise ValueError(f"date out of range: {value!r} (expected 2006 up to today)")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_epoch(seconds: object) -> str:
    """Return epoch SECONDS as ISO 8601 UTC text; raise ValueError when unusable."""
    try:
        return iso_utc(dt.datetime.fromtimestamp(float(seconds), tz=UTC))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValueError(f"not an epoch time: {seconds!r}") from None


def iso_from_x_legacy(value: str) -> str:
    """Return X's legacy created_at ("Wed Oct 10 20:19:24 +0000 2018") as ISO 8601; raise ValueError if not one."""
    return dt.datetime.strptime(value, X_LEGACY_FORMAT).isoformat()


def month_of(moment: dt.datetime | None = None) -> str:
    """Return the calendar month (YYYY-MM, UTC) of MOMENT, default now."""
    return (moment or now()).astimezone(UTC).strftime("%Y-%m")


def start_of_next_month(moment: dt.datetime | None = None) -> str:
    """Return the first moment of the UTC month after MOMENT (default now) as ISO 8601 UTC text."""
    moment = (moment or now()).astimezone(UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return iso_utc(dt.datetime(year, month, 1, tzinfo=UTC))


def post_time(moment: dt.datetime) -> str:
    """Return MOMENT in the stored form of a post's time, UTC to the second: YYYY-MM-DDTHH:MM:SSZ."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stored(text: str) -> dt.datetime:
    """Parse a time stored by Weerbaar (either form, Z suffix) into an aware UTC datetime; raise ValueError if not one."""
    parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_minute(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """Return MOMENT in ZONE as YYYY-MM-DD HH:MM, the form people read in digests."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
