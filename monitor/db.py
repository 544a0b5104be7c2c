"""The SQLite database: connection settings, the schema and its named migrations."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from sqlite_utils import Migrations

from .times import utcnow

if TYPE_CHECKING:
    from .classifier import Classifier, Verdict

migrations = Migrations("weerbaar")
__all__ = ["open_db", "write_transaction", "audit", "score_row", "counting_score_id", "utcnow"]


# How long a write waits for another process's write lock before it fails with "database is locked".
DEFAULT_BUSY_TIMEOUT_SECONDS = 10.0


def open_db(path: str | Path, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
            migrate: bool = True) -> sqlite_utils.Database:
    """Open (and create or migrate, unless MIGRATE is false) the Weerbaar database at PATH."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(path)
    # WAL lets the review app read while a collector writes; foreign keys make erasure cascade.
    db.execute("PRAGMA journal_mode=WAL;")
    db.execute("PRAGMA foreign_keys=ON;")
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)};")
    # Erasure on withdrawal must not leave deleted text readable in free pages of the file.
    db.execute("PRAGMA secure_delete=ON;")
    if migrate:
        migrations.apply(db)
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run the block in one transaction that holds the write lock from the start (BEGIN IMMEDIATE).

    A deferred BEGIN starts as a reader; when another connection commits first, upgrading to a writer fails at once
    with "database is locked" and busy_timeout never applies. Collectors running side by side under `weerbaar serve`
    hit exactly that, so every write path takes the lock up front and waits its turn instead.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")


def audit(db: sqlite_utils.Database, action: str, subject: str, detail: dict | None = None, actor: str = "system") -> None:
    """Append a line to the audit log; DETAIL must never hold mention text or personal data."""
    db["audit_log"].insert(
        {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": json.dumps(detail or {}, sort_keys=True),
        }
    )


def score_row(mention_id: int, classifier: Classifier, verdict: Verdict, scored_at: str) -> dict:
    """Return the scores row that stores VERDICT on a mention, under the classifier's name and version."""
    return {
        "mention_id": mention_id,
        "model": classifier.name,
        "model_version": classifier.version,
        "probabilities": json.dumps(verdict.scores, sort_keys=True),
        "labels": json.dumps(verdict.labels),
        "flagged": int(verdict.flagged),
        "scored_at": scored_at,
    }


def counting_score_id(mention_id: str = "m.id") -> str:
    """Return SQL for the id of the score that counts for a mention: the current model's, else its newest.

    A mention keeps one score per model version (rescoring adds rows), so every reader must pick the same one. The
    query takes the named parameters :model and :model_version (the configured classifier's); None for both picks
    the newest score.
    """
    # Two lookups rather than one sorted scan: the first is answered from the (mention_id, model, model_version)
    # index alone, and the second runs only for a mention the current model has not scored. Same choice, and the
    # review desk's queue at 100,000 mentions answers in about half the time (scripts/benchmark.py --desk-queue).
    return (
        f"coalesce((SELECT id FROM scores WHERE mention_id = {mention_id} AND model = :model "
        "AND model_version = :model_version), "
        f"(SELECT id FROM scores WHERE mention_id = {mention_id} ORDER BY scored_at DESC, id DESC LIMIT 1))"
    )


@migrations()
def m001_registry(db: sqlite_utils.Database) -> None:
    """Officials, their accounts per platform and their consents."""
    db.execute(
        """
        CREATE TABLE officials (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            body_type TEXT NOT NULL CHECK (body_type IN ('gemeente', 'provincie', 'waterschap')),
            body_name TEXT NOT NULL,
            email TEXT,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'withdrawn')),
            created_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            official_id INTEGER NOT NULL REFERENCES officials(id) ON DELETE CASCADE,
            platform TEXT NOT NULL,
            handle TEXT NOT NULL,
            platform_user_id TEXT,
            authorised INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'ok',
            state_detail TEXT,
            UNIQUE (platform, handle)
        )"""
    )
    db.execute(
        """
        CREATE TABLE consents (
            id INTEGER PRIMARY KEY,
            official_id INTEGER NOT NULL REFERENCES officials(id),
            given_on TEXT NOT NULL,
            scope TEXT NOT NULL,
            recorded_by TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            withdrawn_at TEXT,
            withdrawn_by TEXT
        )"""
    )


