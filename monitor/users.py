"""Staff users of the review desk: roles, argon2 password hashes, the officials a reviewer may see, login limits."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .db import audit, utcnow, write_transaction

ROLES = ("admin", "reviewer", "researcher")
MIN_PASSWORD_LENGTH = 10
_HASHER = PasswordHasher()
# Verifying against this when the user does not exist costs as much as a real check, so timing tells nothing.
_DUMMY_HASH = _HASHER.hash("no such user, no such password")


class UserError(ValueError):
    """A user cannot be added or changed; the message says which field is wrong."""


@dataclass(frozen=True)
class User:
    """A staff member as the desk sees them: who, which role, which officials (empty for admins: all)."""

    id: int
    username: str
    role: str
    password_changed_at: str
    disabled: bool = False
    officials: tuple[int, ...] = field(default_factory=tuple)
    # When the user last logged out: every session issued before then is void (a copied cookie included).
    signed_out_at: float = 0.0

    @property
    def sees_all(self) -> bool:
        """Return whether the user sees every official's mentions (admins do)."""
        return self.role == "admin"

    @property
    def works_queue(self) -> bool:
        """Return whether the user may see the queue, mentions and evidence (researchers may not)."""
        return self.role in ("admin", "reviewer")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}")


def _check_officials(db: sqlite_utils.Database, official_ids: list[int]) -> None:
    for official_id in official_ids:
        row = db.execute("SELECT status FROM officials WHERE id = ?", [official_id]).fetchone()
        if row is None:
            raise UserError(f"--official {official_id}: no such official")
        if row[0] != "active":
            raise UserError(f"--official {official_id}: this official withdrew consent")


def add_user(
    db: sqlite_utils.Database, username: str, role: str, password: str, officials: list[int] = (), actor: str = "cli"
) -> User:
    """Create a user with an argon2 hash of PASSWORD; a reviewer gets the OFFICIALS they may see."""
    username = username.strip()
    if not username or any(c.isspace() for c in username) or len(username) > 64:
        raise UserError(f"name {username!r}: 1 to 64 characters without spaces")
    if role not in ROLES:
        raise UserError(f"--role {role!r}: expected one of {', '.join(ROLES)}")
    if officials and role != "reviewer":
        raise UserError(f"--official: only a reviewer is limited to officials; an {role} gets none")
    _check_password(password)
    _check_officials(db, list(officials))
    if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise UserError(f"name {username!r}: a user with this name exists")
    now = utcnow()
    with write_transaction(db):
        user_id = db.execute(
            "INSERT INTO users (username, role, password_hash, password_changed_at, created_at) VALUES (?, ?, ?, ?, ?)",
            [username, role, _HASHER.hash(password), now, now],
        ).lastrowid
        db.conn.executemany(
            "INSERT OR IGNORE INTO user_officials (user_id, official_id) VALUES (?, ?)",
            [(user_id, official_id) for official_id in officials],
        )
        audit(db, "user.added", f"user:{user_id}", {"role": role, "officials": sorted(set(officials))}, actor)
    return get_user(db, user_id)


def get_user(db: sqlite_utils.Database, user_id: int) -> User | None:
    """Return the user with USER_ID, or None."""
    row = db.execute(
        "SELECT id, username, role, password_changed_at, disabled_at, signed_out_at FROM users WHERE id = ?",
        [user_id]
    ).fetchone()
    if row is None:
        return None
    officials = tuple(
        r[0] for r in db.execute(
            "SELECT official_id FROM user_officials WHERE user_id = ? ORDER BY official_id", [user_id]
        ).fetchall()
    )
    return User(row[0], row[1], row[2], row[3], row[4] is not None, officials, row[5] or 0.0)


def find_user(db: sqlite_utils.Database, username: str) -> User:
    """Return the user called USERNAME, or raise UserError."""
    row = db.execute("SELECT id FROM users WHERE username = ?", [username]).fetchone()
    if row is None:
        raise UserError(f"name {username!r}: no such user")
    return get_user(db, row[0])


def list_users(db: sqlite_utils.Database) -> list[User]:
    """Return every user, by name."""
    return [get_user(db, r[0]) for r in db.execute("SELECT id FROM users ORDER BY username").fetchall()]


def disable_user(db: sqlite_utils.Database, username: str, actor: str = "cli") -> User:
    """Disable a user: they cannot log in, and their open sessions end at their next request."""
    user = find_user(db, username)
    with write_transaction(db):
        db.execute("UPDATE users SET disabled_at = coalesce(disabled_at, ?) WHERE id = ?", [utcnow(), user.id])
        audit(db, "user.disabled", f"user:{user.id}", actor=actor)
    return get_user(db, user.id)


def set_password(db: sqlite_utils.Database, username: str, password: str, actor: str = "cli") -> User:
    """Replace a user's password; their open sessions end (they were signed for the old one)."""
    _check_password(password)
    user = find_user(db, username)
    with write_transaction(db):
        db.execute(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
            [_HASHER.hash(password), utcnow(), user.id],
        )
        audit(db, "user.password_changed", f"user:{user.id}", actor=actor)
    return get_user(db, user.id)


