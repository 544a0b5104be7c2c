"""The registry of officials who opted in: import, add, list and withdraw, with consent recorded."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from .db import audit, utcnow, write_transaction
from .erasure import erase_handles, redact_kept_mentions, rewrite_digests
from .mentions import PLATFORMS, normalise_handle
from .settings import Settings
from .settings import EMAIL_ADDRESS

ROLES = (
    "burgemeester",
    "wethouder",
    "raadslid",
    "commissaris",
    "gedeputeerde",
    "statenlid",
    "dijkgraaf",
    "heemraad",
    "hoogheemraad",
    "algemeen bestuurslid",
    "griffier",
    "secretaris",
)
BODY_TYPES = ("gemeente", "provincie", "waterschap")
CSV_COLUMNS = (
    "name",
    "role",
    "body_type",
    "body_name",
    "x_handle",
    "mastodon_handle",
    "bluesky_handle",
    "email",
    "consent_date",
    "consent_scope",
    "consent_recorded_by",
    "contacts",
)
REQUIRED_COLUMNS = ("name", "role", "body_type", "body_name", "consent_date", "consent_scope", "consent_recorded_by")
_HANDLE_PATTERNS = {
    "x": re.compile(r"^@?[A-Za-z0-9_]{1,15}$"),
    "mastodon": re.compile(r"^@?[A-Za-z0-9_.]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"),
    "bluesky": re.compile(r"^@?([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$"),
}


class RegistryError(ValueError):
    """Input that cannot be registered; ERRORS lists every problem found, each naming line and field."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class OfficialInput:
    """An official to register, with handles per platform and the consent that allows monitoring."""

    name: str
    role: str
    body_type: str
    body_name: str
    consent_date: str
    consent_scope: list[str]
    consent_recorded_by: str
    handles: dict[str, str] = field(default_factory=dict)
    email: str | None = None
    # Support contacts: staff who act for the official and get their alerts and their part of the digest.
    contacts: list[str] = field(default_factory=list)


