"""`weerbaar rescore`: stored mentions scored again by the current model version, next to the old version's scores."""

import datetime as dt
import hashlib
import json
import sqlite3
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from monitor.classifier import register_classifier
from monitor.cli import cli
from monitor.db import open_db
from monitor.digests import build_digest
from monitor.officials import withdraw_official
from monitor.rescoring import rescore
from tests.fakes.classifiers import RetrainedKeywordClassifier

register_classifier("test-keywords-v2", lambda classifier_settings, settings: RetrainedKeywordClassifier())

# Europe/Amsterdam is UTC+1 in November: local 28 Nov runs from 27 Nov 23:00Z to 28 Nov 23:00Z.
MENTIONS = [
    ("1", "@AnnekeVisserZw ik maak je af", "2026-11-27T22:59:59Z"),  # local 27 Nov, last second
    ("2", "@AnnekeVisserZw wat een clown", "2026-11-27T23:00:00Z"),  # local 28 Nov, first second
    ("3", "@AnnekeVisserZw VOLKSVERRADER", "2026-11-28T10:00:00Z"),
    ("4", "@AnnekeVisserZw fijne dag", "2026-11-28T12:00:00Z"),
    ("5", "@AnnekeVisserZw we weten waar je woont", "2026-11-28T22:59:59Z"),  # local 28 Nov, last second
    ("6", "@AnnekeVisserZw clown", "2026-11-28T23:00:00Z"),  # local 29 Nov
    ("7", "@RuudHoekstraWH idioot", "2026-11-28T09:00:00Z"),
    ("8", "@AnnekeVisserZw nog een clown", "2026-11-28T14:00:00Z"),
]
# Flagged per post id: version 1 flags 'clown', version 2 flags 'volksverrader' instead.
FLAGGED_V1 = {"1", "2", "5", "6", "7", "8"}
FLAGGED_V2 = {"1", "3", "5", "7"}


