"""The service: one job per enabled source, the digest at 07:30 local across DST, and a clean stop on SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.db import open_db
from monitor.officials import import_officials
from monitor.scheduler import MonitorJobs, build_scheduler, digest_trigger, serve
from monitor.settings import Settings
from tests.fakes.classifiers import CalmClassifier

REPO = Path(__file__).resolve().parent.parent
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
CREATED_AT = "2026-11-27T10:00:00Z"
OFFICIALS_CSV = (
    "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
    "consent_recorded_by\n"
    "Anneke Visser,burgemeester,gemeente,Gemeente Zwolle,@AnnekeVisserZw,,,,2026-09-14,x,griffie: J. de Wit\n"
)
# The real CLI in a real process, with a stand-in model registered first (the real one is not loaded).
CLI_WITH_FAKE_MODEL = REPO / "tests" / "fakes" / "cli_with_fake_model.py"


def write_posts(path: Path, count: int) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {"platform": "x", "id": str(i), "text": f"@AnnekeVisserZw vraag {i}", "created_at": CREATED_AT}
            )
            + "\n"
            for i in range(1, count + 1)
        )
    )


def test_one_job_per_enabled_source_and_the_digest():
    settings = Settings(
        sources={
            "x-main": {"type": "file", "path": "a.jsonl", "interval_minutes": 15},
            "bsky": {"type": "file", "path": "b.jsonl", "interval_minutes": 60},
            "off": {"type": "file", "path": "c.jsonl", "enabled": False},
        }
    )
    scheduler = build_scheduler(settings, MonitorJobs(settings, CalmClassifier()), misfire_grace_seconds=120)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"collect:x-main", "collect:bsky", "digest", "outbox"}
    assert jobs["collect:x-main"].trigger.interval == dt.timedelta(minutes=15)
    assert jobs["collect:bsky"].trigger.interval == dt.timedelta(minutes=60)
    assert jobs["collect:bsky"].args == ("bsky",)
    for job in jobs.values():
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 120)
    assert str(jobs["digest"].trigger.timezone) == "Europe/Amsterdam"


@pytest.mark.parametrize(
    "start, expected_offsets",
    [
        # Summer time starts on Sunday 29 March 2026 at 02:00, so that Sunday's 07:30 is already UTC+2.
        (dt.datetime(2026, 3, 27, 12, 0, tzinfo=AMSTERDAM), [1, 2, 2, 2]),
        # Summer time ends on Sunday 25 October 2026 at 03:00, so that Sunday's 07:30 is already UTC+1.
        (dt.datetime(2026, 10, 23, 12, 0, tzinfo=AMSTERDAM), [2, 1, 1, 1]),
    ],
)
def test_digest_fires_at_0730_local_across_daylight_saving_changes(start, expected_offsets):
    trigger = digest_trigger(Settings())
    fire_times, previous, now = [], None, start
    for _ in range(4):
        previous = trigger.get_next_fire_time(previous, now)
        fire_times.append(previous)
        now = previous + dt.timedelta(seconds=1)
    local = [t.astimezone(AMSTERDAM) for t in fire_times]
    assert [(t.hour, t.minute) for t in local] == [(7, 30)] * 4
    assert [t.date() - start.date() for t in local] == [dt.timedelta(days=d) for d in (1, 2, 3, 4)]
    assert [t.utcoffset() for t in local] == [dt.timedelta(hours=h) for h in expected_offsets]
    utc_hours = [t.astimezone(dt.timezone.utc).hour for t in fire_times]
    assert utc_hours == [7 - h for h in expected_offsets]  # 06:30 UTC in winter, 05:30 in summer


def test_digest_send_at_must_be_a_time():
    with pytest.raises(ValueError, match="digest.send_at"):
        digest_trigger(Settings(digest={"send_at": "half acht"}))


def test_serve_collects_at_start_and_stops_when_asked(tmp_path):
    posts = tmp_path / "posts.jsonl"
    write_posts(posts, 450)
    settings = Settings(
        db_path=tmp_path / "weerbaar.db",
        sources={"sample": {"type": "file", "path": str(posts), "interval_minutes": 60}},
    )
    officials = tmp_path / "officials.csv"
    officials.write_text(OFFICIALS_CSV)
    import_officials(open_db(settings.db_path), officials)
    stop = threading.Event()
    service = threading.Thread(target=serve, args=(settings, CalmClassifier(), stop))
    service.start()
    check = open_db(settings.db_path)
    for _ in range(600):
        if check.execute("SELECT count(*) FROM collector_runs WHERE finished_at IS NOT NULL").fetchone()[0]:
            break
        time.sleep(0.05)
    stop.set()
    service.join(timeout=30)
    assert not service.is_alive()
    assert check.execute("SELECT status, new FROM collector_runs").fetchall() == [("ok", 450)]
    assert json.loads(check.execute("SELECT cursor FROM cursors").fetchone()[0])["line"] == 450


def test_sigterm_finishes_the_current_batch_and_exits_zero(tmp_path):
    posts = tmp_path / "posts.jsonl"
    total = 4000  # 20 batches of 200, each scored in 0.25 s: the signal arrives mid-run
    write_posts(posts, total)
    db_path = tmp_path / "weerbaar.db"
    config = tmp_path / "weerbaar.toml"
    config.write_text(
        f"""db_path = "{db_path}"
