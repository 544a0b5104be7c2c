"""Acceptance: a real `weerbaar serve` collects from fake X, Mastodon and Bluesky servers on their schedule.

The fakes run in this process on loopback; the service runs in its own process, as in production, with a stand-in
model. It must store every post the fakes served for the registered official exactly once, keep a cursor per source,
ask each platform from that cursor on the next scheduled run, stop cleanly on SIGTERM, and let `weerbaar status`
report the platform that went quiet.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli
from scrapers.bluesky import since_with_overlap
from tests.fakes.bluesky_api import FakeBluesky, post
from tests.fakes.fixtures import FAST_RETRY
from tests.fakes.mastodon_api import (
    FakeMastodon,
    account,
    mention_html,
    notification,
    status,
)
from tests.fakes.x_api import FakeX, tweet

REPO = Path(__file__).resolve().parent.parent
X_TOKEN = "x-e2e-token"
MASTODON_TOKEN = "mastodon-e2e-token"
BLUESKY_LOGIN, BLUESKY_PASSWORD = "weerbaar.bsky.social", "app-pass-e2e"
DOMAIN = "social.example"
X_HANDLE, MASTODON_HANDLE, BLUESKY_HANDLE = "anna_visser", f"anna@{DOMAIN}", "anna.bsky.social"
# Short enough for several scheduled runs within seconds.
INTERVAL_MINUTES = 0.03
OFFICIALS_CSV = (
    "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
    "consent_recorded_by\n"
    f'Anna Visser,wethouder,gemeente,Gemeente Zwolle,@{X_HANDLE},@{MASTODON_HANDLE},{BLUESKY_HANDLE},,2026-09-14,'
    f'"x,mastodon,bluesky",griffie: J. de Wit\n'
)
# The real CLI in a real process, with a stand-in model registered first (the real one is not loaded).
CLI_WITH_FAKE_MODEL = REPO / "tests" / "fakes" / "cli_with_fake_model.py"


def source_table(name: str, fields: dict) -> str:
    """Return a [sources.NAME] TOML table with FIELDS and the fast retry settings."""
    lines = [f"[sources.{name}]"]
    for key, value in {**fields, "interval_minutes": INTERVAL_MINUTES, **FAST_RETRY}.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_config(tmp_path: Path, x: FakeX, mastodon: FakeMastodon, bluesky: FakeBluesky) -> Path:
    """Write a settings file with one source per platform, each pointing at its fake."""
    config = tmp_path / "weerbaar.toml"
    config.write_text(
        f'db_path = "{tmp_path / "weerbaar.db"}"\n'
        '[classifier]\nmodel = "e2e-fake"\n'
        f'[digest]\ndirectory = "{tmp_path / "digests"}"\n'
        + source_table("x-fake", {"type": "x", "base_url": x.url, "monthly_read_budget": 1000})
        # The Mastodon source is the one that goes quiet: its window is far shorter than the others' 24 hours.
        + source_table("mastodon-fake", {"type": "mastodon", "base_url": mastodon.url, "silence_hours": 0.01})
        + source_table("bluesky-fake", {"type": "bluesky", "base_url": bluesky.url, "login_handle": BLUESKY_LOGIN}),
        encoding="utf-8",
    )
    return config


def start_fakes(stack: ExitStack) -> tuple[FakeX, FakeMastodon, FakeBluesky]:
    """Start the three fakes, each serving three posts aimed at the official."""
    x = stack.enter_context(FakeX(token=X_TOKEN))
    x.add_user("1001", X_HANDLE)
    x.mentions[X_HANDLE] = [tweet(100 + i, f"@{X_HANDLE} vraag {i}", str(2000 + i), minutes=i) for i in range(3)]

    mastodon = stack.enter_context(FakeMastodon(token=MASTODON_TOKEN, domain=DOMAIN))
    troll = account("boos", "elders.example", DOMAIN, "77")
    mastodon.notifications = [
        notification(500 + i, status(900 + i, f"<p>{mention_html('anna', DOMAIN)} vraag {i}</p>", troll,
                                     "elders.example", minutes=i))
        for i in range(3)
    ]

    bluesky = stack.enter_context(FakeBluesky(login=BLUESKY_LOGIN, password=BLUESKY_PASSWORD))
    bluesky.add_profile("did:plc:anna", BLUESKY_HANDLE)
    bluesky.posts[BLUESKY_HANDLE] = [post(i, f"@{BLUESKY_HANDLE} vraag {i}", "burger.bsky.social", minutes=i)
                                     for i in range(3)]
    return x, mastodon, bluesky


def served_post_ids(x: FakeX, mastodon_served: list, bluesky: FakeBluesky) -> dict[str, set[str]]:
    """Return, per platform, the post ids Weerbaar should hold for what the fakes served."""
    return {
        "x": {body["id"] for _, body in x.mentions[X_HANDLE]},
        "mastodon": {body["status"]["uri"] for _, body in mastodon_served},
        "bluesky": {body["uri"] for _, body in bluesky.posts[BLUESKY_HANDLE]},
    }


def stored_post_ids(reader: sqlite3.Connection) -> dict[str, set[str]]:
    """Return, per platform, the post ids stored in the mentions table."""
    stored: dict[str, set[str]] = {"x": set(), "mastodon": set(), "bluesky": set()}
    for platform, post_id in reader.execute("SELECT platform, post_id FROM mentions"):
        stored[platform].add(post_id)
    return stored


def stored_cursors(reader: sqlite3.Connection) -> dict[str, dict]:
    """Return each source's stored per-account cursor map."""
    return {source: json.loads(cursor) for source, cursor in reader.execute("SELECT source, cursor FROM cursors")
            if cursor}