def assign_officials(
    db: sqlite_utils.Database, username: str, officials: list[int], remove: bool = False, actor: str = "cli"
) -> User:
    """Give a reviewer more officials to see (or, with REMOVE, take them away)."""
    user = find_user(db, username)
    if user.role != "reviewer":
        raise UserError(f"name {username!r}: is an {user.role}; only reviewers are limited to officials")
    if not remove:
        _check_officials(db, officials)
    with write_transaction(db):
        if remove:
            db.conn.executemany("DELETE FROM user_officials WHERE user_id = ? AND official_id = ?",
                                [(user.id, o) for o in officials])
        else:
            db.conn.executemany("INSERT OR IGNORE INTO user_officials (user_id, official_id) VALUES (?, ?)",
                                [(user.id, o) for o in officials])
        audit(db, "user.officials_removed" if remove else "user.officials_added", f"user:{user.id}",
              {"officials": sorted(set(officials))}, actor)
    return get_user(db, user.id)


def authenticate(db: sqlite_utils.Database, username: str, password: str) -> User | None:
    """Return the enabled user whose name and password match, or None; rehash when argon2's parameters changed."""
    row = db.execute("SELECT id, password_hash, disabled_at FROM users WHERE username = ?", [username]).fetchone()
    try:
        _HASHER.verify(row[1] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row[2] is not None:
        return None
    if _HASHER.check_needs_rehash(row[1]):
        with write_transaction(db):
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [_HASHER.hash(password), row[0]])
    return get_user(db, row[0])


def _since(minutes: float) -> str:
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _name_key(username: str) -> str:
    """Return the key attempts are counted under: a hash, as the typed name may be a password typed in the wrong box."""
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


def login_blocked(db: sqlite_utils.Database, username: str, client: str, attempts: int, window_minutes: float) -> bool:
    """Return whether USERNAME or CLIENT failed ATTEMPTS times or more within the last WINDOW_MINUTES."""
    failures = db.execute(
        "SELECT (SELECT count(*) FROM login_attempts WHERE at >= :since AND succeeded = 0 AND username = :username),"
        " (SELECT count(*) FROM login_attempts WHERE at >= :since AND succeeded = 0 AND client = :client)",
        {"since": _since(window_minutes), "username": _name_key(username), "client": client[:64]},
    ).fetchone()
    return max(failures) >= attempts


def client_key(client: str) -> str:
    """Return the key a client's attempts are counted under: its address, or its /64 for IPv6 (one subscriber's
    whole range, or rotating addresses would each get a fresh limit)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def claim_login_attempt(db: sqlite_utils.Database, username: str, client: str, attempts: int,
                        window_minutes: float) -> int | None:
    """Check the limit and count this attempt as failed in one write transaction; return its id, or None if blocked.

    Checking and recording apart let parallel requests all pass the check before any was counted. Inside one
    BEGIN IMMEDIATE they take turns, so a window allows ATTEMPTS tries however many arrive at once. A successful
    login then marks its attempt (finish_login_attempt).
    """
    key = client_key(client)
    with write_transaction(db):
        if login_blocked(db, username, key, attempts, window_minutes):
            db.execute("INSERT INTO login_attempts (at, username, client, succeeded) VALUES (?, ?, ?, 0)",
                       [utcnow(), _name_key(username), key])
            audit(db, "login.blocked", "user:unknown", {"client": key}, "anonymous")
            return None
        attempt = db.execute("INSERT INTO login_attempts (at, username, client, succeeded) VALUES (?, ?, ?, 0)",
                             [utcnow(), _name_key(username), key]).lastrowid
        db.execute("DELETE FROM login_attempts WHERE at < ?", [_since(24 * 60)])
    return attempt


def finish_login_attempt(db: sqlite_utils.Database, attempt: int, username: str, client: str,
                         succeeded: bool) -> None:
    """Record how a claimed attempt ended: a success un-counts it; the audit log names the user only if they exist."""
    row = db.execute("SELECT id FROM users WHERE username = ?", [username]).fetchone()
    subject = f"user:{row[0]}" if row else "user:unknown"
    with write_transaction(db):
        if succeeded:
            db.execute("UPDATE login_attempts SET succeeded = 1 WHERE id = ?", [attempt])
        audit(db, "login.succeeded" if succeeded else "login.failed", subject, {"client": client_key(client)},
              username if succeeded else "anonymous")


def sign_out(db: sqlite_utils.Database, user_id: int, at: float) -> None:
    """Void every session of USER_ID issued before AT (seconds since the epoch): logging out ends them all."""
    with write_transaction(db):
        db.execute("UPDATE users SET signed_out_at = ? WHERE id = ?", [at, user_id])
        audit(db, "user.logged_out", f"user:{user_id}", {}, "web")
