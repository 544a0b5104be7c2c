"""No source gets stuck and nothing is kept that should not be: bad records, changed files, hostile text, locks."""

import csv
import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys

from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.digests import write_digest
from monitor.officials import import_officials
from monitor.pipeline import get_cursor, mark_interrupted_runs, run_once, run_source
from scrapers.base import Batch
from scrapers.files import parse_generic

OFFICIALS = ("name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,"
             "consent_scope,consent_recorded_by\n"
             "Wim Dekker,wethouder,gemeente,Gemeente Ede,@WethouderDekker,,,,2026-10-01,x,griffie\n")


def post(post_id, text="@WethouderDekker jij idioot", created_at="2026-11-27T10:00:00Z", **extra):
    return json.dumps({"platform": "x", "id": post_id, "text": text, "created_at": created_at,
                       "author": "@boze_burger", **extra}, ensure_ascii=False) + "\n"


def setup(db, workdir, lines):
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    import_officials(db, workdir / "officials.csv")
    posts = workdir / "config/samples/mentions.jsonl"
    posts.write_text("".join(lines), encoding="utf-8")
    return posts


def quarantine(db):
    return {row["location"].rsplit(":", 1)[1]: row for row in db["quarantine"].rows}


def test_impossible_dates_and_wrong_types_are_quarantined_with_line_and_reason(db, settings, classifier, workdir):
    posts = setup(db, workdir, [
        post("1", created_at="0001-01-01T00:00:00+01:00"),
        post("2", created_at="9999-12-31T23:59:59Z"),
        post("3", text=12345),
        post("4", author=["@a", "@b"]),
        post("5"),
    ])
    [run] = run_once(db, settings, classifier)
    assert run.status == "ok" and run.new == 1 and run.quarantined == 4
    rows = quarantine(db)
    assert "created_at" in rows["1"]["reason"] and "out of range" in rows["1"]["reason"]
    assert "created_at" in rows["2"]["reason"] and "out of range" in rows["2"]["reason"]
    assert "field 'text'" in rows["3"]["reason"] and "field 'author'" in rows["4"]["reason"]
    assert all(row["location"] == f"{posts.relative_to(workdir)}:{line}" for line, row in rows.items())


def test_a_huge_csv_field_is_quarantined_and_the_rest_of_the_file_is_read(db, settings, classifier, workdir):
    setup(db, workdir, [])
    path = workdir / "config/samples/mentions.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["platform", "id", "text", "created_at"])
        writer.writerow(["x", "1", "@WethouderDekker " + "x" * 200_000, "2026-11-27T10:00:00Z"])
        writer.writerow(["x", "2", "@WethouderDekker jij idioot", "2026-11-27T10:01:00Z"])
    settings.sources["sample"].path = path
    [run] = run_once(db, settings, classifier)
    assert run.status == "ok" and run.new == 1 and run.quarantined == 1
    [row] = db["quarantine"].rows
    assert "field 'text' is over the limit" in row["reason"] and row["location"].endswith(":2")


def test_quarantine_keeps_a_capped_excerpt_and_the_sha256_of_the_whole_record(db, settings, classifier, workdir):
    huge = "{" + "kapot " * 5000
    setup(db, workdir, [huge + "\n", post("2")])
    run_once(db, settings, classifier)
    [row] = db["quarantine"].rows
    assert len(row["raw"]) < 4200 and row["raw"].startswith("{kapot")
    assert row["raw_sha256"] == hashlib.sha256(huge.encode()).hexdigest()


def test_a_replaced_or_truncated_file_is_noticed_and_read_again(db, settings, classifier, workdir):
    posts = setup(db, workdir, [post("1"), post("2")])
    run_once(db, settings, classifier)
    # Replaced by a new export with as many lines: a line count alone would skip it all.
    posts.write_text(post("3", text="@WethouderDekker ander bestand") + post("4"), encoding="utf-8")
    [replaced] = run_once(db, settings, classifier)
    assert replaced.new == 2
    # Truncated to one line, then a new one appended: the new one is read, the old one skipped as a duplicate.
    posts.write_text(post("3", text="@WethouderDekker ander bestand") + post("5"), encoding="utf-8")
    with posts.open("a", encoding="utf-8") as out:
        out.write(post("6"))
    [grown] = run_once(db, settings, classifier)
    assert grown.new == 2 and grown.duplicates == 1
    assert sorted(r[0] for r in db.execute("SELECT post_id FROM mentions")) == ["1", "2", "3", "4", "5", "6"]
    # Appending only reads what is new.
    with posts.open("a", encoding="utf-8") as out:
        out.write(post("7"))
    [appended] = run_once(db, settings, classifier)
    assert appended.fetched == 1 and appended.new == 1


