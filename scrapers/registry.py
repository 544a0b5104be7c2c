"""What the platform collectors share: the accounts they watch and their cursors.

A platform source's cursor is a JSON map with one entry per watched account (or hashtag), for example
``{"x:gemeente_ams": "1790000000000000000"}``; every batch carries the whole map, so a crash resumes each account
where its last committed batch left it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import sqlite_utils

from monitor.db import write_transaction
from monitor.officials import consenting_accounts

log = logging.getLogger(__name__)


@dataclass
class WatchedAccount:
    """A consenting official's account on one platform, as the collectors need it."""

    id: int
    official_id: int
    platform: str
    handle: str
    platform_user_id: str | None
    authorised: bool
    state: str


def watched_accounts(db: sqlite_utils.Database, platform: str) -> list[WatchedAccount]:
    """Return the accounts on PLATFORM whose official consents to monitoring there now."""
    consenting = consenting_accounts(db)
    rows = db.execute(
        "SELECT id, official_id, platform, handle, platform_user_id, authorised, state FROM accounts "
        "WHERE platform = ? ORDER BY id",
        [platform],
    ).fetchall()
    return [
        WatchedAccount(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
        for row in rows
        if (row[2], row[3]) in consenting
    ]


def mark_account(db: sqlite_utils.Database, account: WatchedAccount, state: str, detail: str | None = None) -> None:
    """Record an account's state ('ok', 'suspended', 'not_found', ...) and why, when it changed."""
    if account.state == state and state == "ok":
        return
    with write_transaction(db):
        db.execute("UPDATE accounts SET state = ?, state_detail = ? WHERE id = ?", [state, detail, account.id])
    if account.state != state:
        log.warning("%s account %s: state %s -> %s%s", account.platform, account.handle, account.state, state,
                    f" ({detail})" if detail else "")
    account.state = state


def store_platform_user_id(db: sqlite_utils.Database, account: WatchedAccount, user_id: str) -> None:
    """Remember the platform's stable id of an account, so a renamed account can still be followed."""
    if account.platform_user_id == user_id:
        return
    with write_transaction(db):
        db.execute("UPDATE accounts SET platform_user_id = ? WHERE id = ?", [user_id, account.id])
    account.platform_user_id = user_id


def rename_account(db: sqlite_utils.Database, account: WatchedAccount, new_handle: str) -> bool:
    """Follow an account renamed on its platform: store its new handle; return False if another row holds it."""
    taken = db.execute(
        "SELECT id FROM accounts WHERE platform = ? AND handle = ? AND id != ?",
        [account.platform, new_handle, account.id],
    ).fetchone()
    if taken:
        log.error("%s account %s was renamed to %s, which is registered to another account; not following it",
                  account.platform, account.handle, new_handle)
        return False
    with write_transaction(db):
        db.execute("UPDATE accounts SET handle = ? WHERE id = ?", [new_handle, account.id])
    log.warning("%s account %s was renamed to %s; following it by its id %s",
                account.platform, account.handle, new_handle, account.platform_user_id)
    account.handle = new_handle
    return True


def read_cursor_map(cursor: str | None) -> dict[str, str]:
    """Return the per-account cursor map stored for a source (empty before its first run or if unreadable)."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except json.JSONDecodeError:
        log.warning("ignoring an unreadable cursor: %.80s", cursor)
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def dump_cursor_map(cursors: dict[str, str]) -> str:
    """Return the per-account cursor map as the JSON stored in cursors.cursor."""
    return json.dumps(cursors, sort_keys=True)