[classifier]
model = "slow-fake"
[digest]
directory = "{tmp_path / 'digests'}"
[sources.sample]
type = "file"
path = "{posts}"
interval_minutes = 60
"""
    )
    officials = tmp_path / "officials.csv"
    officials.write_text(OFFICIALS_CSV)
    import_officials(open_db(db_path), officials)
    # The stand-in takes 0.25 s a batch, so SIGTERM arrives while a batch is in flight.
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_MODEL_NAME": "slow-fake", "FAKE_MODEL_SECONDS": "0.25"}
    process = subprocess.Popen(
        [sys.executable, str(CLI_WITH_FAKE_MODEL), "--config", str(config), "-v", "serve"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        reader = sqlite3.connect(db_path, timeout=10)
        stored = 0
        for _ in range(1200):
            stored = reader.execute("SELECT count(*) FROM mentions").fetchone()[0]
            if stored or process.poll() is not None:
                break
            time.sleep(0.02)
        assert stored > 0, process.communicate(timeout=10)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopped cleanly" in stderr
    status, finished_at, cursor_after = reader.execute(
        "SELECT status, finished_at, cursor_after FROM collector_runs"
    ).fetchone()
    assert finished_at is not None
    stored = reader.execute("SELECT count(*) FROM mentions").fetchone()[0]
    cursor_line = json.loads(reader.execute("SELECT cursor FROM cursors WHERE source = 'sample'").fetchone()[0])["line"]
    # The cursor matches the stored posts exactly: every line up to it is stored, none after it.
    assert cursor_line == stored == json.loads(cursor_after)["line"]
    stored_ids = {int(row[0]) for row in reader.execute("SELECT post_id FROM mentions")}
    assert stored_ids == set(range(1, stored + 1))
    if stored < total:
        assert status == "interrupted"
    else:
        assert status == "ok"


def test_each_collect_job_warns_about_silent_sources(tmp_path, caplog):
    posts = tmp_path / "posts.jsonl"
    write_posts(posts, 3)
    settings = Settings(
        db_path=tmp_path / "weerbaar.db",
        sources={
            "sample": {"type": "file", "path": str(posts)},
            "x-main": {"type": "file", "path": str(tmp_path / "not-yet.jsonl")},
        },
    )
    open_db(settings.db_path)
    with caplog.at_level("WARNING", logger="monitor.scheduler"):
        result = MonitorJobs(settings, CalmClassifier()).collect("sample")
    assert result.status == "ok"
    assert [r.getMessage() for r in caplog.records if r.name == "monitor.scheduler"] == [
        "source x-main is silent: has never run: nothing from this source has been watched"
    ]


def test_python_dash_m_monitor_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--help"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Example:" in result.stdout and "--misfire-grace-seconds" in result.stdout
