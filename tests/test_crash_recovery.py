"""THE crash test: kill the pipeline with SIGKILL mid-run, again and again; nothing is lost and nothing is doubled."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from monitor.db import open_db
from monitor.officials import import_officials

REPO = Path(__file__).resolve().parent.parent
OFFICIALS_CSV = (
    "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
    "consent_recorded_by\n"
    "Anneke Visser,burgemeester,gemeente,Gemeente Zwolle,@AnnekeVisserZw,,,,2026-09-14,x,griffie: J. de Wit\n"
    "Ruud Hoekstra,wethouder,gemeente,Gemeente Apeldoorn,@RuudHoekstraWH,,,,2026-10-02,x,griffie: M. Kroeze\n"
)
# One run of the pipeline in its own process, with a stand-in model slow enough to be killed between batches.
RUN_ONCE_WITH_SLOW_MODEL = """
import sys, time
from monitor.classifier import load_classifier, register_classifier
from monitor.db import open_db
from monitor.pipeline import run_once
from monitor.settings import load_settings

class SlowClassifier:
    name, version, categories = "slow-fake", "1", ("aggression", "threat")

    def score(self, texts):
        time.sleep(0.12)
        return [{"aggression": 0.9 if "idioot" in t else 0.1, "threat": 0.0} for t in texts]

register_classifier("slow-fake", lambda classifier_settings, settings: SlowClassifier())
settings = load_settings(sys.argv[1])
runs = run_once(open_db(settings.db_path), settings, load_classifier(settings))
sys.exit(0 if all(r.status == "ok" for r in runs) else 1)
"""
TOTAL_LINES = 3000
CREATED_AT = "2026-11-27T10:00:00Z"


def write_posts(path: Path) -> tuple[set[str], int]:
    """Write the posts file; return the ids that must be stored and the number of malformed lines."""
    lines, expected, malformed = [], set(), 0
    for line_no in range(1, TOTAL_LINES + 1):
        if line_no % 250 == 0:
            lines.append('{"platform": "x", "id": "kapot')
            malformed += 1
            continue
        post_id = str(line_no - 50) if line_no % 100 == 0 else str(line_no)  # a platform serving a post twice
        target = "@someone_else" if int(post_id) % 7 == 0 else ("@AnnekeVisserZw" if line_no % 2 else "@RuudHoekstraWH")
        word = "idioot" if int(post_id) % 5 == 0 else "vraag"
        lines.append(
            json.dumps(
                {"platform": "x", "id": post_id, "text": f"{target} {word} {post_id}", "created_at": CREATED_AT}
            )
        )
        if target != "@someone_else":
            expected.add(post_id)
    path.write_text("\n".join(lines) + "\n")
    return expected, malformed


def test_sigkill_at_several_moments_loses_and_duplicates_nothing(tmp_path):
    posts = tmp_path / "posts.jsonl"
    expected_ids, malformed = write_posts(posts)
    db_path = tmp_path / "weerbaar.db"
    config = tmp_path / "weerbaar.toml"
    config.write_text(
        f"""db_path = "{db_path}"
[classifier]
model = "slow-fake"
[sources.bulk]
type = "file"
path = "{posts}"
"""
    )
    officials = tmp_path / "officials.csv"
    officials.write_text(OFFICIALS_CSV)
    import_officials(open_db(db_path), officials)
    script = tmp_path / "run_once_with_slow_model.py"
    script.write_text(RUN_ONCE_WITH_SLOW_MODEL)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = sqlite3.connect(db_path, timeout=10)

    def stored() -> int:
        return reader.execute("SELECT count(*) FROM mentions").fetchone()[0]

    kills, finished_rc = [], None
    for attempt in range(10):
        process = subprocess.Popen(
            [sys.executable, str(script), str(config)], cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        before = stored()
        # Kill only after this process has committed at least one batch of its own (more on later attempts).
        wanted = before + 1 + 150 * attempt
        while process.poll() is None and stored() < wanted:
            time.sleep(0.01)
        if process.poll() is None and attempt < 3:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            kills.append(stored())
            continue
        _, stderr = process.communicate(timeout=120)
        finished_rc = process.returncode
        break
    assert finished_rc == 0, stderr
    assert len(kills) == 3
    assert kills == sorted(kills) and kills[-1] < len(expected_ids)  # every kill landed mid-run

    # Every post about a consenting official is stored exactly once, and nothing else is.
    rows = reader.execute("SELECT post_id FROM mentions").fetchall()
    assert len(rows) == len(expected_ids)
    assert {row[0] for row in rows} == expected_ids
    # Each stored mention was scored exactly once; each bad line was quarantined exactly once.
    assert reader.execute("SELECT count(*), count(DISTINCT mention_id) FROM scores").fetchone() == (
        len(expected_ids), len(expected_ids),
    )
    assert reader.execute("SELECT count(*), count(DISTINCT location) FROM quarantine").fetchone() == (
        malformed, malformed,
    )
    flagged = reader.execute("SELECT count(*) FROM scores WHERE flagged = 1").fetchone()[0]
    assert flagged == sum(1 for post_id in expected_ids if int(post_id) % 5 == 0)
    # The stored cursor points at the end of the file: it matches the data.
    cursor = json.loads(reader.execute("SELECT cursor FROM cursors WHERE source = 'bulk'").fetchone()[0])
    assert {k: cursor[k] for k in ("path", "line", "offset")} == {"path": str(posts), "line": TOTAL_LINES,
                                                                 "offset": posts.stat().st_size}
    # The killed runs never finished: the next run marked them interrupted (their process was gone). Their counters
    # were committed with their batches and add up to the data.
    runs = reader.execute("SELECT status, new, quarantined FROM collector_runs ORDER BY id").fetchall()
    assert [status for status, _, _ in runs] == ["interrupted"] * 3 + ["ok"]
    assert sum(new for _, new, _ in runs) == len(expected_ids)
    assert sum(quarantined for _, _, quarantined in runs) == malformed
