"""Retention: mentions older than the configured limit are deleted, with their scores, reviews, quarantine and digests."""

from __future__ import annotations

import datetime as dt

import sqlite_utils

from .db import audit, write_transaction
from .erasure import delete_digests_before
from .settings import Settings
from .times import now as current_time
from .times import post_time


def purge_expired(db: sqlite_utils.Database, settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete mentions posted more than retention_days ago, and the quarantine of the same age; return counts."""
    cutoff = post_time((now or current_time()) - dt.timedelta(days=settings.retention_days))
    with write_transaction(db):
        mentions = db.execute("SELECT count(*) FROM mentions WHERE created_at < ?", [cutoff]).fetchone()[0]
        # Scores and reviews go with their mention through the foreign keys' ON DELETE CASCADE.
        db.execute("DELETE FROM mentions WHERE created_at < ?", [cutoff])
        quarantined = db.execute("SELECT count(*) FROM quarantine WHERE quarantined_at < ?", [cutoff]).fetchone()[0]
        db.execute("DELETE FROM quarantine WHERE quarantined_at < ?", [cutoff])
        audit(db, "retention.purged", "mentions", {"cutoff": cutoff, "mentions": mentions, "quarantine": quarantined})
    # A digest quotes the mentions of its day: it goes when they do.
    digests = delete_digests_before(db, cutoff[:10])
    return {"mentions": mentions, "quarantine": quarantined, "digests": digests, "cutoff": cutoff}
