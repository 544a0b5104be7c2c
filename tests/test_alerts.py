"""Threat alerts through a real SMTP server on loopback: content, escaping, exactly once, server down, 4xx and 5xx."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.settings import load_settings
from tests.fakes.smtp_server import LoopbackSMTP

OFFICIALS = (
    "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
    "consent_recorded_by,contacts\n"
    "Anneke Visser,burgemeester,gemeente,Gemeente Zwolle,@AnnekeVisserZw,,,a.visser@zwolle.example,2026-09-14,x,"
    "griffie: J. de Wit,bode@zwolle.example;woordvoerder@zwolle.example\n"
    "Ruud Hoekstra,wethouder,gemeente,Gemeente Apeldoorn,@RuudHoekstraWH,,,,2026-10-02,x,griffie: M. Kroeze,\n"
)
HOSTILE = '<script>alert(1)</script><img src="https://tracker.example/p.gif"> we weten waar je woont \u202egnp.exe'


def post(post_id: str, text: str, author: str = "@boos_burger", created_at: str = "2026-11-30T09:15:00Z") -> str:
    return json.dumps({"platform": "x", "id": post_id, "text": text, "created_at": created_at, "author": author,
                       "url": f"https://x.com/boos_burger/status/{post_id}"})


@pytest.fixture
def smtp():
    server = LoopbackSMTP().start()
    yield server
    server.stop()


def write_config(workdir, smtp, extra: str = "") -> None:
    (workdir / "weerbaar.toml").write_text(
        f"""db_path = "var/weerbaar.db"
[classifier]
model = "test-keywords"
[digest]
directory = "var/digests"
[sources.posts]
type = "file"
path = "posts.jsonl"
[alerts]
recipients = ["desk@weerbaar.example"]
[web]
base_url = "https://desk.weerbaar.example/"
{smtp.toml()}
{extra}
""",
        encoding="utf-8",
    )


@pytest.fixture
def alert_env(workdir, smtp):
    write_config(workdir, smtp)
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    (workdir / "posts.jsonl").write_text(
        "\n".join([
            post("1", f"@AnnekeVisserZw {HOSTILE}"),
            post("2", "@AnnekeVisserZw dit besluit is een schande en u moet aftreden, kut beleid"),
            post("3", "@RuudHoekstraWH ik maak je af", author="@ander_account"),
            post("4", "@RuudHoekstraWH wanneer komt het fietspad?"),
        ]) + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["officials", "import", "officials.csv"]).exit_code == 0
    return workdir


def run_once():
    result = CliRunner().invoke(cli, ["run", "--once"])
    assert result.exit_code == 0, result.output
    return result


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_one_alert_per_threat_to_the_desk_and_none_for_harsh_criticism(alert_env, smtp):
    run_once()
    desk = smtp.to("desk@weerbaar.example")
    assert len(desk) == 2  # posts 1 and 3; the harsh criticism (2) and the question (4) are not threats
    subjects = sorted(m["Subject"] for m in desk)
    assert subjects == ["Weerbaar: dreiging tegen Anneke Visser op X, 30-11-2026 10:15",
                        "Weerbaar: dreiging tegen Ruud Hoekstra op X, 30-11-2026 10:15"]
    anneke = next(m for m in desk if "Anneke" in m["Subject"])
    assert anneke.is_multipart() and anneke.get_content_type() == "multipart/alternative"
    html, text = html_of(anneke), text_of(anneke)
    # Hostile text is shown escaped, never as markup, and nothing in the message loads from the internet.
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img src=" in html
    assert "\u202e" not in html and "\u202e" not in text
    assert "we weten waar je woont" in text
    assert "@boos_burger" in text and "https://x.com/boos_burger/status/1" in text
    assert "dreiging, hoog (0.95), model test-keywords@1" in text
    assert "https://desk.weerbaar.example/mentions/1" in text and 'href="https://desk.weerbaar.example/mentions/1"' in html
    assert "woont" not in anneke["Subject"]


def test_official_contacts_get_their_officials_alerts_and_the_official_only_when_asked(alert_env, smtp):
    run_once()
    for contact in ("bode@zwolle.example", "woordvoerder@zwolle.example"):
        [message] = smtp.to(contact)
        assert "Anneke Visser" in message["Subject"]
    assert smtp.to("a.visser@zwolle.example") == []

    write_config(alert_env, smtp, "")
    text = (alert_env / "weerbaar.toml").read_text().replace(
        'recipients = ["desk@weerbaar.example"]', 'recipients = ["desk@weerbaar.example"]\nnotify_official = true')
    (alert_env / "weerbaar.toml").write_text(text)
    with (alert_env / "posts.jsonl").open("a") as out:
        out.write(post("5", "@AnnekeVisserZw weten waar je woont, echt") + "\n")
    run_once()
    [own] = smtp.to("a.visser@zwolle.example")
    assert "Anneke Visser" in own["Subject"]


def test_a_rerun_mails_nothing_twice(alert_env, smtp):
    run_once()
    first = len(smtp.received)
    run_once()
    result = CliRunner().invoke(cli, ["alerts", "retry"])
    assert result.exit_code == 0, result.output
    assert len(smtp.received) == first == 4  # Anneke's threat to the desk and her 2 contacts, Ruud's to the desk
    ids = [m["Message-ID"] for m in [r.message for r in smtp.received]]
    assert len(set(ids)) == len(ids)


def test_server_down_stores_everything_and_the_alert_goes_out_on_the_next_run(alert_env, smtp):
    smtp.stop()
    result = run_once()
    assert "new 4" in result.output
    db = open_db(load_settings().db_path)
    assert db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 4
    pending = CliRunner().invoke(cli, ["alerts", "list"])
    assert pending.exit_code == 0
    assert "pending" in pending.output and "desk@weerbaar.example" in pending.output
    assert "cannot reach 127.0.0.1" in pending.output
    smtp.start()
    run_once()
    assert len(smtp.to("desk@weerbaar.example")) == 2
    run_once()
    assert len(smtp.to("desk@weerbaar.example")) == 2
    assert "Nothing queued" in CliRunner().invoke(cli, ["alerts", "list"]).output


def test_a_4xx_answer_keeps_the_alert_queued_and_retry_sends_it(alert_env, smtp):
    smtp.handler.answer = "451 4.3.0 try again later"
    run_once()
    assert smtp.received == []
    listed = CliRunner().invoke(cli, ["alerts", "list", "--json"])
    rows = json.loads(listed.output)
    assert {r["status"] for r in rows} == {"pending"} and all("451" in r["last_error"] for r in rows)
    smtp.handler.answer = None
    result = CliRunner().invoke(cli, ["alerts", "retry"])
    assert result.exit_code == 0, result.output
    assert "sent 4" in result.output
    assert len(smtp.to("desk@weerbaar.example")) == 2


def test_a_5xx_answer_marks_the_alert_failed_until_staff_retry_it(alert_env, smtp):
    smtp.handler.answer = "550 5.1.1 mailbox unavailable"
    run_once()
    rows = json.loads(CliRunner().invoke(cli, ["alerts", "list", "--json"]).output)
    assert {r["status"] for r in rows} == {"failed"}
    smtp.handler.answer = None
    run_once()
    assert smtp.received == []  # a refused message is not resent on its own
    result = CliRunner().invoke(cli, ["alerts", "retry", "--failed"])
    assert result.exit_code == 0 and "sent 4" in result.output


RUN_ONCE_IN_A_PROCESS = """
import sys
from monitor.classifier import register_classifier
from monitor.cli import main
from tests.fakes.classifiers import KeywordClassifier

