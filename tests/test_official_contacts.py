"""Support contacts per official: the CSV column, `officials edit` with the import's checks, erased on withdrawal."""

from __future__ import annotations

from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.officials import official_fields
from monitor.settings import load_settings
from tests.test_alerts import OFFICIALS, alert_env, run_once, smtp, write_config  # noqa: F401


def db_now():
    return open_db(load_settings().db_path)


def test_a_bad_contact_in_the_csv_imports_nothing_and_names_line_and_field(workdir):
    (workdir / "bad.csv").write_text(OFFICIALS.replace("woordvoerder@zwolle.example", "woordvoerder-at-zwolle"))
    result = CliRunner().invoke(cli, ["officials", "import", "bad.csv"])
    assert result.exit_code == 2
    assert "bad.csv:2: field 'contacts': not an e-mail address: 'woordvoerder-at-zwolle'" in result.output
    assert db_now()["officials"].count == 0


def test_edit_changes_contacts_and_handles_with_the_import_checks(alert_env):
    runner = CliRunner()
    result = runner.invoke(cli, ["officials", "edit", "2", "--contacts", "staf@apeldoorn.example; pers@apeldoorn.example"])
    assert result.exit_code == 0, result.output
    assert "changed contacts" in result.output
    assert official_fields(db_now(), 2)["contacts"] == "staf@apeldoorn.example;pers@apeldoorn.example"

    before = db_now().execute("SELECT * FROM officials WHERE id = 2").fetchone()
    for args, message in (
        (["--contacts", "geen adres"], "field 'contacts': not an e-mail address: 'geen adres'"),
        (["--mastodon", "@ruud@mastodon.nl"], "consent_scope does not include mastodon"),
        (["--x", "@AnnekeVisserZw"], "is already registered to official 1"),
        (["--role", "koning"], "field 'role': unknown role 'koning'"),
        (["--x", ""], "at least one of x_handle"),
    ):
        result = runner.invoke(cli, ["officials", "edit", "2", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert db_now().execute("SELECT * FROM officials WHERE id = 2").fetchone() == before

    result = runner.invoke(cli, ["officials", "edit", "2", "--x", "@RuudNieuw"])
    assert result.exit_code == 0 and "changed x_handle" in result.output
    assert db_now().execute("SELECT handle FROM accounts WHERE official_id = 2").fetchall() == [("ruudnieuw",)]
    assert runner.invoke(cli, ["officials", "edit", "2", "--x", "@ruudnieuw"]).output.strip() == "Nothing changed."
    audit = db_now().execute("SELECT detail FROM audit_log WHERE action = 'official.edited'").fetchall()
    assert audit and all("apeldoorn" not in row[0] and "ruud" not in row[0].lower() for row in audit)


def test_new_contacts_get_the_next_alert(alert_env, smtp):
    assert CliRunner().invoke(cli, ["officials", "edit", "2", "--contacts", "staf@apeldoorn.example"]).exit_code == 0
    run_once()
    [alert] = smtp.to("staf@apeldoorn.example")
    assert "Ruud Hoekstra" in alert["Subject"]


def test_withdrawal_erases_contacts_and_queued_mail_about_the_official(alert_env, smtp):
    smtp.stop()
    run_once()
    db = db_now()
    assert db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0] == 4
    assert CliRunner().invoke(cli, ["officials", "withdraw", "1", "--yes"]).exit_code == 0
    db = db_now()
    assert db.execute("SELECT contacts, email FROM officials WHERE id = 1").fetchone() == (None, None)
    # Anneke's alert went with her mention; Ruud's stays queued.
    rows = db.execute("SELECT recipient, subject FROM outbox").fetchall()
    assert rows == [("desk@weerbaar.example", rows[0][1])] and "Ruud" in rows[0][1]
