"""One monitoring run: cursors, duplicates, quarantine, and what happens when storing fails."""

import json
import sqlite3

from monitor.officials import import_officials
from monitor.pipeline import get_cursor, run_once


def _setup(db, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")


def test_a_run_stores_mentions_with_a_versioned_score_each(db, settings, classifier, workdir):
    _setup(db, workdir)
    [run] = run_once(db, settings, classifier)
    assert run.status == "ok"
    assert run.new == db["mentions"].count >= 200
    assert db.execute("SELECT count(DISTINCT mention_id) FROM scores").fetchone()[0] == run.new
    assert {r[0] for r in db.execute("SELECT model || '@' || model_version FROM scores")} == {"test-keywords@1"}
    assert run.flagged["threat"] > 0 and run.flagged["aggression"] >= run.flagged["threat"]


def test_rerunning_a_source_adds_no_duplicates(db, settings, classifier, workdir):
    _setup(db, workdir)
    run_once(db, settings, classifier)
    count = db["mentions"].count
    db.execute("DELETE FROM cursors")  # even without its cursor, a source never duplicates a post
    db.conn.commit()
    [again] = run_once(db, settings, classifier)
    assert db["mentions"].count == count
    assert again.new == 0 and again.duplicates == again.fetched


def test_malformed_records_are_quarantined_and_counted_and_the_run_goes_on(db, settings, classifier, workdir):
    _setup(db, workdir)
    [run] = run_once(db, settings, classifier)
    reasons = [r[0] for r in db.execute("SELECT reason FROM quarantine")]
    assert run.quarantined == len(reasons) >= 5
    assert any("UTF-8" in r for r in reasons)
    assert any("field 'text'" in r for r in reasons)
    assert any("field 'created_at'" in r for r in reasons)
    locations = [r[0] for r in db.execute("SELECT location FROM quarantine ORDER BY id")]
    assert locations[0] == "config/samples/mentions.jsonl:10"  # file and line, for the person who checks it
    # Control characters never reach storage; overlong text is cut.
    assert db.execute("SELECT count(*) FROM mentions WHERE text GLOB '*[' || char(0,7,27) || ']*'").fetchone()[0] == 0
    assert db.execute("SELECT max(length(text)) FROM mentions").fetchone()[0] <= 10_010


def test_cursor_does_not_advance_when_storing_fails(db, settings, classifier, workdir):
    _setup(db, workdir)
    # A real SQLite error while the batch is stored: a trigger that aborts inserts into scores.
    db.execute("CREATE TRIGGER fail_scores BEFORE INSERT ON scores BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    db.conn.commit()
    [run] = run_once(db, settings, classifier)
    assert run.status == "error" and "disk trouble" in run.error
    assert get_cursor(db, "sample") is None
    assert db["mentions"].count == 0 and db["quarantine"].count == 0
    status, message = db.execute("SELECT status, error_message FROM collector_runs").fetchone()
    assert status == "error" and "disk trouble" in message
    # Once the fault is gone the next run stores everything, exactly once.
    db.execute("DROP TRIGGER fail_scores")
    db.conn.commit()
    [ok] = run_once(db, settings, classifier)
    assert ok.status == "ok" and ok.new == db["mentions"].count >= 200
    assert json.loads(get_cursor(db, "sample"))["line"] > 200


def test_a_read_only_database_fails_loudly_and_keeps_what_was_stored(settings, classifier, workdir):
    from monitor.db import open_db

    db = open_db(settings.db_path)
    _setup(db, workdir)
    db.close()
    ro = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True)
    import sqlite_utils

    rodb = sqlite_utils.Database(ro)
    try:
        run_once(rodb, settings, classifier)
    except sqlite3.OperationalError as exc:
        assert "readonly" in str(exc)
    else:
        raise AssertionError("writing to a read-only database must fail")
    db = open_db(settings.db_path)
    assert db["officials"].count == 12 and db["mentions"].count == 0 and get_cursor(db, "sample") is None


def test_mentions_of_people_who_did_not_consent_are_not_kept(db, settings, classifier, workdir):
    (workdir / "config/samples/mentions.jsonl").write_text(
        json.dumps({"platform": "x", "id": "1", "text": "@iemandanders wat een idioot", "created_at": "2026-11-28T10:00:00Z"})
        + "\n",
        encoding="utf-8",
    )
    _setup(db, workdir)
    [run] = run_once(db, settings, classifier)
    assert run.unmatched == 1 and db["mentions"].count == 0