@migrations()
def m002_mentions_and_scores(db: sqlite_utils.Database) -> None:
    """Mentions, model scores and human reviews, kept apart."""
    db.execute(
        """
        CREATE TABLE mentions (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            post_id TEXT NOT NULL,
            official_id INTEGER NOT NULL REFERENCES officials(id) ON DELETE CASCADE,
            target_handle TEXT,
            text TEXT NOT NULL,
            author_handle TEXT,
            author_id TEXT,
            url TEXT,
            in_reply_to TEXT,
            lang TEXT,
            created_at TEXT NOT NULL,
            collected_at TEXT NOT NULL,
            source TEXT NOT NULL,
            raw_sha256 TEXT NOT NULL,
            UNIQUE (platform, post_id)
        )"""
    )
    db.execute("CREATE INDEX mentions_official_created ON mentions (official_id, created_at)")
    db.execute(
        """
        CREATE TABLE scores (
            id INTEGER PRIMARY KEY,
            mention_id INTEGER NOT NULL REFERENCES mentions(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            probabilities TEXT NOT NULL,
            labels TEXT NOT NULL,
            flagged INTEGER NOT NULL,
            scored_at TEXT NOT NULL,
            UNIQUE (mention_id, model, model_version)
        )"""
    )
    db.execute(
        """
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            mention_id INTEGER NOT NULL REFERENCES mentions(id) ON DELETE CASCADE,
            reviewer TEXT NOT NULL,
            labels TEXT NOT NULL,
            note TEXT,
            reviewed_at TEXT NOT NULL
        )"""
    )


@migrations()
def m003_runs_digests_audit(db: sqlite_utils.Database) -> None:
    """Collector runs and cursors, quarantined records, digests and the audit log."""
    db.execute(
        """
        CREATE TABLE collector_runs (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            cursor_before TEXT,
            cursor_after TEXT,
            fetched INTEGER NOT NULL DEFAULT 0,
            new INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            quarantined INTEGER NOT NULL DEFAULT 0,
            unmatched INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            error_message TEXT
        )"""
    )
    db.execute(
        """
        CREATE TABLE cursors (
            source TEXT PRIMARY KEY,
            cursor TEXT,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            run_id INTEGER REFERENCES collector_runs(id),
            location TEXT,
            reason TEXT NOT NULL,
            raw TEXT,
            quarantined_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """
        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            day TEXT NOT NULL,
            created_at TEXT NOT NULL,
            html_path TEXT NOT NULL,
            text_path TEXT NOT NULL,
            officials INTEGER NOT NULL,
            flagged INTEGER NOT NULL,
            threats INTEGER NOT NULL
        )"""
    )
    db.execute(
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL
        )"""
    )


@migrations()
def m004_source_backoff_and_usage(db: sqlite_utils.Database) -> None:
    """When a rate-limited source may be asked again, and API reads counted per month (X caps them)."""
    db.execute("ALTER TABLE cursors ADD COLUMN retry_after TEXT")
    db.execute(
        """
        CREATE TABLE api_usage (
            source TEXT NOT NULL,
            month TEXT NOT NULL,
            reads INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (source, month)
        )"""
    )


@migrations(transactional=False)
def m005_mention_targets(db: sqlite_utils.Database) -> None:
    """A mention is stored once and linked to every consenting official it addresses (mention_targets).

    Until now each mention held one official_id and target_handle. Those move into mention_targets, and the
    mentions table is rebuilt without them, so no column of a shared post names one official. Rebuilding a table that
    others reference needs foreign keys off, which SQLite allows only outside a transaction: this migration runs its
    own, and checks the keys before it commits.
    """
    if "official_id" not in db["mentions"].columns_dict:
        return  # a run that committed and died before recording itself
    db.execute("PRAGMA foreign_keys=OFF")
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            """
            CREATE TABLE mention_targets (
                mention_id INTEGER NOT NULL REFERENCES mentions(id) ON DELETE CASCADE,
                official_id INTEGER NOT NULL REFERENCES officials(id),
                handle TEXT,
                linked_at TEXT NOT NULL,
                PRIMARY KEY (mention_id, official_id)
            ) WITHOUT ROWID"""
        )
        db.execute(
            "INSERT INTO mention_targets (mention_id, official_id, handle, linked_at) "
            "SELECT id, official_id, target_handle, collected_at FROM mentions"
        )
        db.execute(
            """
            CREATE TABLE mentions_rebuilt (
                id INTEGER PRIMARY KEY,
                platform TEXT NOT NULL,
                post_id TEXT NOT NULL,
                text TEXT NOT NULL,
                author_handle TEXT,
                author_id TEXT,
                url TEXT,
                in_reply_to TEXT,
                lang TEXT,
                created_at TEXT NOT NULL,
                collected_at TEXT NOT NULL,
                source TEXT NOT NULL,
                raw_sha256 TEXT NOT NULL,
                UNIQUE (platform, post_id)
            )"""
        )
        db.execute(
            """INSERT INTO mentions_rebuilt (id, platform, post_id, text, author_handle, author_id, url, in_reply_to,
                   lang, created_at, collected_at, source, raw_sha256)
               SELECT id, platform, post_id, text, author_handle, author_id, url, in_reply_to, lang, created_at,
                   collected_at, source, raw_sha256 FROM mentions"""
        )
        db.execute("DROP TABLE mentions")
        db.execute("ALTER TABLE mentions_rebuilt RENAME TO mentions")
        db.execute("CREATE INDEX mentions_created ON mentions (created_at)")
        db.execute("CREATE INDEX mention_targets_official ON mention_targets (official_id, mention_id)")
        problems = db.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"m005_mention_targets: foreign key check failed: {problems[:5]}")
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.execute("PRAGMA foreign_keys=ON")