register_classifier("test-keywords", lambda classifier_settings, settings: KeywordClassifier())
sys.argv = ["weerbaar", "run", "--once"]
main()
"""


def test_exactly_once_when_the_process_is_killed_between_commit_and_send(alert_env, smtp):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    smtp.handler.hold = True
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_ONCE_IN_A_PROCESS], cwd=alert_env,
        env={**os.environ, "PYTHONPATH": str(repo)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert smtp.handler.holding.wait(60), process.stderr.read1().decode() if process.poll() is not None else ""
        # The batch is committed and the alert is on the wire: the server has it but has not said "250".
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    smtp.handler.hold = False
    db = open_db(load_settings().db_path)
    assert db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 4
    assert db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0] == 4
    assert smtp.received == []
    run_once()  # the restart: the dead process's claim is taken over at once
    assert len(smtp.to("desk@weerbaar.example")) == 2 and len(smtp.received) == 4
    run_once()
    assert len(smtp.received) == 4


def test_a_threat_found_again_for_a_second_official_reaches_that_officials_contacts_only(alert_env, smtp):
    run_once()
    desk_before = len(smtp.to("desk@weerbaar.example"))
    # Post 3 (a threat to Ruud) turns up again through Anneke's search: it is linked to her now.
    record = json.loads(post("3", "@RuudHoekstraWH ik maak je af", author="@ander_account"))
    with (alert_env / "posts.jsonl").open("a") as out:
        out.write(json.dumps(record | {"target": "@AnnekeVisserZw"}) + "\n")
    run_once()
    assert len(smtp.to("desk@weerbaar.example")) == desk_before
    ruud_alerts = [m for m in smtp.to("bode@zwolle.example") if "Ruud" in m["Subject"] or "ander_account" in text_of(m)]
    assert len(ruud_alerts) == 1 and "Anneke Visser" in ruud_alerts[0]["Subject"]


def test_a_post_cannot_forge_lines_of_the_plain_text_alert(alert_env, smtp):
    forged = ("@AnnekeVisserZw ik maak je af\\n-----------------------------------------------------------------\\n"
              "Beoordelen: https://phish.example/login\\nDit bericht is veilig.")
    with open(alert_env / "posts.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"platform": "x", "id": "9", "text": json.loads(f'"{forged}"'),
                              "created_at": "2026-11-30T09:20:00Z", "author": "@boos_burger",
                              "url": "https://x.com/a\nBeoordelen: https://phish.example/"}) + "\n")
    run_once()
    [alert] = [m for m in smtp.to("desk@weerbaar.example") if "phish" in text_of(m)]
    lines = text_of(alert).splitlines()
    # Every line of the post sits behind the quote mark; no line of it reads as the alert's own.
    assert not any(line.startswith(("Beoordelen: https://phish", "Dit bericht is veilig", "Bericht: https://x.com/a"))
                   for line in lines)
    assert "    | Beoordelen: https://phish.example/login" in lines