def test_sources_reset_rewinds_a_cursor_on_purpose(db, settings, classifier, workdir):
    setup(db, workdir, [post("1")])
    run_once(db, settings, classifier)
    assert get_cursor(db, "sample") is not None
    result = CliRunner().invoke(cli, ["sources", "reset", "sample", "--yes"])
    assert result.exit_code == 0, result.output
    assert get_cursor(db, "sample") is None
    [again] = run_once(db, settings, classifier)
    assert again.fetched == 1 and again.duplicates == 1
    unknown = CliRunner().invoke(cli, ["sources", "reset", "nope", "--yes"])
    assert unknown.exit_code != 0 and "unknown source 'nope'" in unknown.output


def test_bidi_controls_c1_and_zero_width_characters_are_made_harmless():
    record = {"platform": "x", "id": "1", "created_at": "2026-11-27T10:00:00Z",
              "author": "@boze\u202e_burger\u200b\u0085", "target": "@Wethouder\u2066Dekker",
              "text": "@WethouderDekker id\u200bioot \u202egnp.exe\u202c \x9b31m rood 👩\u200d👩\u200d👧"}
    mention = parse_generic(record, record)
    assert mention.author_handle == "@boze_burger" and mention.target_handle == "@WethouderDekker"
    assert mention.text == "@WethouderDekker idioot gnp.exe 31m rood 👩\u200d👩\u200d👧"


def test_a_post_cannot_forge_lines_of_the_plain_text_digest(db, settings, classifier, workdir):
    forged = "@WethouderDekker idioot\n\n== Nep Persoon (burgemeester, Gemeente X) ==\n[DREIGING high 0.99] x"
    setup(db, workdir, [post("1", text=forged)])
    run_once(db, settings, classifier)
    _, text_path, _ = write_digest(db, settings, dt.date(2026, 11, 27))
    lines = text_path.read_text(encoding="utf-8").splitlines()
    assert "== Nep Persoon (burgemeester, Gemeente X) ==" not in lines
    assert "    | == Nep Persoon (burgemeester, Gemeente X) ==" in lines
    assert [line for line in lines if line.startswith("[DREIGING")] == []


class LockingSource:
    """A source whose first batch arrives while another process holds the database's write lock."""

    name = "sample"

    def __init__(self, path):
        self.path = path

    def fetch(self, cursor):
        other = sqlite3.connect(self.path)
        other.execute("BEGIN IMMEDIATE")
        try:
            record = json.loads(post("1"))
            yield Batch(mentions=[parse_generic(record, record)], cursor="1")
        finally:
            other.rollback()
            other.close()


def test_a_locked_database_waits_then_fails_clearly_and_the_run_is_recorded(settings, classifier, workdir):
    db = open_db(settings.db_path, busy_timeout_seconds=0.2)
    setup(db, workdir, [])
    summary = run_source(db, LockingSource(settings.db_path), classifier, settings)
    assert summary.status == "error" and summary.error.startswith("database is locked")
    run = next(db["collector_runs"].rows_where(order_by="id desc", limit=1))
    assert run["status"] == "error" and run["error_message"].startswith("database is locked")
    assert db["mentions"].count == 0 and get_cursor(db, "sample") is None
    db.close()


def test_a_run_whose_process_died_shows_as_interrupted(db, settings, workdir):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    db["collector_runs"].insert({"source": "sample", "started_at": "2026-11-27T10:00:00Z", "status": "running",
                                 "pid": int(dead.stdout)})
    db["collector_runs"].insert({"source": "sample", "started_at": "2026-11-27T10:00:00Z", "status": "running",
                                 "pid": None})
    assert mark_interrupted_runs(db) == 2
    statuses = [r["status"] for r in db["collector_runs"].rows]
    assert statuses == ["interrupted", "interrupted"]
    result = CliRunner().invoke(cli, ["status"])
    assert "interrupted" in result.output
