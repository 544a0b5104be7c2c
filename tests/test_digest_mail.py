"""The mailed digest: what was collected since the last one, its parts and inline chart, and a missed send made up."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.digest_mail import run_scheduled_digest
from monitor.settings import load_settings
from tests.test_alerts import OFFICIALS, html_of, post, text_of, write_config  # noqa: F401 - shared set-up
from tests.test_alerts import smtp  # noqa: F401 - the loopback SMTP server fixture

ZONE = ZoneInfo("Europe/Amsterdam")


def set_up(workdir, smtp, posts: list[str]) -> None:
    write_config(workdir, smtp, "")
    text = (workdir / "weerbaar.toml").read_text().replace(
        '[digest]\ndirectory = "var/digests"',
        '[digest]\ndirectory = "var/digests"\nrecipients = ["griffie@weerbaar.example"]\nsend_at = "07:30"')
    (workdir / "weerbaar.toml").write_text(text)
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    (workdir / "posts.jsonl").write_text("\n".join(posts) + "\n", encoding="utf-8")
    assert CliRunner().invoke(cli, ["officials", "import", "officials.csv"]).exit_code == 0


def run_and_digest() -> str:
    assert CliRunner().invoke(cli, ["run", "--once"]).exit_code == 0
    result = CliRunner().invoke(cli, ["digest", "--send"])
    assert result.exit_code == 0, result.output
    return result.output


def digests_to(smtp, address):
    return [m for m in smtp.to(address) if m["Subject"].strip().startswith("Weerbaar-digest")]


def test_digest_mail_has_text_html_and_an_inline_chart_and_contacts_get_only_their_part(workdir, smtp):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    set_up(workdir, smtp, [
        post("1", "@AnnekeVisserZw <b>idioot</b> dat je bent", created_at=now),
        post("2", "@RuudHoekstraWH ik maak je af", created_at=now),
    ])
    run_and_digest()
    [whole] = digests_to(smtp, "griffie@weerbaar.example")
    assert whole.get_content_type() == "multipart/alternative"
    text, html = text_of(whole), html_of(whole)
    assert "1 dreiging(en), 2 volksvertegenwoordiger(s) geraakt" in text
    assert "#2 [DREIGING, hoog 0.95]" in text and "#1 [agressie, hoog 0.90]" in text
    assert "&lt;b&gt;idioot&lt;/b&gt;" in html and "<b>idioot" not in html
    assert "Anneke Visser" in html and "Ruud Hoekstra" in html
    assert 'href="https://desk.weerbaar.example/mentions/2"' in html
    # The charts travel inside the message: a related part per official, referred to by cid, no remote image.
    related = whole.get_body(("html",))
    parent = next(part for part in whole.walk() if part.get_content_type() == "multipart/related")
    images = [part for part in parent.iter_parts() if part.get_content_type() == "image/png"]
    assert len(images) == 2 and all(img.get_content().startswith(b"\x89PNG") for img in images)
    for image in images:
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert "http://" not in html.split("<body")[0] and 'src="http' not in html and related is not None
    # Anneke's contacts get her part only.
    [part] = digests_to(smtp, "bode@zwolle.example")
    assert "Anneke Visser" in part["Subject"] and "Ruud Hoekstra" not in html_of(part)


def test_a_post_collected_late_reaches_the_next_digest_and_nothing_is_sent_twice(workdir, smtp):
    now = dt.datetime.now(dt.timezone.utc)
    set_up(workdir, smtp, [post("1", "@AnnekeVisserZw idioot", created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))])
    run_and_digest()
    # A backlog arrives: posted four days ago, collected only now.
    old = (now - dt.timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with (workdir / "posts.jsonl").open("a") as out:
        out.write(post("9", "@AnnekeVisserZw clown, idioot", created_at=old) + "\n")
    output = run_and_digest()
    four_days_ago = (now - dt.timedelta(days=4)).astimezone(ZONE).strftime("%d-%m-%Y")
    assert f"posted {four_days_ago}" in output
    first, second = digests_to(smtp, "griffie@weerbaar.example")
    assert "#1 " in text_of(first) and "#1 " not in text_of(second)
    assert "#2 " in text_of(second) and f"geplaatst op {four_days_ago}" in text_of(second)
    result = CliRunner().invoke(cli, ["alerts", "retry"])
    assert result.exit_code == 0 and "sent 0" in result.output
    assert len(digests_to(smtp, "griffie@weerbaar.example")) == 2


def test_a_missed_send_time_is_made_up_once(workdir, smtp):
    set_up(workdir, smtp, [post("1", "@AnnekeVisserZw idioot")])
    assert CliRunner().invoke(cli, ["run", "--once"]).exit_code == 0
    settings = load_settings()
    db = open_db(settings.db_path)
    before = dt.datetime(2026, 12, 1, 7, 0, tzinfo=ZONE)
    assert run_scheduled_digest(db, settings, now=before) is None  # not due yet at 07:00
    late = dt.datetime(2026, 12, 1, 11, 42, tzinfo=ZONE)  # the service was down at 07:30 and starts at 11:42
    assert run_scheduled_digest(db, settings, now=late) is not None
    assert len(digests_to(smtp, "griffie@weerbaar.example")) == 1
    assert run_scheduled_digest(db, settings, now=late + dt.timedelta(hours=1)) is None  # made once that day
    assert len(digests_to(smtp, "griffie@weerbaar.example")) == 1
    next_day = dt.datetime(2026, 12, 2, 7, 31, tzinfo=ZONE)
    assert run_scheduled_digest(db, settings, now=next_day) is not None
    assert len(digests_to(smtp, "griffie@weerbaar.example")) == 2
    row = db.execute("SELECT due_on, posting_days FROM digests ORDER BY id LIMIT 1").fetchone()
    assert row[0] == "2026-12-01" and json.dumps(row[1])


def test_one_posting_day_can_be_mailed_on_request(workdir, smtp):
    set_up(workdir, smtp, [post("1", "@AnnekeVisserZw idioot", created_at="2026-11-28T12:00:00Z")])
    assert CliRunner().invoke(cli, ["run", "--once"]).exit_code == 0
    result = CliRunner().invoke(cli, ["digest", "--date", "2026-11-28", "--send"])
    assert result.exit_code == 0, result.output
    assert "Mail: sent 3" in result.output  # the griffie, and Anneke's two contacts
    [whole] = digests_to(smtp, "griffie@weerbaar.example")
    assert "Weerbaar-digest 28-11-2026" in whole["Subject"] and "#1 " in text_of(whole)


def test_a_pile_on_is_capped_in_the_mail_counted_and_left_whole_in_the_digest_file(workdir, smtp):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    insults = ["idioot", "clown", "kutbeleid", "idioot en clown"]
    set_up(workdir, smtp, [post("1", "@AnnekeVisserZw ik maak je af", created_at=now)]
           + [post(str(i), f"@AnnekeVisserZw {word}", created_at=now) for i, word in enumerate(insults, start=2)]
           + [post("9", "@RuudHoekstraWH idioot", created_at=now)])
    config = workdir / "weerbaar.toml"
    config.write_text(config.read_text().replace('send_at = "07:30"', 'send_at = "07:30"\nmail_items_per_official = 2'))
    run_and_digest()
    [whole] = digests_to(smtp, "griffie@weerbaar.example")
    text, html = text_of(whole), html_of(whole)
    # The subject and the header count everything; the mail shows the threat and the most probable insult.
    assert "1 dreiging(en), 6 gemarkeerd" in whole["Subject"]
    assert "#1 [DREIGING" in text and sum(f"#{i} [agressie" in text for i in range(2, 6)) == 1
    assert "... en nog 0 dreiging(en) en 3 ander(e) gemarkeerd(e) bericht(en), niet in deze mail" in text
    assert 'href="https://desk.weerbaar.example/" style="color: #0b57d0;">zie de reviewdesk</a>' in html
    assert "@RuudHoekstraWH idioot" in text and text.count("niet in deze mail") == 1  # Ruud's one mention is under the cap
    # Anneke's contacts get her part, capped the same way; the digest file keeps every mention.
    [part] = digests_to(smtp, "bode@zwolle.example")
    assert "niet in deze mail" in text_of(part)
    [stored] = list((workdir / "var" / "digests").glob("*.txt"))
    content = stored.read_text(encoding="utf-8")
    assert all(f"#{i} [" in content for i in range(1, 6)) and "niet in deze mail" not in content
