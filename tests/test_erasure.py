"""Erasure is complete and final: digests on disk, quarantine, cursors and run records, and no silent re-import."""

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.digests import write_digest
from monitor.officials import RegistryError, import_officials, withdraw_official
from monitor.pipeline import run_once
from monitor.retention import purge_expired

HEADER = ("name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
          "consent_recorded_by\n")
OFFICIALS = HEADER + (
    "Wim Dekker,wethouder,gemeente,Gemeente Ede,@WethouderDekker,,,,2026-10-01,x,griffie\n"
    "Sara El Amrani,raadslid,gemeente,Gemeente Ede,@RaadslidSara,,,,2026-10-01,x,griffie\n"
)
DAY = dt.date(2026, 11, 27)


def _post(post_id, text, minute=0, **extra):
    return json.dumps({"platform": "x", "id": post_id, "text": text, "created_at": f"2026-11-27T10:{minute:02d}:00Z",
                       "author": "@boze_burger", **extra}) + "\n"


@pytest.fixture
def two_officials(db, workdir):
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    import_officials(db, workdir / "officials.csv")
    ids = dict(db.execute("SELECT name, id FROM officials").fetchall())
    return ids["Wim Dekker"], ids["Sara El Amrani"]


def test_withdrawal_rewrites_digest_files_and_cleans_quarantine_cursors_and_runs(db, settings, classifier, workdir,
                                                                                 two_officials):
    dekker, sara = two_officials
    (workdir / "config/samples/mentions.jsonl").write_text(
        _post("1", "@WethouderDekker jij idioot", 1) + _post("2", "@RaadslidSara idioot", 2)
        + '{"platform": "x", "id": "3", "text": "@WethouderDekker kapot", "created_at": "nooit"}\n',
        encoding="utf-8")
    run_once(db, settings, classifier)
    html, text, _ = write_digest(db, settings, DAY)
    assert "Wim Dekker" in html.read_text() and "Wim Dekker" in text.read_text()
    assert db["quarantine"].count == 1
    # A platform cursor map and a run record that name the account, as the X collector stores them.
    cursor = json.dumps({"x:wethouderdekker": "190", "x:raadslidsara": "191"})
    db["cursors"].upsert({"source": "x", "cursor": cursor, "updated_at": "2026-11-27T10:00:00Z"}, pk="source")
    db["collector_runs"].insert({"source": "x", "started_at": "2026-11-27T10:00:00Z", "status": "error",
                                 "cursor_before": cursor, "cursor_after": cursor,
                                 "error_message": "x account wethouderdekker: suspended"})
    counts = withdraw_official(db, dekker, settings=settings)
    assert counts["quarantine"] == 1 and counts["cursors"] == 1 and counts["digests_rewritten"] == 1
    for path in (html, text):
        content = path.read_text(encoding="utf-8")
        assert "Wim Dekker" not in content and "WethouderDekker" not in content and "wethouder," not in content
        assert "Sara El Amrani" in content
    assert db["quarantine"].count == 0
    assert json.loads(db["cursors"].get("x")["cursor"]) == {"x:raadslidsara": "191"}
    run = db.execute("SELECT cursor_before, cursor_after, error_message FROM collector_runs "
                     "WHERE source = 'x'").fetchone()
    assert "wethouderdekker" not in " ".join(run).lower()
    official = db["officials"].get(dekker)
    assert (official["name"], official["role"], official["body_name"]) == ("", "", "")


def test_the_withdraw_command_reports_what_it_erased(db, settings, workdir, two_officials):
    dekker, _ = two_officials
    result = CliRunner().invoke(cli, ["officials", "withdraw", str(dekker), "--yes"])
    assert result.exit_code == 0, result.output
    assert "quarantined record(s)" in result.output and "digest(s) rewritten" in result.output


def test_reimporting_a_withdrawn_official_is_refused_unless_consent_is_newer(db, workdir, two_officials):
    dekker, _ = two_officials
    withdraw_official(db, dekker)
    stale = workdir / "stale.csv"
    stale.write_text(OFFICIALS, encoding="utf-8")
    with pytest.raises(RegistryError) as refused:
        import_officials(db, stale)
    [message] = refused.value.errors
    assert "@WethouderDekker belonged to an official who withdrew consent" in message
    assert "consent_date" in message and str(stale) in message
    assert db.execute("SELECT count(*) FROM officials WHERE status = 'active'").fetchone()[0] == 1
    renewed = workdir / "renewed.csv"
    today = dt.date.today().isoformat()
    renewed.write_text(HEADER + f"Wim Dekker,wethouder,gemeente,Gemeente Ede,@WethouderDekker,,,,{today},x,"
                       "griffie\n", encoding="utf-8")
    # Consent given on the day of the withdrawal is not after it.
    with pytest.raises(RegistryError):
        import_officials(db, renewed)
    db.execute("UPDATE withdrawn_accounts SET withdrawn_at = '2026-10-15T00:00:00Z'")
    db.conn.commit()
    assert import_officials(db, renewed) == {"added": 1, "skipped": 0}


def test_purge_deletes_digest_files_past_retention(db, settings, classifier, workdir, two_officials):
    html, text, _ = write_digest(db, settings, DAY)
    counts = purge_expired(db, settings, now=dt.datetime(2028, 1, 1, tzinfo=dt.timezone.utc))
    assert counts["digests"] == 1 and not html.exists() and not text.exists() and db["digests"].count == 0
