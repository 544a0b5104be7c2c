"""Shared fixtures: a settings object on tmp_path, a real SQLite database, and a deterministic test classifier."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.classifier import register_classifier
from monitor.db import open_db
from monitor.settings import load_settings
from tests.fakes.classifiers import KeywordClassifier

REPO = Path(__file__).resolve().parent.parent
SAMPLE_OFFICIALS = REPO / "config" / "samples" / "officials.csv"
SAMPLE_MENTIONS = REPO / "config" / "samples" / "mentions.jsonl"


register_classifier("test-keywords", lambda classifier_settings, settings: KeywordClassifier())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder holding a copy of the sample data and a config that uses the test classifier."""
    (tmp_path / "config" / "samples").mkdir(parents=True)
    shutil.copy(SAMPLE_OFFICIALS, tmp_path / "config" / "samples" / "officials.csv")
    shutil.copy(SAMPLE_MENTIONS, tmp_path / "config" / "samples" / "mentions.jsonl")
    (tmp_path / "weerbaar.toml").write_text(
        """
db_path = "var/weerbaar.db"
[classifier]
model = "test-keywords"
[digest]
directory = "var/digests"
[sources.sample]
type = "file"
path = "config/samples/mentions.jsonl"
""",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEERBAAR_CONFIG", str(tmp_path / "weerbaar.toml"))
    for name in ("X_BEARER_TOKEN", "MASTODON_ACCESS_TOKEN", "BLUESKY_APP_PASSWORD", "SMTP_PASSWORD"):
        monkeypatch.delenv(f"WEERBAAR_{name}", raising=False)
    return tmp_path


@pytest.fixture
def settings(workdir):
    """Settings loaded from the test config."""
    return load_settings()


@pytest.fixture
def db(settings):
    """A real, migrated SQLite database file."""
    database = open_db(settings.db_path)
    yield database
    database.close()


@pytest.fixture
def classifier():
    """The keyword test classifier."""
    return KeywordClassifier()