def cursors_were_asked(cursors: dict[str, dict], x: FakeX, mastodon: FakeMastodon, bluesky: FakeBluesky) -> bool:
    """Return whether every fake has been asked for what came after its source's currently stored cursor."""
    try:
        wanted = {
            "x": cursors["x-fake"][f"x:{X_HANDLE}"],
            "mastodon": cursors["mastodon-fake"][f"mastodon:{MASTODON_HANDLE}"],
            # Bluesky is asked from a little before its cursor, so posts indexed late are still read.
            "bluesky": since_with_overlap(cursors["bluesky-fake"][f"bluesky:{BLUESKY_HANDLE}"]),
        }
    except KeyError:
        return False
    return (
        wanted["x"] in [call.get("since_id") for call in x.calls_to("/2/tweets/search/recent")]
        and wanted["mastodon"] in [call.get("since_id") for call in mastodon.calls_to("/api/v1/notifications")]
        and wanted["bluesky"] in [call.get("since") for call in bluesky.calls_to("searchPosts")]
    )


def wait_for(condition, process: subprocess.Popen, seconds: float = 45) -> None:
    """Poll CONDITION until it holds; fail with the service's output if it exits or time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, stderr = process.communicate(timeout=10)
            raise AssertionError(f"service exited or condition not met; exit {process.returncode}\n{stderr}")
        time.sleep(0.1)


def status_report(config: Path) -> dict[str, dict]:
    """Return `weerbaar status --json`, keyed by source name."""
    result = CliRunner().invoke(cli, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    return {health["source"]: health for health in json.loads(result.output)}


def test_serve_collects_from_x_mastodon_and_bluesky_and_reports_the_silent_one(tmp_path):
    with ExitStack() as stack:
        x, mastodon, bluesky = start_fakes(stack)
        config = write_config(tmp_path, x, mastodon, bluesky)
        officials = tmp_path / "officials.csv"
        officials.write_text(OFFICIALS_CSV, encoding="utf-8")
        imported = CliRunner().invoke(cli, ["--config", str(config), "officials", "import", str(officials)])
        assert imported.exit_code == 0, imported.output
        # The official authorised Weerbaar on Mastodon, so her mention notifications are read with her token.
        authorised = CliRunner().invoke(
            cli, ["--config", str(config), "officials", "authorise", "1", "--platform", "mastodon"]
        )
        assert authorised.exit_code == 0, authorised.output

        env = {key: value for key, value in os.environ.items() if not key.startswith("WEERBAAR_")}
        env.update(PYTHONPATH=str(REPO), FAKE_MODEL_NAME="e2e-fake", WEERBAAR_X_BEARER_TOKEN=X_TOKEN,
                   WEERBAAR_MASTODON_ACCESS_TOKEN=MASTODON_TOKEN, WEERBAAR_BLUESKY_APP_PASSWORD=BLUESKY_PASSWORD)
        process = subprocess.Popen(
            [sys.executable, str(CLI_WITH_FAKE_MODEL), "--config", str(config), "-v", "serve"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            reader = sqlite3.connect(tmp_path / "weerbaar.db", timeout=10)
            mastodon_served = list(mastodon.notifications)
            expected = served_post_ids(x, mastodon_served, bluesky)
            wait_for(lambda: stored_post_ids(reader) == expected, process)

            # Between scheduled runs: X and Bluesky get new posts, the Mastodon instance goes quiet.
            x.mentions[X_HANDLE].extend(
                tweet(200 + i, f"@{X_HANDLE} nieuw {i}", "3000", minutes=60 + i) for i in range(2))
            bluesky.posts[BLUESKY_HANDLE].extend(
                post(10 + i, f"@{BLUESKY_HANDLE} nieuw {i}", "burger.bsky.social", minutes=60 + i) for i in range(2))
            mastodon.notifications = []
            expected = served_post_ids(x, mastodon_served, bluesky)
            wait_for(lambda: stored_post_ids(reader) == expected
                     and cursors_were_asked(stored_cursors(reader), x, mastodon, bluesky), process)

            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert "stopped cleanly" in stderr
    assert reader.execute(
        "SELECT platform, post_id, count(*) FROM mentions GROUP BY platform, post_id HAVING count(*) > 1"
    ).fetchall() == []
    assert stored_post_ids(reader) == expected
    assert dict(reader.execute("SELECT platform, count(*) FROM mentions GROUP BY platform").fetchall()) == {
        "x": 5, "mastodon": 3, "bluesky": 5}
    assert reader.execute(
        "SELECT count(*) FROM mentions m WHERE NOT EXISTS (SELECT 1 FROM mention_targets t WHERE t.mention_id = m.id)"
    ).fetchone()[0] == 0
    cursors = stored_cursors(reader)
    assert cursors == {
        "x-fake": {f"x:{X_HANDLE}": "201"},
        "mastodon-fake": {f"mastodon:{MASTODON_HANDLE}": "502"},
        "bluesky-fake": {f"bluesky:{BLUESKY_HANDLE}": "2025-03-01T01:01:00Z"},  # sortAt: createdAt, not indexedAt
    }
    assert reader.execute(
        "SELECT count(*) FROM collector_runs WHERE status NOT IN ('ok', 'interrupted')"
    ).fetchone()[0] == 0

    health = status_report(config)
    quiet = health["mastodon-fake"]
    assert quiet["runs"] >= 2 and quiet["last_status"] == "ok"
    # The runs after the instance went quiet brought nothing: its last posts came before its last run.
    assert quiet["last_posts_at"] < quiet["last_run_at"]
    # The watchdog judges in hours rounded to one decimal, so a window of seconds cannot visibly pass within a
    # test. Move the whole run history an hour back instead: the same as asking for the status an hour later.
    reader.execute(
        "UPDATE collector_runs SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at, '-1 hour'), "
        "finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', finished_at, '-1 hour')"
    )
    reader.commit()
    reader.close()
    health = status_report(config)
    assert health["mastodon-fake"]["silent"] is True
    assert health["mastodon-fake"]["reason"].startswith("no posts for 1 hours")
    assert (health["x-fake"]["silent"], health["bluesky-fake"]["silent"]) == (False, False)
    assert (health["x-fake"]["reason"], health["bluesky-fake"]["reason"]) == ("ok", "ok")
