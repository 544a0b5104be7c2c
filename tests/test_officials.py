"""The registry: import validation, consent, and erasure on withdrawal."""

import json

from click.testing import CliRunner

from monitor.cli import cli
from monitor.officials import import_officials, list_officials, withdraw_official
from monitor.pipeline import run_once

HEADER = "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,consent_recorded_by\n"


def test_import_registers_officials_with_accounts_and_consent(db, workdir):
    result = import_officials(db, workdir / "config/samples/officials.csv")
    assert result["added"] == 12
    rows = list_officials(db)
    assert len(rows) == 12 and all(r["consent_date"] for r in rows)
    assert db["accounts"].count >= 12
    # Importing the same file again adds nobody.
    assert import_officials(db, workdir / "config/samples/officials.csv") == {"added": 0, "skipped": 12}


def test_a_bad_row_imports_nothing_and_names_line_and_field(db, workdir):
    bad = workdir / "bad.csv"
    bad.write_text(
        HEADER
        + "Ann de Vries,raadslid,gemeente,Gemeente Ede,@AnnVries,,,,2026-05-01,x,griffie\n"
        + "Piet Jansen,koning,gemeente,Gemeente Ede,@PietJ,,,,2026-05-01,x,griffie\n"
        + "Kees Bakker,wethouder,gemeente,Gemeente Ede,@KeesB,,,,01-05-2026,x,griffie\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["officials", "import", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: field 'role'" in result.output
    assert f"{bad}:4: field 'consent_date'" in result.output
    assert db["officials"].count == 0 and db["accounts"].count == 0 and db["consents"].count == 0


def test_a_handle_outside_the_consent_scope_is_refused(db, workdir):
    bad = workdir / "scope.csv"
    bad.write_text(HEADER + "Ann de Vries,raadslid,gemeente,Gemeente Ede,@AnnVries,,ann.bsky.social,,2026-05-01,x,griffie\n")
    result = CliRunner().invoke(cli, ["officials", "import", str(bad)])
    assert result.exit_code == 2
    assert "field 'bluesky_handle'" in result.output and "no consent" in result.output
    assert db["officials"].count == 0


def test_withdraw_erases_exactly_that_officials_data(db, settings, classifier, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    run_once(db, settings, classifier)
    target = db.execute(
        "SELECT official_id FROM mention_targets GROUP BY official_id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    mention_id = db.execute("SELECT mention_id FROM mention_targets WHERE official_id = ? LIMIT 1",
                            [target]).fetchone()[0]
    db["reviews"].insert({"mention_id": mention_id, "reviewer": "staf", "labels": '["threat"]',
                          "reviewed_at": "2026-11-28T10:00:00Z"})
    other_id = db.execute("SELECT mention_id FROM mention_targets WHERE official_id != ? LIMIT 1",
                          [target]).fetchone()[0]
    db["reviews"].insert({"mention_id": other_id, "reviewer": "staf", "labels": "[]", "reviewed_at": "2026-11-28"})
    before_total = db["mentions"].count
    own = db.execute("SELECT count(*) FROM mention_targets WHERE official_id = ?", [target]).fetchone()[0]
    name = db.execute("SELECT name FROM officials WHERE id = ?", [target]).fetchone()[0]

    result = CliRunner().invoke(cli, ["officials", "withdraw", str(target), "--yes"])

    assert result.exit_code == 0, result.output
    assert db.execute("SELECT count(*) FROM mention_targets WHERE official_id = ?", [target]).fetchone()[0] == 0
    assert db["mentions"].count == before_total - own
    assert db["scores"].count == db["mentions"].count  # scores of the others untouched
    assert db["reviews"].count == 1
    assert db.execute("SELECT count(*) FROM accounts WHERE official_id = ?", [target]).fetchone()[0] == 0
    assert db.execute("SELECT name, status FROM officials WHERE id = ?", [target]).fetchone() == ("", "withdrawn")
    assert db.execute("SELECT withdrawn_at FROM consents WHERE official_id = ?", [target]).fetchone()[0]
    audit = db.execute("SELECT detail FROM audit_log WHERE action = 'official.withdrawn'").fetchone()[0]
    assert json.loads(audit)["mentions"] == own
    # No content of the withdrawn official survives anywhere in the database file.
    dump = "\n".join(db.iterdump())
    assert name not in dump


def test_no_consent_no_collection_after_withdrawal(db, settings, classifier, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    withdraw_official(db, 1)
    run_once(db, settings, classifier)
    assert db.execute("SELECT count(*) FROM mention_targets WHERE official_id = 1").fetchone()[0] == 0
    assert db["mentions"].count > 50


def test_withdrawing_twice_or_an_unknown_official_is_a_clear_error(db, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    withdraw_official(db, 2)
    runner = CliRunner()
    again = runner.invoke(cli, ["officials", "withdraw", "2", "--yes"])
    assert again.exit_code == 2 and "already withdrawn" in again.output
    unknown = runner.invoke(cli, ["officials", "withdraw", "999", "--yes"])
    assert unknown.exit_code == 2 and "no such official" in unknown.output


def test_add_and_list(db):
    runner = CliRunner()
    result = runner.invoke(cli, ["officials", "add", "--name", "Ann de Vries", "--role", "dijkgraaf",
                                 "--body-type", "waterschap", "--body-name", "Waterschap Vallei en Veluwe",
                                 "--bluesky", "annvries.bsky.social", "--consent-date", "2026-06-01",
                                 "--consent-scope", "bluesky", "--recorded-by", "secretariaat"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["officials", "list", "--json"])
    rows = json.loads(listed.output)
    assert rows[0]["name"] == "Ann de Vries" and rows[0]["handles"] == "bluesky:annvries.bsky.social"


def test_authorise_marks_the_account_and_is_audited(db, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    runner = CliRunner()
    result = runner.invoke(cli, ["officials", "authorise", "1", "--platform", "mastodon"])
    assert result.exit_code == 0, result.output
    assert db.execute("SELECT authorised FROM accounts WHERE official_id = 1 AND platform = 'mastodon'").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'account.authorised'").fetchone()[0] == 1
    revoked = runner.invoke(cli, ["officials", "authorise", "1", "--platform", "mastodon", "--revoke"])
    assert revoked.exit_code == 0
    assert db.execute("SELECT authorised FROM accounts WHERE official_id = 1 AND platform = 'mastodon'").fetchone() == (0,)
    # Harm Jan Oosterveld has only an X handle in the sample.
    oid = db.execute("SELECT id FROM officials WHERE name = 'Harm Jan Oosterveld'").fetchone()[0]
    missing = runner.invoke(cli, ["officials", "authorise", str(oid), "--platform", "bluesky"])
    assert missing.exit_code == 2 and "no bluesky account" in missing.output
