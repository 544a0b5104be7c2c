"""The synthetic database that benchmarks run against is a valid Weerbaar database of the asked size."""

import datetime as dt

from monitor.db import open_db
from monitor.digests import build_digest
from monitor.settings import load_settings
from monitor.synthetic import SyntheticSpec, generate_database


def test_generated_database_has_the_asked_size_and_passes_the_foreign_key_check(tmp_path):
    path = tmp_path / "synthetic.db"
    spec = SyntheticSpec(mentions=3_000, officials=20, days=10, end=dt.date(2026, 11, 30))
    counts = generate_database(path, spec, chunk=1_000)
    assert counts["mentions"] == counts["scores"] == 3_000 and counts["officials"] == 20
    assert 3_000 < counts["mention_targets"] < 3_600  # about a tenth of posts address a second official
    db = open_db(path)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    days = {r[0] for r in db.execute("SELECT substr(created_at, 1, 10) FROM mentions")}
    assert min(days) == "2026-11-21" and max(days) == "2026-11-30"
    # The same seed gives the same database; the digest reads it like a real one.
    again = tmp_path / "again.db"
    generate_database(again, spec, chunk=1_000)
    assert open_db(again).execute("SELECT text FROM mentions ORDER BY id").fetchall() == db.execute(
        "SELECT text FROM mentions ORDER BY id").fetchall()
    settings = load_settings(None, db_path=str(path))
    digest = build_digest(db, settings, dt.date(2026, 11, 29), ("weerbaar-onnx", "synthetic"))
    assert digest.threats > 0 and sum(o.mentions for o in digest.officials) > 300