def validate_official(values: dict[str, str], where: str) -> tuple[OfficialInput | None, list[str]]:
    """Check one official's fields; return the input and a list of errors prefixed with WHERE."""
    errors: list[str] = []

    def err(field_name: str, message: str) -> None:
        errors.append(f"{where}: field '{field_name}': {message}")

    clean = {k: (v or "").strip() for k, v in values.items()}
    for name in REQUIRED_COLUMNS:
        if not clean.get(name):
            err(name, "is required")
    role = clean.get("role", "").lower()
    if role and role not in ROLES:
        err("role", f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    body_type = clean.get("body_type", "").lower()
    if body_type and body_type not in BODY_TYPES:
        err("body_type", f"unknown body type {body_type!r} (expected one of: {', '.join(BODY_TYPES)})")
    consent_date = clean.get("consent_date", "")
    if consent_date:
        try:
            given = dt.date.fromisoformat(consent_date)
            if given > dt.date.today():
                err("consent_date", f"{consent_date} lies in the future")
        except ValueError:
            err("consent_date", f"not a date in YYYY-MM-DD form: {consent_date!r}")
    scope = [p.strip().lower() for p in clean.get("consent_scope", "").split(",") if p.strip()]
    for platform in scope:
        if platform not in PLATFORMS:
            err("consent_scope", f"unknown platform {platform!r} (expected: {', '.join(PLATFORMS)})")
    handles = {}
    for platform in PLATFORMS:
        handle = clean.get(f"{platform}_handle", "")
        if not handle:
            continue
        if not _HANDLE_PATTERNS[platform].match(handle):
            err(f"{platform}_handle", f"not a valid {platform} handle: {handle!r}")
        elif platform not in scope:
            err(f"{platform}_handle", f"consent_scope does not include {platform}; no consent, no collection")
        else:
            handles[platform] = handle
    if not any(clean.get(f"{p}_handle") for p in PLATFORMS):
        err("handles", "at least one of x_handle, mastodon_handle, bluesky_handle is required")
    email = clean.get("email") or None
    if email and not EMAIL_ADDRESS.match(email):
        err("email", f"not an e-mail address: {email!r}")
    contacts = [c.strip() for c in clean.get("contacts", "").split(";") if c.strip()]
    for contact in contacts:
        if not EMAIL_ADDRESS.match(contact):
            err("contacts", f"not an e-mail address: {contact!r} (separate addresses with ';')")
    if errors:
        return None, errors
    return (
        OfficialInput(
            name=clean["name"],
            role=role,
            body_type=body_type,
            body_name=clean["body_name"],
            consent_date=consent_date,
            consent_scope=scope,
            consent_recorded_by=clean["consent_recorded_by"],
            handles=handles,
            email=email,
            contacts=list(dict.fromkeys(contacts)),
        ),
        [],
    )


def read_officials_csv(path: str | Path) -> list[OfficialInput]:
    """Read and validate every row of an officials CSV; raise RegistryError listing all problems."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RegistryError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as exc:
        raise RegistryError([f"{path}: not valid UTF-8 (byte {exc.start})"]) from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryError([f"{path}:1: missing column(s): {', '.join(missing)}"])
    officials, errors = [], []
    seen: dict[tuple[str, str], int] = {}
    for row in reader:
        line = reader.line_num
        official, row_errors = validate_official(row, f"{path}:{line}")
        errors.extend(row_errors)
        if official is None:
            continue
        for platform, handle in official.handles.items():
            key = (platform, normalise_handle(platform, handle))
            if key in seen:
                errors.append(
                    f"{path}:{line}: field '{platform}_handle': {handle} is also on line {seen[key]}"
                )
            seen[key] = line
        officials.append(official)
    if errors:
        raise RegistryError(errors)
    return officials


def register_officials(
    db: sqlite_utils.Database, officials: list[OfficialInput], actor: str = "cli", where: str = "input"
) -> dict[str, int]:
    """Register OFFICIALS with their accounts and consents in one transaction; all or nothing.

    An official already registered (same name and body) is skipped. A handle that belongs to another official is an
    error and nothing is registered.
    """
    errors = []
    for index, official in enumerate(officials, start=1):
        for platform, handle in official.handles.items():
            withdrawn = db.execute("SELECT withdrawn_at FROM withdrawn_accounts WHERE account_sha256 = ?",
                                   [account_fingerprint(platform, handle)]).fetchone()
            if withdrawn and official.consent_date <= withdrawn[0][:10]:
                errors.append(
                    f"{where}: official {index} ({official.name}): {platform} handle {handle} belonged to an "
                    f"official who withdrew consent on {withdrawn[0][:10]}; field 'consent_date' "
                    f"({official.consent_date}) must be after that to register them again"
                )
                continue
            owner = _account_owner(db, platform, handle)
            if owner is not None and not _same_official(db, owner, official):
                errors.append(
                    f"{where}: official {index} ({official.name}): {platform} handle {handle} "
                    f"is already registered to official {owner}"
                )
    if errors:
        raise RegistryError(errors)
    added = skipped = 0
    with write_transaction(db):
        for official in officials:
            if _find_official(db, official) is not None:
                skipped += 1
                continue
            official_id = db["officials"].insert(
                {
                    "name": official.name,
                    "role": official.role,
                    "body_type": official.body_type,
                    "body_name": official.body_name,
                    "email": official.email,
                    "contacts": ";".join(official.contacts) or None,
                    "status": "active",
                    "created_at": utcnow(),
                }
            ).last_pk
            for platform, handle in official.handles.items():
                db["accounts"].insert(
                    {
                        "official_id": official_id,
                        "platform": platform,
                        "handle": normalise_handle(platform, handle),
                        "authorised": 0,
                        "state": "ok",
                    }
                )
            db["consents"].insert(
                {
                    "official_id": official_id,
                    "given_on": official.consent_date,
                    "scope": ",".join(official.consent_scope),
                    "recorded_by": official.consent_recorded_by,
                    "recorded_at": utcnow(),
                }
            )
            audit(db, "official.registered", f"official:{official_id}", {"platforms": sorted(official.handles)}, actor)
            added += 1
    return {"added": added, "skipped": skipped}


def import_officials(db: sqlite_utils.Database, path: str | Path, actor: str = "cli") -> dict[str, int]:
    """Validate a CSV of officials, then register them all, or none if any row is bad."""
    return register_officials(db, read_officials_csv(path), actor=actor, where=str(path))


def list_officials(db: sqlite_utils.Database, include_withdrawn: bool = False) -> list[dict]:
    """Return the registered officials with their handles and consent."""
    where = "" if include_withdrawn else "WHERE o.status = 'active'"
    rows = db.execute(
        f"""
        SELECT o.id, o.name, o.role, o.body_type, o.body_name, o.status,
               (SELECT group_concat(a.platform || ':' || a.handle, ' ') FROM accounts a WHERE a.official_id = o.id)
                   AS handles,
               c.given_on AS consent_date, c.scope AS consent_scope, c.withdrawn_at
        FROM officials o
        LEFT JOIN consents c ON c.id = (SELECT max(id) FROM consents WHERE official_id = o.id)
        {where}
        ORDER BY o.id
        """
    ).fetchall()
    keys = ["id", "name", "role", "body_type", "body_name", "status", "handles", "consent_date", "consent_scope",
            "withdrawn_at"]
    return [dict(zip(keys, row)) for row in rows]


def account_fingerprint(platform: str, handle: str) -> str:
    """Return the SHA-256 by which a withdrawn official's account is recognised without keeping the handle."""
    return hashlib.sha256(f"{platform}:{normalise_handle(platform, handle)}".encode("utf-8")).hexdigest()


def withdraw_official(
    db: sqlite_utils.Database, official_id: int, actor: str = "cli", settings: Settings | None = None
) -> dict[str, int]:
    """Erase an official's mentions, scores, reviews, handles, name, role and body in one transaction.

    A mention that also addresses another consenting official is only unlinked from this one: it stays for the
    others, and is erased with the last of them. Quarantined records holding one of their handles go too, and so do
    their entries in cursors and run records (monitor.erasure). With SETTINGS, every digest file on disk is then
    rewritten without them.

    The consent row stays, without content, as the record that monitoring had a lawful basis and then ended; an
    audit line says what was erased; each account is remembered only as a SHA-256, so that re-importing a CSV that
    still lists the official is refused (see register_officials).
    """
    row = db.execute("SELECT status FROM officials WHERE id = ?", [official_id]).fetchone()
    if row is None:
        raise RegistryError([f"official {official_id}: no such official"])
    if row[0] == "withdrawn":
        raise RegistryError([f"official {official_id}: consent was already withdrawn"])
    counts = {}
    # A post that also addresses another consenting official stays for them; only this official's link goes.
    orphaned = """SELECT t.mention_id FROM mention_targets t WHERE t.official_id = :official
                  AND NOT EXISTS (SELECT 1 FROM mention_targets o WHERE o.mention_id = t.mention_id
                                  AND o.official_id != :official)"""
    accounts = db.execute("SELECT platform, handle FROM accounts WHERE official_id = ?", [official_id]).fetchall()
    name = db.execute("SELECT name FROM officials WHERE id = ?", [official_id]).fetchone()[0]
    now = utcnow()
    with write_transaction(db):
        kept = [r[0] for r in db.execute(
            f"SELECT mention_id FROM mention_targets WHERE official_id = :official AND mention_id NOT IN ({orphaned})",
            {"official": official_id})]
        for table, sql in (
            ("scores", f"SELECT count(*) FROM scores WHERE mention_id IN ({orphaned})"),
            ("reviews", f"SELECT count(*) FROM reviews WHERE mention_id IN ({orphaned})"),
            ("mentions", f"SELECT count(*) FROM ({orphaned})"),
            ("mentions_kept_for_others",
             "SELECT count(*) FROM mention_targets WHERE official_id = :official" f" AND mention_id NOT IN ({orphaned})"),
            ("accounts", "SELECT count(*) FROM accounts WHERE official_id = :official"),
        ):
            counts[table] = db.execute(sql, {"official": official_id}).fetchone()[0]
        # Foreign keys cascade from mentions to their scores, reviews and links.
        db.execute(f"DELETE FROM mentions WHERE id IN ({orphaned})", {"official": official_id})
        db.execute("DELETE FROM mention_targets WHERE official_id = ?", [official_id])
        db.execute("DELETE FROM accounts WHERE official_id = ?", [official_id])
        counts.update(erase_handles(db, [(platform, handle) for platform, handle in accounts]))
        counts["kept_mentions_redacted"] = redact_kept_mentions(db, kept, name, accounts)
        for platform, handle in accounts:
            db.execute("INSERT INTO withdrawn_accounts (account_sha256, withdrawn_at) VALUES (?, ?) "
                       "ON CONFLICT(account_sha256) DO UPDATE SET withdrawn_at = excluded.withdrawn_at",
                       [account_fingerprint(platform, handle), now])
        db.execute(
            "UPDATE officials SET name = '', role = '', body_name = '', email = NULL, contacts = NULL, "
            "status = 'withdrawn' WHERE id = ?", [official_id]
        )
        # Queued mail about this official only (spike alerts) goes too; threat alerts went with their mentions.
        db.execute("DELETE FROM outbox WHERE official_id = ? AND status != 'sent'", [official_id])
        db.execute(
            "UPDATE consents SET withdrawn_at = ?, withdrawn_by = ? WHERE official_id = ? AND withdrawn_at IS NULL",
            [now, actor, official_id],
        )
        audit(db, "official.withdrawn", f"official:{official_id}", counts, actor)
    if settings is not None:
        counts.update(rewrite_digests(db, settings, actor))
    return counts


def authorise_account(
    db: sqlite_utils.Database, official_id: int, platform: str, authorised: bool = True, actor: str = "cli"
) -> str:
    """Record that an official gave (or took back) access to their own account on PLATFORM; return its handle."""
    row = db.execute(
        "SELECT id, handle FROM accounts WHERE official_id = ? AND platform = ?", [official_id, platform]
    ).fetchone()
    if row is None:
        raise RegistryError([f"official {official_id}: no {platform} account registered"])
    with write_transaction(db):
        db.execute("UPDATE accounts SET authorised = ? WHERE id = ?", [int(authorised), row[0]])
        audit(db, "account.authorised" if authorised else "account.revoked", f"official:{official_id}",
              {"platform": platform}, actor)
    return row[1]


def consenting_accounts(db: sqlite_utils.Database) -> dict[tuple[str, str], int]:
    """Return {(platform, handle): official_id} for accounts whose official consents to that platform now."""
    rows = db.execute(
        """
        SELECT a.platform, a.handle, a.official_id, c.scope
        FROM accounts a
        JOIN officials o ON o.id = a.official_id AND o.status = 'active'
        JOIN consents c ON c.official_id = a.official_id AND c.withdrawn_at IS NULL
        """
    ).fetchall()
    return {
        (platform, handle): official_id
        for platform, handle, official_id, scope in rows
        if platform in scope.split(",")
    }


def _account_owner(db: sqlite_utils.Database, platform: str, handle: str) -> int | None:
    row = db.execute(
        "SELECT official_id FROM accounts WHERE platform = ? AND handle = ?",
        [platform, normalise_handle(platform, handle)],
    ).fetchone()
    return row[0] if row else None


def _find_official(db: sqlite_utils.Database, official: OfficialInput) -> int | None:
    row = db.execute(
        "SELECT id FROM officials WHERE name = ? AND body_name = ? AND status = 'active'",
        [official.name, official.body_name],
    ).fetchone()
    return row[0] if row else None


def _same_official(db: sqlite_utils.Database, owner: int, official: OfficialInput) -> bool:
    return _find_official(db, official) == owner


EDITABLE_FIELDS = ("name", "role", "body_type", "body_name", "x_handle", "mastodon_handle", "bluesky_handle", "email",
                   "contacts")


def official_fields(db: sqlite_utils.Database, official_id: int) -> dict[str, str]:
    """Return an active official's fields as the CSV names them (handles, consent, contacts as 'a;b')."""
    row = db.execute(
        "SELECT name, role, body_type, body_name, email, contacts, status FROM officials WHERE id = ?", [official_id]
    ).fetchone()
    if row is None:
        raise RegistryError([f"official {official_id}: no such official"])
    if row[6] != "active":
        raise RegistryError([f"official {official_id}: consent was withdrawn; nothing to edit"])
    consent = db.execute(
        "SELECT given_on, scope, recorded_by FROM consents WHERE official_id = ? AND withdrawn_at IS NULL "
        "ORDER BY id DESC LIMIT 1",
        [official_id],
    ).fetchone()
    fields = dict(zip(("name", "role", "body_type", "body_name", "email", "contacts"), row[:6]))
    fields.update(zip(("consent_date", "consent_scope", "consent_recorded_by"), consent or ("", "", "")))
    for platform, handle in db.execute("SELECT platform, handle FROM accounts WHERE official_id = ?", [official_id]):
        fields[f"{platform}_handle"] = handle
    return {k: v or "" for k, v in fields.items()}


def edit_official(
    db: sqlite_utils.Database, official_id: int, changes: dict[str, str], actor: str = "cli"
) -> list[str]:
    """Change an official's fields (as named in the CSV; '' clears one) with the import's checks; return what changed.

    Handles must stay within the recorded consent; a handle already registered to another official is refused.
    Nothing is written when any check fails. Consent itself is not edited here: a new scope needs a new consent.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise RegistryError([f"official {official_id}: field '{name}' cannot be edited" for name in sorted(unknown)])
    current = official_fields(db, official_id)
    merged = current | {k: (v or "").strip() for k, v in changes.items()}
    official, errors = validate_official(merged, f"official {official_id}")
    if official is None:
        raise RegistryError(errors)
    for platform, handle in official.handles.items():
        owner = _account_owner(db, platform, handle)
        if owner is not None and owner != official_id:
            errors.append(f"official {official_id}: field '{platform}_handle': {handle} is already registered to "
                          f"official {owner}")
    if errors:
        raise RegistryError(errors)
    def differs(name: str) -> bool:
        old, new = current.get(name, ""), merged.get(name, "")
        if name.endswith("_handle") and old and new:
            platform = name.removesuffix("_handle")
            return normalise_handle(platform, old) != normalise_handle(platform, new)
        return old != new

    changed = [name for name in EDITABLE_FIELDS if differs(name)]
    if not changed:
        return []
    with write_transaction(db):
        db.execute(
            "UPDATE officials SET name = ?, role = ?, body_type = ?, body_name = ?, email = ?, contacts = ? WHERE id = ?",
            [official.name, official.role, official.body_type, official.body_name, official.email,
             ";".join(official.contacts) or None, official_id],
        )
        for platform in PLATFORMS:
            handle = official.handles.get(platform)
            if f"{platform}_handle" not in changed:
                continue
            db.execute("DELETE FROM accounts WHERE official_id = ? AND platform = ?", [official_id, platform])
            if handle:
                db["accounts"].insert({"official_id": official_id, "platform": platform,
                                       "handle": normalise_handle(platform, handle), "authorised": 0, "state": "ok"})
        # The audit line names the fields, never their values (names and addresses are personal data).
        audit(db, "official.edited", f"official:{official_id}", {"fields": changed}, actor)
    return changed
