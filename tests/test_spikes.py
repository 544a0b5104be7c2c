"""Spike alerts: a synthetic burst against an official's own baseline gives one alert that says what drives it."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from monitor.alerts import find_spikes, phrasing
from monitor.cli import cli
from monitor.db import open_db
from monitor.settings import load_settings
from tests.test_alerts import OFFICIALS, html_of, post, text_of, write_config  # noqa: F401
from tests.test_alerts import smtp  # noqa: F401 - the loopback SMTP server fixture

DAY = dt.date(2026, 11, 30)


def stamp(day: dt.date, hour: int, minute: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00Z"


def baseline_and_burst() -> list[str]:
    """Eight weeks of one or two flagged posts a day from regulars, then a pile-on: twelve new accounts, one phrasing."""
    posts = []
    for offset in range(1, 57):
        day = DAY - dt.timedelta(days=offset)
        for n in range(1 + offset % 2):
            posts.append(post(f"b{offset}-{n}", f"@AnnekeVisserZw idioot, dag {offset}", author=f"@vaste_{n}",
                              created_at=stamp(day, 9, n)))
    for n in range(12):
        record = post(f"p{n}", f"@AnnekeVisserZw IDIOOT!! Aftreden nu, {'!' * n} #zwolle https://t.example/{n}",
                      author=f"@nieuw_{n}", created_at=stamp(DAY, 10, n))
        posts.append(record.replace('"author"', '"in_reply_to": "777", "author"'))
    posts.append(post("p-own", "@AnnekeVisserZw jij kut bestuurder", author="@vaste_0", created_at=stamp(DAY, 11)))
    # Ruud has a steady, busy baseline: a busy day that is normal for him is no spike.
    for offset in range(0, 57):
        day = DAY - dt.timedelta(days=offset)
        for n in range(6):
            posts.append(post(f"r{offset}-{n}", f"@RuudHoekstraWH idioot {offset} {n}", author=f"@r{n}",
                              created_at=stamp(day, 12, n)))
    return posts


def test_near_identical_texts_share_a_phrasing():
    assert phrasing("@a IDIOOT!! Aftreden nu, !!! #zwolle https://t.example/3") == phrasing(
        "@b idioot aftreden nu #zwolle https://t.example/9")


def test_a_burst_sends_one_spike_alert_that_says_what_drives_it(workdir, smtp):
    write_config(workdir, smtp, "")
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    (workdir / "posts.jsonl").write_text("\n".join(baseline_and_burst()) + "\n", encoding="utf-8")
    assert CliRunner().invoke(cli, ["officials", "import", "officials.csv"]).exit_code == 0
    assert CliRunner().invoke(cli, ["run", "--once"]).exit_code == 0
    settings = load_settings()
    db = open_db(settings.db_path)
    [spike] = find_spikes(db, settings, DAY)
    assert spike.name == "Anneke Visser" and spike.count == 13
    assert spike.authors == 13 and spike.first_time_authors == 12
    assert spike.repeated_texts[0][1] == 12
    assert spike.replied_to[:2] == ("777", 12)

    from monitor.alerts import queue_spike_alerts, send_alerts

    assert queue_spike_alerts(db, settings, DAY) == 3  # the desk and Anneke's two contacts
    assert queue_spike_alerts(db, settings, DAY) == 0  # one spike alert per official and day
    send_alerts(db, settings)
    [alert] = [m for m in smtp.to("desk@weerbaar.example") if "piek" in m["Subject"]]
    assert alert["Subject"] == "Weerbaar: piek van 13 gemarkeerde berichten aan Anneke Visser op 30-11-2026"
    text = text_of(alert)
    assert "13 verschillende afzender(s), van wie 12 voor het eerst" in text
    assert "12 accounts:" in text and "12 van de 13 berichten reageren op bericht 777" in text
    assert "Ruud" not in alert["Subject"]
    send_alerts(db, settings)
    assert len([m for m in smtp.to("desk@weerbaar.example") if "piek" in m["Subject"]]) == 1
