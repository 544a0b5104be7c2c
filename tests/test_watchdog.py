"""The watchdog: silent and failing sources, read from real collector runs, shown in the digest and `status`."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.digests import write_digest
from monitor.officials import import_officials
from monitor.pipeline import run_once
from monitor.settings import load_settings
from monitor.watchdog import digest_warnings, source_health
from tests.fakes.classifiers import CalmClassifier

CREATED_AT = "2026-11-27T10:00:00Z"
OFFICIALS_CSV = (
    "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
    "consent_recorded_by\n"
    "Anneke Visser,burgemeester,gemeente,Gemeente Zwolle,@AnnekeVisserZw,,,,2026-09-14,x,griffie: J. de Wit\n"
)


def post(post_id: int) -> str:
    return json.dumps(
        {"platform": "x", "id": str(post_id), "text": f"@AnnekeVisserZw vraag {post_id}", "created_at": CREATED_AT}
    )


def make_setup(tmp_path):
    """Two file sources: 'quiet' has posts once and then nothing new; 'broken' points at a missing file."""
    posts = tmp_path / "posts.jsonl"
    posts.write_text("\n".join(post(i) for i in range(1, 4)) + "\n")
    config = tmp_path / "weerbaar.toml"
    config.write_text(
        f"""
db_path = "{tmp_path / 'weerbaar.db'}"
[digest]
directory = "{tmp_path / 'digests'}"
[sources.quiet]
type = "file"
path = "{posts}"
silence_hours = 24
[sources.broken]
type = "file"
path = "{tmp_path / 'missing.jsonl'}"
silence_hours = 6
[sources.spare]
type = "file"
path = "{posts}"
enabled = false
[sources.new]
type = "file"
path = "{posts}"
"""
    )
    settings = load_settings(config)
    db = open_db(settings.db_path)
    officials = tmp_path / "officials.csv"
    officials.write_text(OFFICIALS_CSV)
    import_officials(db, officials)
    return settings, db, config


def later(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)


def test_fresh_runs_are_healthy_and_never_run_sources_are_silent(tmp_path):
    settings, db, _ = make_setup(tmp_path)
    run_once(db, settings, CalmClassifier(), only=["quiet"])
    health = {h.source: h for h in source_health(db, settings)}
    assert set(health) == {"quiet", "broken", "new"}  # disabled sources are not watched
    assert health["quiet"].silent is False
    assert health["quiet"].reason == "ok"
    assert health["quiet"].last_posts_at is not None
    assert health["broken"].silent is True
    assert "never run" in health["broken"].reason


def test_source_with_nothing_new_turns_silent_after_its_window(tmp_path):
    settings, db, _ = make_setup(tmp_path)
    run_once(db, settings, CalmClassifier(), only=["quiet"])  # brings in 3 posts
    run_once(db, settings, CalmClassifier(), only=["quiet"])  # nothing new: fetched 0
    runs = db.execute("SELECT status, fetched FROM collector_runs WHERE source = 'quiet' ORDER BY id").fetchall()
    assert runs == [("ok", 3), ("ok", 0)]
    quiet = {h.source: h for h in source_health(db, settings, now=later(23))}["quiet"]
    assert quiet.silent is False
    quiet = {h.source: h for h in source_health(db, settings, now=later(30))}["quiet"]
    assert quiet.silent is True
    assert quiet.reason == "no posts for 30 hours"
    assert quiet.consecutive_failures == 0


def test_failing_source_counts_its_errors_and_turns_silent(tmp_path):
    settings, db, _ = make_setup(tmp_path)
    for _ in range(3):
        run_once(db, settings, CalmClassifier(), only=["broken"])
    broken = {h.source: h for h in source_health(db, settings, now=later(1))}["broken"]
    assert (broken.last_status, broken.consecutive_failures, broken.silent) == ("error", 3, False)
    assert "missing.jsonl: file not found" in broken.last_error
    broken = {h.source: h for h in source_health(db, settings, now=later(7))}["broken"]
    assert broken.silent is True
    assert broken.reason.startswith("only failed runs for 7 hours (last error: FileNotFoundError")


def test_warnings_in_dutch_on_top_of_the_digest(tmp_path):
    settings, db, _ = make_setup(tmp_path)
    run_once(db, settings, CalmClassifier(), only=["quiet", "broken"])
    warnings = digest_warnings(db, settings, now=later(30))
    assert warnings[0] == (
        "Bron 'quiet' heeft al 30 uur geen berichten opgeleverd. Geen meldingen betekent hier niet: geen agressie."
    )
    assert warnings[1].startswith("Bron 'broken' mislukt al 30 uur bij elke run (laatste fout: FileNotFoundError")
    assert warnings[2].startswith("Bron 'new' heeft nog nooit gedraaid.")
    # write_digest asks the watchdog at the current time: 'quiet' is fresh, the others are not.
    _, text_path, digest = write_digest(db, settings, dt.date(2026, 11, 27))
    assert [w.split("'")[1] for w in digest.warnings] == ["new"]
    text = text_path.read_text()
    assert "LET OP: Bron 'new' heeft nog nooit gedraaid." in text
    assert text.index("LET OP:") < text.index("== Anneke Visser")  # the warning comes before any official


def test_status_command_shows_silent_sources(tmp_path):
    settings, db, config = make_setup(tmp_path)
    run_once(db, settings, CalmClassifier(), only=["quiet", "broken"])
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "ok" in lines["quiet"] and lines["quiet"].rstrip().endswith("no: ok")
    assert "error" in lines["broken"] and "no: 1 failed run(s) in a row" in lines["broken"]
    assert "never" in lines["new"] and "YES: has never run" in lines["new"]
    result = runner.invoke(cli, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0
    report = {entry["source"]: entry for entry in json.loads(result.output)}
    assert report["broken"]["consecutive_failures"] == 1
    assert report["new"]["silent"] is True
