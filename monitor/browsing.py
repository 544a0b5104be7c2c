"""`weerbaar browse`: an export loaded into its own SQLite file and opened read-only in Datasette.

Only an export folder (with its MANIFEST.json, whose sums must match) is served. The live database holds names,
handles and texts unmasked, so it is refused, whatever path leads to it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .exports import MANIFEST, read_export, sha256_file

BROWSE_FILE = "browse.db"
METADATA_FILE = "browse-metadata.json"
COLUMN_NOTES = {
    "mention": "pseudonymous mention id (HMAC-SHA256 under the export's key)",
    "platform": "x, mastodon or bluesky",
    "posted_day": "local posting day",
    "posted_time": "local posting time to the minute (only in exports made --with-time)",
    "author": "pseudonymous author id",
    "text": "the post's text, masked: @USER, @OFFICIAL, URL, EMAIL, PHONE, ADDRESS, POSTCODE, [role]",
    "context_text": "the quoted post's text, masked like text",
    "model": "the model whose score counts", "model_version": "its version",
    "model_labels": "categories at or over the model's thresholds (JSON list)",
    "model_dalc_level": "the model labels mapped to DALC: ABUSIVE, OFFENSIVE or NOT",
    "official": "pseudonymous official id",
    "role": "the official's role; its group (executive, council member, civil servant) where few officials of the "
            "export share it, empty where even the group is too small (see the datasheet)",
    "body_type": "gemeente, provincie or waterschap; empty with the role where the role's group is too small",
    "labeller": "pseudonymous staff reviewer or annotator id", "source": "staff (review desk) or annotator",
}
CANNED = {
    "labels_per_category": {
        "title": "Model labels per category",
        "sql": "SELECT value AS category, count(*) AS mentions FROM mentions, json_each(mentions.model_labels) "
               "GROUP BY value ORDER BY mentions DESC",
    },
    "per_month_and_platform": {
        "title": "Mentions per month and platform",
        "sql": "SELECT substr(posted_day, 1, 7) AS month, platform, count(*) AS mentions FROM mentions "
               "GROUP BY month, platform ORDER BY month, platform",
    },
    "threats_by_body_type": {
        "title": "Mentions the model labels a threat, by body type of the addressed official",
        "sql": "SELECT t.body_type, count(DISTINCT t.mention) AS mentions FROM targets t JOIN mentions m "
               "ON m.mention = t.mention WHERE m.model_labels LIKE '%\"threat\"%' GROUP BY t.body_type",
    },
    "human_against_model": {
        "title": "Human labels next to the model's",
        "sql": "SELECT l.mention, l.source, l.categories, m.model_labels, m.text FROM labels l "
               "JOIN mentions m ON m.mention = l.mention ORDER BY l.mention",
    },
}


class BrowseError(ValueError):
    """A folder that cannot be browsed: not an export, a changed export, or the live database."""


def check_export(folder: str | Path, live_database: str | Path | None) -> tuple[Path, dict]:
    """Return the export's mentions file and manifest; refuse the live database and anything not a whole export."""
    folder = Path(folder)
    if live_database is not None and Path(live_database).exists():
        live = Path(live_database).resolve()
        if folder.resolve() == live or folder.resolve() == live.parent:
            raise BrowseError(f"{folder}: this is the live database (or its folder); only an export is served. "
                              "Run `weerbaar export DIR` and browse DIR")
    if folder.is_file():
        raise BrowseError(f"{folder}: a file, not an export folder; only an export made by `weerbaar export` is "
                          "served (never a database)")
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise BrowseError(f"{folder}: no {MANIFEST}; not an export made by `weerbaar export`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for name, entry in manifest.get("files", {}).items():
        path = folder / name
        if not path.exists() or sha256_file(path) != entry["sha256"]:
            raise BrowseError(f"{path}: missing or changed since the export (SHA-256 differs from {MANIFEST})")
    data = folder / f"mentions.{manifest['format']}"
    return data, manifest


def build_browse_database(folder: str | Path, live_database: str | Path | None = None) -> tuple[Path, Path]:
    """Load an export into FOLDER/browse.db (mentions, targets, labels) and write Datasette metadata; return both."""
    data, manifest = check_export(folder, live_database)
    folder = Path(folder)
    path = folder / BROWSE_FILE
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            """CREATE TABLE mentions (mention TEXT PRIMARY KEY, schema_version TEXT, platform TEXT, posted_day TEXT,
               posted_time TEXT, lang TEXT, author TEXT, text TEXT, context_text TEXT, model TEXT,
               model_version TEXT, score_aggression REAL, score_threat REAL, score_insult REAL,
               score_identity_attack REAL, model_labels TEXT, model_dalc_level TEXT)"""
        )
        connection.execute("CREATE TABLE targets (mention TEXT, official TEXT, role TEXT, body_type TEXT, "
                           "body_name TEXT)")
        connection.execute("CREATE TABLE labels (mention TEXT, source TEXT, labeller TEXT, labelled_at TEXT, "
                           "categories TEXT, target TEXT, dalc_level TEXT, dalc_target TEXT)")
        columns = [c[1] for c in connection.execute("PRAGMA table_info(mentions)")]
        for row in read_export(data):
            values = [json.dumps(row[c]) if c == "model_labels" else row.get(c) for c in columns]
            connection.execute(f"INSERT INTO mentions VALUES ({', '.join('?' for _ in columns)})", values)
            for target in row["targets"]:
                connection.execute("INSERT INTO targets VALUES (?, ?, ?, ?, ?)", [
                    row["mention"], target["official"], target["role"], target["body_type"], target["body_name"]])
            for label in row["labels"]:
                connection.execute("INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                    row["mention"], label["source"], label["labeller"], label["labelled_at"],
                    json.dumps(label["categories"]), label["target"], label["dalc_level"], label["dalc_target"]])
        connection.execute("CREATE INDEX targets_mention ON targets (mention)")
        connection.execute("CREATE INDEX labels_mention ON labels (mention)")
        connection.commit()
    finally:
        connection.close()
    metadata = {
        "title": f"Weerbaar export ({manifest['rows']} mentions, schema {manifest['schema_version']})",
        "description": "A pseudonymised export: see DATASHEET.md beside it for what it holds and its terms of use.",
        "databases": {"browse": {
            "tables": {
                "mentions": {"description": "One row per post.", "columns": COLUMN_NOTES},
                "targets": {"description": "The consenting officials each post addresses (role and body type).",
                            "columns": COLUMN_NOTES},
                "labels": {"description": "Human labels: staff reviews and annotation rounds.",
                           "columns": COLUMN_NOTES | {"categories": "the categories given (JSON list)"}},
            },
            "queries": CANNED,
        }},
    }
    metadata_path = folder / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return path, metadata_path


def datasette_command(database: Path, metadata: Path, port: int = 8001) -> list[str]:
    """Return the command that serves DATABASE read-only (immutable) in Datasette on 127.0.0.1."""
    import sys

    return [sys.executable, "-m", "datasette", "serve", "-i", str(database), "--metadata", str(metadata),
            "--host", "127.0.0.1", "--port", str(port), "--setting", "allow_download", "off"]