@migrations()
def m101_mention_context_text(db: sqlite_utils.Database) -> None:
    """Keep a quoted post's text beside the mention (context_text), apart from the mention's own words."""
    if "context_text" not in db["mentions"].columns_dict:
        db.execute("ALTER TABLE mentions ADD COLUMN context_text TEXT")


@migrations()
def m102_withdrawn_accounts(db: sqlite_utils.Database) -> None:
    """Remember, as SHA-256 only, the accounts of officials who withdrew, so a stale CSV cannot re-register them."""
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS withdrawn_accounts (
            account_sha256 TEXT PRIMARY KEY,
            withdrawn_at TEXT NOT NULL
        )"""
    )


# A quarantined record keeps this much of its raw payload, enough for a person to see what was wrong; its SHA-256
# identifies the whole record. Huge or hostile records must not be kept whole.
QUARANTINE_EXCERPT_CHARS = 4096


def quarantine_excerpt(raw: str | None) -> str | None:
    """Return the capped excerpt of a raw record that the quarantine keeps."""
    if raw is None or len(raw) <= QUARANTINE_EXCERPT_CHARS:
        return raw
    return raw[:QUARANTINE_EXCERPT_CHARS] + f" […] ({len(raw)} characters in all)"


@migrations()
def m103_quarantine_excerpt(db: sqlite_utils.Database) -> None:
    """Keep a capped excerpt of each quarantined record and the SHA-256 of the whole (raw_sha256)."""
    import hashlib

    if "raw_sha256" not in db["quarantine"].columns_dict:
        db.execute("ALTER TABLE quarantine ADD COLUMN raw_sha256 TEXT")
    for row_id, raw in db.execute("SELECT id, raw FROM quarantine WHERE raw_sha256 IS NULL").fetchall():
        digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest() if raw is not None else None
        db.execute("UPDATE quarantine SET raw = ?, raw_sha256 = ? WHERE id = ?",
                   [quarantine_excerpt(raw), digest, row_id])


@migrations()
def m104_run_process(db: sqlite_utils.Database) -> None:
    """Record which process runs a collection (pid), so a run whose process died shows as interrupted."""
    if "pid" not in db["collector_runs"].columns_dict:
        db.execute("ALTER TABLE collector_runs ADD COLUMN pid INTEGER")


@migrations()
def m201_alert_outbox(db: sqlite_utils.Database) -> None:
    """The outbox: every mail to send (threat alert, spike alert, digest), queued in the transaction that caused it.

    One row per message and recipient; UNIQUE (key, recipient) makes queueing the same alert twice a no-op, so each
    recipient gets it once across crashes and restarts. A threat alert's row goes with its mention (erasure cascades);
    the message body is cleared once it is sent, so the outbox does not keep mention text longer than the mentions.
    """
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS outbox (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('threat', 'spike', 'digest')),
            key TEXT NOT NULL,
            recipient TEXT NOT NULL,
            mention_id INTEGER REFERENCES mentions(id) ON DELETE CASCADE,
            official_id INTEGER REFERENCES officials(id),
            subject TEXT NOT NULL,
            message BLOB,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            queued_at TEXT NOT NULL,
            claimed_until TEXT,
            claimed_by TEXT,
            sent_at TEXT,
            UNIQUE (key, recipient)
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, id)")
    db.execute("CREATE INDEX IF NOT EXISTS outbox_mention ON outbox (mention_id)")


@migrations()
def m202_digest_windows(db: sqlite_utils.Database) -> None:
    """A digest covers what was collected in a window (collected_from, collected_until], and may be due on a day."""
    for column in ("collected_from", "collected_until", "posting_days", "due_on"):
        if column not in db["digests"].columns_dict:
            db.execute(f"ALTER TABLE digests ADD COLUMN {column} TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS digests_collected_until ON digests (collected_until)")
    db.execute("CREATE INDEX IF NOT EXISTS digests_due_on ON digests (due_on)")


@migrations()
def m203_official_contacts(db: sqlite_utils.Database) -> None:
    """Support contacts per official: staff addresses (separated by ';') that get the official's alerts and digest."""
    if "contacts" not in db["officials"].columns_dict:
        db.execute("ALTER TABLE officials ADD COLUMN contacts TEXT")


