"""Retention: old mentions go, with their scores and reviews; recent ones stay."""

import datetime as dt

from monitor.officials import import_officials
from monitor.pipeline import run_once
from monitor.retention import purge_expired


def test_purge_deletes_only_mentions_past_the_retention_limit(db, settings, classifier, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    run_once(db, settings, classifier)
    old = db.execute("SELECT count(*) FROM mentions WHERE created_at < '2026-11-28T00:00:00Z'").fetchone()[0]
    total = db["mentions"].count
    assert 0 < old < total
    mention_id = db.execute("SELECT id FROM mentions WHERE created_at < '2026-11-28' LIMIT 1").fetchone()[0]
    db["reviews"].insert({"mention_id": mention_id, "reviewer": "staf", "labels": "[]", "reviewed_at": "x"})
    settings.retention_days = 30
    # 30 days before 2026-12-28T00:00Z is 2026-11-28T00:00Z: everything posted before then goes.
    counts = purge_expired(db, settings, now=dt.datetime(2026, 12, 28, 0, 0, tzinfo=dt.timezone.utc))
    assert counts["mentions"] == old
    assert db["mentions"].count == total - old
    assert db["scores"].count == total - old and db["reviews"].count == 0
