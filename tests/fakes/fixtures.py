"""Fixtures for the platform collector tests: a database, a tiny classifier, officials and settings.

Imported by tests/test_twitter.py, tests/test_mastodon.py and tests/test_bluesky.py (``from tests.fakes.fixtures
import *``), because tests/conftest.py belongs to the shared suite.
"""

from __future__ import annotations

import pytest

from monitor.db import open_db
from monitor.officials import OfficialInput, register_officials
from monitor.settings import Settings

# Short waits so retried 500s cost milliseconds; the policy itself is the production one.
FAST_RETRY = {"retry_attempts": 3, "retry_wait_seconds": 0.01, "retry_max_wait_seconds": 0.02, "timeout_seconds": 5}
SECRET_ENV = ("X_BEARER_TOKEN", "MASTODON_ACCESS_TOKEN", "BLUESKY_APP_PASSWORD", "SMTP_PASSWORD")


class ThreatWordClassifier:
    """A test backend: 'dood' or 'weet waar je woont' is a threat, 'idioot' is aggression."""

    name = "test-threat-words"
    version = "1"
    categories = ("aggression", "threat")

    def score(self, texts):
        """Return fixed probabilities from keywords."""
        out = []
        for text in texts:
            lower = text.lower()
            threat = 0.9 if ("dood" in lower or "weet waar je woont" in lower) else 0.05
            out.append({"aggression": max(threat, 0.8 if "idioot" in lower else 0.1), "threat": threat})
        return out


@pytest.fixture
def word_classifier():
    """The keyword classifier."""
    return ThreatWordClassifier()


@pytest.fixture
def clean_env(monkeypatch):
    """Remove any real secrets from the environment, so a test only sees the ones it sets."""
    for name in SECRET_ENV:
        monkeypatch.delenv(f"WEERBAAR_{name}", raising=False)
    return monkeypatch


@pytest.fixture
def platform_db(tmp_path):
    """A real, migrated SQLite database file."""
    database = open_db(tmp_path / "w.db")
    yield database
    database.close()


def add_official(db, name: str, **handles: str) -> int:
    """Register an official who consents to the platforms of HANDLES (x=..., mastodon=..., bluesky=...)."""
    register_officials(
        db,
        [OfficialInput(name=name, role="wethouder", body_type="gemeente", body_name=f"Gemeente {name}",
                       consent_date="2024-01-15", consent_scope=sorted(handles), consent_recorded_by="griffie",
                       handles=handles)],
        actor="test",
    )
    return db.execute("SELECT id FROM officials WHERE name = ?", [name]).fetchone()[0]


def settings_with(tmp_path, **sources: dict) -> Settings:
    """Return settings whose only sources are SOURCES (name -> [sources.NAME] table); secrets come from the env."""
    return Settings(db_path=tmp_path / "w.db", sources=sources)


def last_run(db) -> dict:
    """Return the newest collector_runs row."""
    return next(db["collector_runs"].rows_where(order_by="id desc", limit=1))


def targets_of(db, platform: str, post_id: str) -> list[tuple[int, str]]:
    """Return the (official_id, handle) pairs a stored post is linked to, in official order."""
    return [tuple(row) for row in db.execute(
        "SELECT t.official_id, t.handle FROM mention_targets t JOIN mentions m ON m.id = t.mention_id "
        "WHERE m.platform = ? AND m.post_id = ? ORDER BY t.official_id", [platform, post_id])]