@migrations()
def m204_digest_indexes(db: sqlite_utils.Database) -> None:
    """Indexes the digest reads by: mentions by collection time, and per source by posting and collection time.

    The digest of a collection window finds its mentions by collected_at, and asks per source whether it brought
    anything in the window (silent sources); without these, both scan the whole table.
    """
    db.execute("CREATE INDEX IF NOT EXISTS mentions_collected ON mentions (collected_at)")
    db.execute("CREATE INDEX IF NOT EXISTS mentions_source_created ON mentions (source, created_at)")
    db.execute("CREATE INDEX IF NOT EXISTS mentions_source_collected ON mentions (source, collected_at)")


@migrations()
def m301_review_desk(db: sqlite_utils.Database) -> None:
    """The review desk: staff users, the officials each reviewer may see, login attempts, and a status per review.

    A review row is one decision (status, labels, note, reviewer, time); a later decision adds a row, so the history
    stays. The mention's current status is its newest row's; a mention without one is new. Safe to run again on a
    database that has some of it already.
    """
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'reviewer', 'researcher')),
            password_hash TEXT NOT NULL,
            password_changed_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            disabled_at TEXT
        )"""
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS user_officials (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            official_id INTEGER NOT NULL REFERENCES officials(id) ON DELETE CASCADE,
            PRIMARY KEY (user_id, official_id)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS login_attempts (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            username TEXT NOT NULL, -- SHA-256 of the name as typed (it may be a password typed in the wrong box)
            client TEXT NOT NULL,
            succeeded INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS login_attempts_at ON login_attempts (at)")
    # Reviews stored before the desk were judgements with labels: they count as confirmed.
    columns = {
        "status": "TEXT NOT NULL DEFAULT 'confirmed' "
                  "CHECK (status IN ('in_review', 'confirmed', 'dismissed', 'reported'))",
        "reported_on": "TEXT",
        "reviewer_id": "INTEGER REFERENCES users(id)",
    }
    for name, definition in columns.items():
        if name not in db["reviews"].columns_dict:
            db.execute(f"ALTER TABLE reviews ADD COLUMN {name} {definition}")
    db.execute("CREATE INDEX IF NOT EXISTS reviews_mention ON reviews (mention_id, reviewed_at)")
    # The queue walks the flagged scores.
    db.execute("CREATE INDEX IF NOT EXISTS scores_flagged ON scores (flagged, mention_id)")


@migrations()
def m401_annotations(db: sqlite_utils.Database) -> None:
    """Annotation rounds: the items handed out (by pseudonymous id) and the labels each annotator gave back.

    Kept apart from staff reviews and model scores. Both tables cascade from mentions, so erasure on withdrawal and
    retention take an annotation with its mention.
    """
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS annotation_items (
            item_id TEXT PRIMARY KEY,
            mention_id INTEGER NOT NULL REFERENCES mentions(id) ON DELETE CASCADE,
            batch TEXT NOT NULL,
            exported_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS annotation_items_mention ON annotation_items (mention_id)")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS annotations (
            id INTEGER PRIMARY KEY,
            mention_id INTEGER NOT NULL REFERENCES mentions(id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            annotator TEXT NOT NULL,
            labels TEXT NOT NULL,
            target TEXT,
            annotated_at TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            source_file TEXT NOT NULL,
            UNIQUE (mention_id, annotator)
        )"""
    )


@migrations()
def m302_user_sign_out(db: sqlite_utils.Database) -> None:
    """When each desk user last logged out, so a session cookie issued before that is refused (a signed cookie lives
    in the browser; without this, a copy of it stayed valid after logout)."""
    if "signed_out_at" not in db["users"].columns_dict:
        db.execute("ALTER TABLE users ADD COLUMN signed_out_at REAL")
