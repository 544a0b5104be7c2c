"""A review-desk database for tests: the sample officials, hostile posts run through the real pipeline, and users."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher

import monitor.users
from monitor.db import open_db
from monitor.officials import import_officials
from monitor.pipeline import run_once
from monitor.settings import Settings, load_settings
from monitor.users import add_user
from tests.fakes.classifiers import KeywordClassifier

PASSWORD = "correct horse battery"
RLO = "\u202e"
# Posts as a hostile stranger writes them: markup, event handlers, a javascript: link, a bidi override, emoji.
POSTS = {
    "threat_anneke": {
        "platform": "x", "id": "9001", "author": "@boze_burger", "author_id": "555001",
        "text": "@AnnekeVisserZw we weten waar je woont <script>alert('xss')</script>",
        "url": "javascript:alert(document.cookie)", "target": "@AnnekeVisserZw", "hours_ago": 30,
    },
    "insult_anneke": {
        "platform": "bluesky", "id": "at://did:plc:x/app.bsky.feed.post/9002", "author": f"@evil{RLO}gnp.exe",
        "author_id": "did:plc:evil", "text": "@annekevisser.bsky.social <img src=x onerror=alert(1)> idioot, ga weg 🤬 😀",
        "url": "https://bsky.app/profile/evil/post/9002", "target": "annekevisser.bsky.social", "hours_ago": 50,
    },
    "threat_ruud": {
        "platform": "x", "id": "9003", "author": "@anoniem123", "author_id": "555003",
        "text": "@RuudHoekstraWH we weten waar je woont, Ruud", "url": "https://x.com/anoniem123/status/9003",
        "target": "@RuudHoekstraWH", "hours_ago": 20,
    },
    "both": {
        "platform": "x", "id": "9004", "author": "@kritisch", "author_id": "555004",
        "text": "@AnnekeVisserZw @RuudHoekstraWH jullie zijn allebei een clown", "url": "https://x.com/kritisch/status/9004",
        "hours_ago": 10,
    },
    "calm_anneke": {
        "platform": "x", "id": "9005", "author": "@buurman", "author_id": "555005",
        "text": "@AnnekeVisserZw dank voor de inloopavond in het café, ĳverig werk", "url": "https://x.com/buurman/status/9005",
        "target": "@AnnekeVisserZw", "hours_ago": 5,
    },
}


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Hash with argon2id at its lowest cost: the same code path, without 0.2 s a hash on a busy test machine."""
    monkeypatch.setattr(monitor.users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class DeskData:
    """What a desk test works with: settings, the database path, mention ids by post key, official ids."""

    settings: Settings
    db_path: Path
    mentions: dict[str, int]
    anneke: int
    ruud: int


def build_desk(workdir: Path) -> DeskData:
    """Import the sample officials, collect POSTS through the file source, and add four users."""
    now = dt.datetime.now(dt.timezone.utc)
    lines = []
    for post in POSTS.values():
        record = {k: v for k, v in post.items() if k != "hours_ago"}
        record["created_at"] = (now - dt.timedelta(hours=post["hours_ago"])).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(json.dumps(record, ensure_ascii=False))
    (workdir / "config" / "samples" / "mentions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings()
    db = open_db(settings.db_path)
    import_officials(db, workdir / "config" / "samples" / "officials.csv")
    run_once(db, settings, KeywordClassifier())
    officials = {name: i for i, name in db.execute("SELECT id, name FROM officials").fetchall()}
    mentions = {
        key: db.execute("SELECT id FROM mentions WHERE post_id = ?", [post["id"]]).fetchone()[0]
        for key, post in POSTS.items()
    }
    anneke, ruud = officials["Anneke Visser"], officials["Ruud Hoekstra"]
    add_user(db, "beheer", "admin", PASSWORD)
    add_user(db, "anna", "reviewer", PASSWORD, [anneke])
    add_user(db, "rob", "reviewer", PASSWORD, [ruud])
    add_user(db, "onderzoek", "researcher", PASSWORD)
    db.close()
    return DeskData(settings, settings.resolve(settings.db_path), mentions, anneke, ruud)


def csrf_from(html: str) -> str:
    """Return the CSRF token in a page's form."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