@pytest.fixture
def stored(workdir):
    """Store MENTIONS scored by test-keywords version 1, and write v2.toml that configures version 2."""
    lines = [json.dumps({"platform": "x", "id": i, "text": t, "created_at": c}) for i, t, c in MENTIONS]
    (workdir / "config/samples/mentions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = (workdir / "weerbaar.toml").read_text(encoding="utf-8")
    (workdir / "v2.toml").write_text(config.replace('"test-keywords"', '"test-keywords-v2"'), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli, ["officials", "import", "config/samples/officials.csv"]).exit_code == 0
    result = runner.invoke(cli, ["run", "--once"])
    assert result.exit_code == 0 and "new 8" in result.output, result.output
    return workdir


def _rescore_cli(*args, config="v2.toml"):
    return CliRunner().invoke(cli, ["--config", config, "rescore", *args])


def _scores(workdir, version=None):
    """Return {post_id: score row} for one model version, or every score row when VERSION is None."""
    db = open_db(workdir / "var/weerbaar.db")
    try:
        rows = db.execute(
            "SELECT m.post_id, s.* FROM scores s JOIN mentions m ON m.id = s.mention_id ORDER BY s.id"
        ).fetchall()
    finally:
        db.close()
    columns = ["post_id", "id", "mention_id", "model", "model_version", "probabilities", "labels", "flagged",
               "scored_at"]
    rows = [dict(zip(columns, row)) for row in rows]
    if version is None:
        return rows
    return {row["post_id"]: row for row in rows if row["model_version"] == version}


def _flagged(rows):
    return {post_id for post_id, row in rows.items() if row["flagged"]}


def _dump_hash(workdir):
    conn = sqlite3.connect(workdir / "var/weerbaar.db")
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def _audit(workdir):
    db = open_db(workdir / "var/weerbaar.db")
    try:
        return [dict(row) for row in db["audit_log"].rows_where("action = 'scores.rescored'", order_by="id")]
    finally:
        db.close()


def test_rescore_adds_rows_for_the_current_version_and_keeps_the_old_ones(stored):
    v1_before = _scores(stored, "1")
    assert _flagged(v1_before) == FLAGGED_V1
    result = _rescore_cli("--since", "2026-11-27")
    assert result.exit_code == 0, result.output
    assert "Model test-keywords version 2: considered 8 mention(s)" in result.output
    assert "rescored 8, skipped 0" in result.output
    assert "newly flagged 1, no longer flagged 3" in result.output
    assert _scores(stored, "1") == v1_before
    v2 = _scores(stored, "2")
    assert set(v2) == {i for i, _, _ in MENTIONS}
    assert {row["model"] for row in v2.values()} == {"test-keywords"}
    assert _flagged(v2) == FLAGGED_V2
    assert json.loads(v2["3"]["labels"]) == ["aggression"]
    [line] = _audit(stored)
    detail = json.loads(line["detail"])
    assert detail["model"] == "test-keywords" and detail["model_version"] == "2" and detail["completed"] is True
    assert (detail["considered"], detail["rescored"], detail["skipped"]) == (8, 8, 0)
    assert "clown" not in line["detail"].lower() and "Anneke" not in line["detail"]


def test_a_second_run_skips_what_this_version_scored_and_force_replaces_only_its_rows(stored):
    assert _rescore_cli("--since", "2026-11-27").exit_code == 0
    db = open_db(stored / "var/weerbaar.db")
    # A damaged version-2 row shows whether a run rewrites it.
    db.execute("UPDATE scores SET flagged = 1, labels = '[\"threat\"]' WHERE model_version = '2' AND mention_id = "
               "(SELECT id FROM mentions WHERE post_id = '4')")
    db.conn.commit()
    db.close()
    v1_before, v2_before = _scores(stored, "1"), _scores(stored, "2")

    again = _rescore_cli("--since", "2026-11-27")
    assert again.exit_code == 0, again.output
    assert "considered 8 mention(s)" in again.output and "rescored 0, skipped 8" in again.output
    assert _scores(stored, "2") == v2_before and _scores(stored, "1") == v1_before

    forced = _rescore_cli("--since", "2026-11-27", "--force", "--batch-size", "3")
    assert forced.exit_code == 0, forced.output
    assert "rescored 8, skipped 0" in forced.output and "no longer flagged 1" in forced.output
    assert _scores(stored, "1") == v1_before
    v2 = _scores(stored, "2")
    assert len(_scores(stored)) == 16
    assert _flagged(v2) == FLAGGED_V2 and json.loads(v2["4"]["labels"]) == []
    assert {post_id: row["id"] for post_id, row in v2.items()} == {p: r["id"] for p, r in v2_before.items()}
    assert all(v2[p]["scored_at"] > v2_before[p]["scored_at"] for p in v2)


def test_since_and_until_are_local_days_by_posting_time(stored):
    result = _rescore_cli("--since", "2026-11-28", "--until", "2026-11-28")
    assert result.exit_code == 0, result.output
    assert "considered 6 mention(s) posted 2026-11-28 to 2026-11-28" in result.output
    assert set(_scores(stored, "2")) == {"2", "3", "4", "5", "7", "8"}

    result = _rescore_cli("--since", "2026-11-28")
    assert result.exit_code == 0, result.output
    assert "considered 7 mention(s) posted on or after 2026-11-28; rescored 1, skipped 6" in result.output
    assert set(_scores(stored, "2")) == {"2", "3", "4", "5", "6", "7", "8"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "2026-13-01"], "'2026-13-01' does not match the format"),
        (["--since", "28-11-2026"], "'28-11-2026' does not match the format"),
        (["--since", "2026-11-28", "--until", "2026-11"], "'2026-11' does not match the format"),
        (["--since", "2026-11-28", "--until", "2026-11-27"], "--until 2026-11-27 is before --since 2026-11-28"),
        (["--since", "2026-11-28", "--batch-size", "0"], "--batch-size"),
        ([], "Missing option '--since'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(stored, args, message):
    before = _dump_hash(stored)
    result = _rescore_cli(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert _dump_hash(stored) == before


def test_a_future_since_or_an_empty_window_says_so_and_changes_nothing(stored):
    before = _dump_hash(stored)
    tomorrow = dt.datetime.now(ZoneInfo("Europe/Amsterdam")).date() + dt.timedelta(days=1)
    result = _rescore_cli("--since", tomorrow.isoformat())
    assert result.exit_code == 0 and f"Nothing to rescore: --since {tomorrow} is in the future." in result.output
    result = _rescore_cli("--since", "2026-11-01", "--until", "2026-11-26")
    assert result.exit_code == 0
    assert "No stored mentions posted 2026-11-01 to 2026-11-26; nothing rescored." in result.output
    assert _dump_hash(stored) == before


def test_the_digest_uses_the_configured_versions_score_even_when_another_is_newer(stored, settings):
    assert _rescore_cli("--since", "2026-11-27").exit_code == 0
    text = stored / "var/digests/digest-2026-11-28.txt"

    result = CliRunner().invoke(cli, ["--config", "v2.toml", "digest", "--date", "2026-11-28"])
    assert result.exit_code == 0, result.output
    assert "1 threat(s), 3 flagged mention(s)" in result.output  # 3, 5 and 7 under version 2
    assert "VOLKSVERRADER" in text.read_text(encoding="utf-8") and "clown" not in text.read_text(encoding="utf-8")
    assert "Model: test-keywords@2." in text.with_suffix(".html").read_text(encoding="utf-8")

    # Back on version 1 (a rollback): its scores count, although version 2's rows are newer.
    result = CliRunner().invoke(cli, ["digest", "--date", "2026-11-28"])
    assert result.exit_code == 0, result.output
    assert "1 threat(s), 4 flagged mention(s)" in result.output  # 2, 5, 7 and 8 under version 1
    assert "VOLKSVERRADER" not in text.read_text(encoding="utf-8") and "clown" in text.read_text(encoding="utf-8")
    assert "Model: test-keywords@1." in text.with_suffix(".html").read_text(encoding="utf-8")

    # Without a current model (it cannot be loaded), each mention counts with its newest score.
    db = open_db(settings.db_path)
    try:
        digest = build_digest(db, settings, dt.date(2026, 11, 28))
    finally:
        db.close()
    assert digest.flagged == 3 and digest.models == ["test-keywords@2"]


def test_the_digest_warns_and_uses_the_newest_score_when_the_model_cannot_load(stored):
    assert _rescore_cli("--since", "2026-11-27").exit_code == 0
    config = (stored / "weerbaar.toml").read_text(encoding="utf-8")
    (stored / "broken.toml").write_text(config.replace('"test-keywords"', '"no-such-model"'), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", "broken.toml", "digest", "--date", "2026-11-28"])
    assert result.exit_code == 0, result.output
    assert "unknown classifier 'no-such-model'" in result.output
    assert "1 threat(s), 3 flagged mention(s)" in result.output


class _FailsOnSecondBatch(RetrainedKeywordClassifier):
    calls = 0

    def score(self, texts):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("model crashed")
        return super().score(texts)


def test_an_interrupted_run_keeps_its_committed_batches_and_a_rerun_finishes(stored, settings):
    db = open_db(settings.db_path)
    try:
        with pytest.raises(RuntimeError, match="model crashed"):
            rescore(db, settings, _FailsOnSecondBatch(), dt.date(2026, 11, 27), batch_size=3)
        assert len(_scores(stored, "2")) == 3
        [line] = _audit(stored)
        assert json.loads(line["detail"])["completed"] is False and json.loads(line["detail"])["rescored"] == 3

        result = rescore(db, settings, RetrainedKeywordClassifier(), dt.date(2026, 11, 27), batch_size=3)
    finally:
        db.close()
    assert (result.considered, result.skipped, result.rescored) == (8, 3, 5)
    assert _flagged(_scores(stored, "2")) == FLAGGED_V2


def test_withdrawn_officials_mentions_are_not_brought_back(stored, settings):
    class WithdrawsDuringScoring(RetrainedKeywordClassifier):
        def score(self, texts):
            # Consent is withdrawn while the batch is being scored, on another connection.
            other = open_db(settings.db_path)
            try:
                official_id = other.execute("SELECT id FROM officials WHERE name = 'Ruud Hoekstra'").fetchone()[0]
                withdraw_official(other, official_id, actor="test")
            finally:
                other.close()
            return super().score(texts)

    db = open_db(settings.db_path)
    try:
        result = rescore(db, settings, WithdrawsDuringScoring(), dt.date(2026, 11, 27))
        assert (result.considered, result.rescored, result.gone) == (8, 7, 1)
        assert db.execute("SELECT count(*) FROM mentions WHERE post_id = '7'").fetchone()[0] == 0

        # Once withdrawn, the official's mentions are neither considered nor scored again.
        again = rescore(db, settings, RetrainedKeywordClassifier(), dt.date(2026, 11, 27), force=True)
    finally:
        db.close()
    assert (again.considered, again.rescored) == (7, 7)
    assert "7" not in _scores(stored, "2") and "7" not in _scores(stored, "1")
