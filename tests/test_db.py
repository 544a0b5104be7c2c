"""Migrations on an empty and on an existing database."""

import sqlite3

import sqlite_utils

from monitor.db import migrations, open_db


def test_migrations_create_every_table_on_an_empty_database(tmp_path):
    db = open_db(tmp_path / "new.db")
    for table in ("officials", "accounts", "consents", "mentions", "scores", "reviews", "collector_runs",
                  "cursors", "quarantine", "digests", "audit_log", "mention_targets"):
        assert db[table].exists(), table
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    applied = [m.name for m in migrations.applied(db)]
    assert applied == [m.name for m in migrations._migrations]


def test_reopening_keeps_data_and_applies_only_new_migrations(tmp_path):
    path = tmp_path / "old.db"
    first = [m.name for m in migrations._migrations][:2]
    # An "existing" database made by an older release: only the first two migrations applied.
    db = open_db(path)
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE api_usage")
    conn.execute("ALTER TABLE cursors DROP COLUMN retry_after")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name NOT IN (?, ?)", first)
    conn.execute("DROP TABLE collector_runs")
    for table in ("cursors", "quarantine", "digests", "audit_log"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute(
        "INSERT INTO officials (name, role, body_type, body_name, created_at) "
        "VALUES ('Test Persoon', 'raadslid', 'gemeente', 'Gemeente Test', '2026-01-01')"
    )
    conn.commit()
    conn.close()
    db = open_db(path)
    assert db["officials"].count == 1
    assert db["api_usage"].exists() and db["audit_log"].exists()
    assert "retry_after" in db["cursors"].columns_dict
    assert [m.name for m in migrations.applied(db)] == [m.name for m in migrations._migrations]


def test_a_mention_cannot_point_at_an_unknown_official(db):
    mention_id = db["mentions"].insert({"platform": "x", "post_id": "1", "text": "t", "created_at": "x",
                                        "collected_at": "x", "source": "s", "raw_sha256": "h"}).last_pk
    try:
        db["mention_targets"].insert({"mention_id": mention_id, "official_id": 999, "linked_at": "x"})
    except sqlite3.IntegrityError:
        return
    raise AssertionError("foreign key not enforced")


def test_mention_targets_migration_converts_each_mention_with_its_official_and_scores(tmp_path):
    path = tmp_path / "m004.db"
    # A database of the release before mention_targets: one official_id and target_handle on each mention.
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA foreign_keys=ON")
    migrations.apply(db, stop_before="m005_mention_targets")
    official = db["officials"].insert({"name": "Test Persoon", "role": "raadslid", "body_type": "gemeente",
                                       "body_name": "Gemeente Test", "created_at": "2026-01-01"}).last_pk
    mention = db["mentions"].insert({"platform": "x", "post_id": "7", "official_id": official,
                                     "target_handle": "testpersoon", "text": "@testpersoon hallo",
                                     "created_at": "2026-11-01T10:00:00Z", "collected_at": "2026-11-01T10:05:00Z",
                                     "source": "x", "raw_sha256": "h"}).last_pk
    db["scores"].insert({"mention_id": mention, "model": "m", "model_version": "1", "probabilities": "{}",
                         "labels": "[]", "flagged": 0, "scored_at": "2026-11-01T10:05:00Z"})
    db.close()

    db = open_db(path)

    assert "official_id" not in db["mentions"].columns_dict and "target_handle" not in db["mentions"].columns_dict
    assert db.execute("SELECT mention_id, official_id, handle, linked_at FROM mention_targets").fetchall() == [
        (mention, official, "testpersoon", "2026-11-01T10:05:00Z")]
    assert db["scores"].count == 1  # rebuilding mentions must not cascade into its scores
    assert db.execute("SELECT text FROM mentions").fetchone()[0] == "@testpersoon hallo"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
