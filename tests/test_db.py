"""Migrations on an empty and on an existing database."""

import sqlite3

from monitor.db import migrations, open_db


def test_migrations_create_every_table_on_an_empty_database(tmp_path):
    db = open_db(tmp_path / "new.db")
    for table in ("officials", "accounts", "consents", "mentions", "scores", "reviews", "collector_runs",
                  "cursors", "quarantine", "digests", "audit_log"):
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
    try:
        db["mentions"].insert({"platform": "x", "post_id": "1", "official_id": 999, "text": "t",
                               "created_at": "x", "collected_at": "x", "source": "s", "raw_sha256": "h"})
    except sqlite3.IntegrityError:
        return
    raise AssertionError("foreign key not enforced")
