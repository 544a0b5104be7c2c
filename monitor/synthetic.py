"""A synthetic Weerbaar database of any size, for benchmarks: fictional officials, mentions, links and scores.

Benchmarks of the digest, the review desk and the exports must run against a database of the size a large
deployment reaches (a million mentions), which no fixture holds. This module writes one quickly through the real
schema (open_db runs the migrations), so every query is measured against the real tables and indexes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .categories import CATEGORIES
from .db import open_db

ROLES = ("burgemeester", "wethouder", "raadslid", "gedeputeerde", "statenlid", "dijkgraaf", "heemraad")
BODIES = {
    "gemeente": ("Zwolle", "Ede", "Apeldoorn", "Tilburg", "Almere", "Groningen", "Delft", "Venlo", "Emmen", "Hoorn"),
    "provincie": ("Gelderland", "Overijssel", "Drenthe", "Zeeland", "Limburg"),
    "waterschap": ("Rijn en IJssel", "Vechtstromen", "Aa en Maas", "Hunze en Aa's"),
}
FIRST = ("Anne", "Wim", "Sara", "Mehmet", "Fatima", "Joost", "Ilse", "Karim", "Dewi", "Piotr", "Noor", "Ruud")
LAST = ("Dekker", "El Amrani", "Yilmaz", "de Vries", "Pinas", "Kowalski", "Bakker", "Nguyen", "Visser", "Smit")
# Texts of the kinds a digest and an export meet: neutral, critical, insulting, threatening; with links and contact
# details that an export must mask.
TEXTS = (
    ("{h} wanneer wordt het fietspad bij de school eindelijk gemaakt?", 0.03, 0.0),
    ("{h} dank voor de inloopavond gisteren, goed georganiseerd", 0.01, 0.0),
    ("{h} dit besluit over het AZC is een schande, treed af", 0.35, 0.02),
    ("{h} wat een waardeloze bestuurder ben jij, zakkenvuller", 0.88, 0.04),
    ("{h} we weten waar je woont, pas maar op", 0.97, 0.93),
    ("{h} lees dit eens https://nieuws.example.nl/artikel/{n} en bel me op 06-1234{n4}", 0.05, 0.0),
    ("{h} mail mij op burger{n}@example.com over de parkeervergunning", 0.02, 0.0),
    ("{h} jij kankerlijer, rot op uit het stadhuis", 0.95, 0.08),
    ("{h} de windmolens komen er niet, dat beloof ik je. Desnoods met geweld", 0.9, 0.7),
)
PLATFORMS = ("x", "mastodon", "bluesky")


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: how many mentions and officials, over how many days up to END, and with which model."""

    mentions: int = 1_000_000
    officials: int = 500
    days: int = 90
    end: dt.date = dt.date(2026, 11, 30)
    model: str = "weerbaar-onnx"
    model_version: str = "synthetic"
    second_official_share: float = 0.1
    seed: int = 0


def generate_database(path: str | Path, spec: SyntheticSpec = SyntheticSpec(), chunk: int = 50_000) -> dict:
    """Write a migrated database at PATH holding SPEC's officials, mentions, links and scores; return counts."""
    rng = random.Random(spec.seed)
    db = open_db(path)
    conn = db.conn
    conn.execute("PRAGMA synchronous=OFF")
    start = dt.datetime.combine(spec.end - dt.timedelta(days=spec.days - 1), dt.time(), dt.timezone.utc)
    span = spec.days * 86_400
    handles = _add_officials(db, spec, rng)
    official_ids = list(handles)
    authors = [f"burger_{i:05d}" for i in range(max(1, spec.mentions // 20))]
    next_id = (conn.execute("SELECT coalesce(max(id), 0) FROM mentions").fetchone()[0] or 0) + 1
    for first in range(0, spec.mentions, chunk):
        mentions, targets, scores = [], [], []
        for mention_id in range(next_id + first, next_id + min(first + chunk, spec.mentions)):
            official = rng.choice(official_ids)
            template, aggression, threat = rng.choice(TEXTS)
            noise = rng.random() * 0.1
            text = template.format(h="@" + handles[official], n=mention_id, n4=f"{mention_id % 10_000:04d}")
            created = start + dt.timedelta(seconds=rng.randrange(span))
            collected = created + dt.timedelta(minutes=rng.randrange(1, 180))
            author_number = rng.randrange(len(authors))
            author = authors[author_number]
            platform = rng.choice(PLATFORMS)
            stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
            mentions.append((mention_id, platform, str(mention_id), text, "@" + author, str(1_000_000 + author_number),
                             f"https://x.com/{author}/status/{mention_id}", None, "nl", stamp,
                             collected.strftime("%Y-%m-%dT%H:%M:%S.000000Z"), platform,
                             hashlib.sha256(text.encode()).hexdigest()))
            targets.append((mention_id, official, handles[official], stamp))
            if rng.random() < spec.second_official_share:
                other = rng.choice(official_ids)
                if other != official:
                    targets.append((mention_id, other, handles[other], stamp))
            probabilities = {
                "aggression": min(1.0, aggression + noise),
                "threat": min(1.0, threat + noise / 2),
                "insult": min(1.0, max(0.0, aggression - threat) + noise),
                "identity_attack": noise / 4,
            }
            labels = [c for c in CATEGORIES if probabilities[c] >= 0.5]
            scores.append((mention_id, spec.model, spec.model_version, json.dumps(probabilities, sort_keys=True),
                           json.dumps(labels), int(bool(labels)), stamp))
        with conn:
            conn.executemany("INSERT INTO mentions (id, platform, post_id, text, author_handle, author_id, url, "
                             "in_reply_to, lang, created_at, collected_at, source, raw_sha256) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", mentions)
            conn.executemany("INSERT OR IGNORE INTO mention_targets (mention_id, official_id, handle, linked_at) "
                             "VALUES (?, ?, ?, ?)", targets)
            conn.executemany("INSERT INTO scores (mention_id, model, model_version, probabilities, labels, flagged, "
                             "scored_at) VALUES (?, ?, ?, ?, ?, ?, ?)", scores)
    conn.execute("ANALYZE")
    counts = {table: db[table].count for table in ("officials", "mentions", "mention_targets", "scores")}
    db.close()
    return counts


def _add_officials(db, spec: SyntheticSpec, rng: random.Random) -> dict[int, str]:
    """Insert SPEC's officials with an X account and a consent each; return {official_id: handle}."""
    handles = {}
    now = "2026-01-01T00:00:00Z"
    with db.conn:
        for i in range(spec.officials):
            body_type = rng.choice(tuple(BODIES))
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}"
            official = db.conn.execute(
                "INSERT INTO officials (name, role, body_type, body_name, email, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [name, rng.choice(ROLES), body_type, f"{body_type.title()} {rng.choice(BODIES[body_type])}",
                 f"official{i}@example.org", now],
            ).lastrowid
            handle = f"official_{i:04d}"
            db.conn.execute("INSERT INTO accounts (official_id, platform, handle) VALUES (?, 'x', ?)",
                            [official, handle])
            db.conn.execute(
                "INSERT INTO consents (official_id, given_on, scope, recorded_by, recorded_at) "
                "VALUES (?, '2026-01-01', 'x,mastodon,bluesky', 'synthetic', ?)", [official, now])
            handles[official] = handle
    return handles
