"""Mail: build multipart messages, queue them in the outbox, and hand them to the SMTP server exactly once.

A message is queued in the database transaction that caused it (a stored threat, a spike, a digest) and sent after
that transaction commits. A crash between the two leaves the row pending; the next run sends it. A row is marked
sent right after the server accepted it, and each message carries a Message-ID derived from its outbox key and
recipient, so in the narrow window between the server's "250" and our commit a resend is recognisable as the same
message. A server that is down or answers 4xx leaves the row pending; a 5xx answer marks it failed (the server
refused it for good, for example an unknown recipient) until staff run `weerbaar alerts retry --failed`.

With mail.ssl or mail.starttls the server's certificate is checked against the trusted CAs (the system's, or the file
SSL_CERT_FILE names) and its name against mail.host. A certificate that fails, or a server that does not offer
STARTTLS, leaves the rows pending with an error naming the server; nothing, the password included, goes in the clear.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr

import sqlite_utils

from scrapers.http import RetryPolicy

from .db import utcnow, write_transaction
from .rendering import plain
from .settings import EMAIL_ADDRESS, MailSettings

log = logging.getLogger(__name__)

PASSWORD_ENVIRONMENT_VARIABLE = "WEERBAAR_SMTP_PASSWORD"
# How long a sender may hold a row it took before another process may take it (a crash frees it this way).
CLAIM_SECONDS = 300
class MailError(RuntimeError):
    """Mail cannot be sent with these settings; the message names the field."""


def header_text(text: str | None, limit: int = 200) -> str:
    """Return TEXT made safe for a mail header: one line, no control characters, at most LIMIT characters."""
    return " ".join(plain(text).split())[:limit]


def split_addresses(value: str | Iterable[str] | None) -> list[str]:
    """Return the addresses in VALUE (a ';'- or ','-separated string or a list), stripped, without duplicates."""
    if value is None:
        return []
    parts = re.split(r"[;,]", value) if isinstance(value, str) else list(value)
    seen: dict[str, None] = {}
    for part in parts:
        address = part.strip()
        if address:
            seen.setdefault(address, None)
    return list(seen)


def invalid_addresses(addresses: Iterable[str]) -> list[str]:
    """Return the addresses that are not of the form name@domain.tld."""
    return [a for a in addresses if not EMAIL_ADDRESS.match(a)]


@dataclass
class Attachment:
    """An image shown inside the HTML part, referred to there as cid:CONTENT_ID."""

    content_id: str
    data: bytes
    subtype: str = "png"
    filename: str = "grafiek.png"


@dataclass
class Mail:
    """A message before it is addressed: subject, plain text, HTML and the images the HTML shows."""

    subject: str
    text: str
    html: str
    images: list[Attachment] = field(default_factory=list)


def build_message(mail: Mail, sender: str, recipient: str, message_key: str) -> EmailMessage:
    """Return the multipart message (text, then HTML with its images as related parts) for one recipient."""
    # Lines up to the 998 characters RFC 5322 allows: the default fold at 78 puts a subject on its own continuation
    # line, which some clients show with a leading space.
    message = EmailMessage(policy=SMTP_POLICY.clone(max_line_length=998))
    message["Subject"] = header_text(mail.subject, 250)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "weerbaar.invalid"
    digest = hashlib.sha256(f"{message_key}\n{recipient}".encode()).hexdigest()[:24]
    message["Message-ID"] = f"<weerbaar.{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text, subtype="plain", charset="utf-8")
    message.add_alternative(mail.html, subtype="html", charset="utf-8")
    if mail.images:
        html_part = message.get_payload()[1]
        for image in mail.images:
            html_part.add_related(
                image.data, maintype="image", subtype=image.subtype, cid=f"<{image.content_id}>",
                filename=image.filename, disposition="inline",
            )
    return message


def queue_mail(
    db: sqlite_utils.Database,
    kind: str,
    key: str,
    recipients: Iterable[str],
    mail: Mail,
    sender: str,
    mention_id: int | None = None,
    official_id: int | None = None,
) -> int:
    """Queue MAIL for each recipient under KEY, once: a recipient already queued for KEY is skipped. Return rows added.

    Call it inside the write transaction that stores what the mail is about, so both commit or neither does.
    """
    added = 0
    now = utcnow()
    for recipient in split_addresses(recipients):
        message = build_message(mail, sender, recipient, key)
        cursor = db.execute(
            """INSERT OR IGNORE INTO outbox (kind, key, recipient, mention_id, official_id, subject, message, queued_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [kind, key, recipient, mention_id, official_id, message["Subject"], message.as_bytes(), now],
        )
        added += cursor.rowcount
    return added


@dataclass
class Delivery:
    """What one round of sending did."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class _Transient(Exception):
    """A failure worth trying again: the server is unreachable or answered 4xx."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient)


def _is_loopback(host: str) -> bool:
    """Return whether HOST names this machine: localhost, or an address in 127.0.0.0/8 or ::1."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def smtp_password() -> str | None:
    """Return the SMTP password from the environment (never from a file), or None."""
    return os.environ.get(PASSWORD_ENVIRONMENT_VARIABLE) or None


def _connect(settings: MailSettings) -> smtplib.SMTP:
    """Open a connection to the configured server, encrypted as the settings ask, log in, and return it.

    Raise _Transient when the server cannot be reached or answers 4xx (worth trying again), and MailError when these
    settings cannot work until someone acts: a certificate we do not trust, no STARTTLS while mail.starttls is set,
    a refused login. The password is sent only after TLS is up when mail.ssl or mail.starttls is set.
    """
    where = f"{settings.host}:{settings.port}"
    check_login_encrypted(settings)  # before connecting: nothing goes out
    client: smtplib.SMTP | None = None
    try:
        if settings.ssl:
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_seconds, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        client.ehlo()
        if settings.starttls and not settings.ssl:
            if not client.has_extn("starttls"):
                # smtplib would say so too, but as a generic error; and nothing may go on in the clear.
                raise MailError(f"server {where} does not offer STARTTLS and mail.starttls is set; "
                                "nothing was sent in the clear")
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if settings.username:
            password = smtp_password()
            if password is None:
                raise MailError(f"mail.username is set but {PASSWORD_ENVIRONMENT_VARIABLE} is not")
            client.login(settings.username, password)
        return client
    except MailError:
        _close(client)
        raise
    except ssl.SSLCertVerificationError as exc:
        # Checked before OSError: retrying cannot help, the certificate or the trusted CAs must change.
        _close(client)
        raise MailError(f"TLS with {where} failed: certificate verify failed: {exc.verify_message}; nothing was sent "
                        "(a private CA is trusted through SSL_CERT_FILE, see the README)") from None
    except ssl.SSLError as exc:
        _close(client)
        raise MailError(f"TLS with {where} failed: {exc.reason or type(exc).__name__}; nothing was sent (mail.ssl "
                        "is for a port that speaks TLS at once, such as 465; mail.starttls for 587)") from None
    except smtplib.SMTPResponseException as exc:
        _close(client)
        if 400 <= exc.smtp_code < 500:
            raise _Transient(f"server {where} answered {exc.smtp_code} on connect") from None
        raise MailError(f"server {where} refused us: {exc.smtp_code} {_reply_text(exc.smtp_error)}") from None
    except (OSError, smtplib.SMTPException) as exc:
        # Connection refused, timeout, dropped connection: the server may be back on the next try.
        _close(client)
        raise _Transient(f"cannot reach {where}: {type(exc).__name__}: {exc}") from None


def _close(client: smtplib.SMTP | None) -> None:
    """Close CLIENT's socket, if there is one, without saying QUIT."""
    if client is not None:
        client.close()


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return header_text(text, 200)


def _sender_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _claim_abandoned(claimed_by: str | None) -> bool:
    """Return whether the sender that claimed a row is gone: a process on this host that exited, or a finished thread."""
    if not claimed_by:
        return True
    host, _, rest = claimed_by.partition(":")
    pid, _, thread = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return not any(t.ident == int(thread or 0) for t in threading.enumerate())
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _claim(db: sqlite_utils.Database, ids: list[int], include_failed: bool) -> list[tuple]:
    """Take the rows IDS for this process, so that two processes (or job threads) never send the same row.

    A claim lasts CLAIM_SECONDS; a claim by a process on this host that has died (killed between commit and send)
    is taken over at once.
    """
    now = utcnow()
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=CLAIM_SECONDS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    statuses = ("pending", "failed") if include_failed else ("pending",)
    claimed = []
    me = _sender_id()
    with write_transaction(db):
        for row_id in ids:
            row = db.execute(
                f"SELECT claimed_until, claimed_by FROM outbox WHERE id = ? AND status IN "
                f"({', '.join('?' * len(statuses))})",
                [row_id, *statuses],
            ).fetchone()
            if row is None:
                continue
            claimed_until, claimed_by = row
            if claimed_until and claimed_until >= now and not _claim_abandoned(claimed_by):
                continue
            db.execute("UPDATE outbox SET claimed_until = ?, claimed_by = ? WHERE id = ?", [until, me, row_id])
            claimed.append(row_id)
    if not claimed:
        return []
    return db.execute(
        f"SELECT id, recipient, message FROM outbox WHERE id IN ({', '.join('?' * len(claimed))}) ORDER BY id",
        claimed,
    ).fetchall()


def _record(db: sqlite_utils.Database, row_id: int, status: str, error: str | None) -> None:
    with write_transaction(db):
        if status == "sent":
            # The body held mention text; once delivered, the outbox keeps only who got what and when.
            db.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, message = NULL, claimed_until = NULL, claimed_by = NULL, "
                "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                [utcnow(), row_id],
            )
        else:
            db.execute(
                "UPDATE outbox SET status = ?, claimed_until = NULL, claimed_by = NULL, attempts = attempts + 1, last_error = ? "
                "WHERE id = ?",
                [status, error, row_id],
            )


def send_pending(
    db: sqlite_utils.Database,
    settings: MailSettings,
    kinds: Iterable[str] | None = None,
    include_failed: bool = False,
    ids: Iterable[int] | None = None,
) -> Delivery:
    """Send every pending outbox row (of KINDS, or the rows IDS), oldest first, over one connection; return counts.

    Never raises for a server that is down or refuses: rows stay pending (4xx, unreachable) or become failed (5xx),
    with the reason, and the caller goes on.
    """
    delivery = Delivery()
    if not settings.configured:
        return delivery
    where, params = ["status IN ('pending'" + (", 'failed')" if include_failed else ")")], []
    if kinds is not None:
        kinds = list(kinds)
        where.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params.extend(kinds)
    if ids is not None:
        ids = list(ids)
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    candidates = [r[0] for r in db.execute(f"SELECT id FROM outbox WHERE {' AND '.join(where)} ORDER BY id", params)]
    if not candidates:
        return delivery
    rows = _claim(db, candidates, include_failed)
    if not rows:
        return delivery
    policy = RetryPolicy(
        attempts=settings.retry_attempts,
        wait_seconds=settings.retry_wait_seconds,
        max_wait_seconds=settings.retry_max_wait_seconds,
        timeout_seconds=settings.timeout_seconds,
    )
    client = None
    try:
        try:
            client = policy.call(_is_transient, _connect, settings)
        except (_Transient, MailError) as exc:
            for row_id, _, _ in rows:
                _record(db, row_id, "pending", str(exc))
            delivery.deferred += len(rows)
            delivery.errors.append(str(exc))
            log.warning("mail not sent, %d message(s) stay queued: %s", len(rows), exc)
            return delivery
        for row_id, recipient, message in rows:
            client = _send_one(db, policy, settings, client, row_id, recipient, message, delivery)
    finally:
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                pass
    return delivery


def _send_one(db, policy: RetryPolicy, settings: MailSettings, client, row_id, recipient, message, delivery):
    """Send one claimed row, reconnecting through the retry policy when the connection dropped; return the client."""
    state = {"client": client}

    def attempt() -> None:
        if state["client"] is None:
            state["client"] = _connect(settings)
        try:
            refused = state["client"].sendmail(settings.sender, [recipient], message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(recipient, (550, b"refused"))
            _answer(code, reply)
            return
        except smtplib.SMTPResponseException as exc:
            _answer(exc.smtp_code, exc.smtp_error)
            return
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            state["client"] = None
            raise _Transient(f"connection lost: {type(exc).__name__}: {exc}") from None
        if refused:
            code, reply = refused[recipient]
            _answer(code, reply)

    def _answer(code: int, reply) -> None:
        if 400 <= code < 500:
            if code == 421:  # the server closes the connection after a 421
                state["client"] = None
            raise _Transient(f"server answered {code} {_reply_text(reply)}")
        raise smtplib.SMTPResponseException(code, reply)

    try:
        policy.call(_is_transient, attempt)
    except _Transient as exc:
        _record(db, row_id, "pending", str(exc))
        delivery.deferred += 1
        delivery.errors.append(str(exc))
        log.warning("outbox %d: not sent, stays queued: %s", row_id, exc)
    except smtplib.SMTPResponseException as exc:
        error = f"server refused it: {exc.smtp_code} {_reply_text(exc.smtp_error)}"
        _record(db, row_id, "failed", error)
        delivery.failed += 1
        delivery.errors.append(error)
        log.error("outbox %d: %s", row_id, error)
    except MailError as exc:
        _record(db, row_id, "pending", str(exc))
        delivery.deferred += 1
        delivery.errors.append(str(exc))
        log.warning("outbox %d: not sent, stays queued: %s", row_id, exc)
    else:
        _record(db, row_id, "sent", None)
        delivery.sent += 1
    return state["client"]


def outbox_rows(db: sqlite_utils.Database, statuses: Iterable[str] = ("pending", "failed"), limit: int = 200) -> list[dict]:
    """Return outbox rows with STATUSES, oldest first, without their message bodies."""
    statuses = list(statuses)
    rows = db.execute(
        f"""SELECT id, kind, key, recipient, mention_id, official_id, subject, status, attempts, last_error, queued_at,
                   sent_at FROM outbox WHERE status IN ({', '.join('?' * len(statuses))}) ORDER BY id LIMIT ?""",
        [*statuses, limit],
    ).fetchall()
    keys = ["id", "kind", "key", "recipient", "mention_id", "official_id", "subject", "status", "attempts",
            "last_error", "queued_at", "sent_at"]
    return [dict(zip(keys, row)) for row in rows]


def check_host(settings: MailSettings) -> None:
    """Raise MailError when mail is asked for but the settings cannot send it."""
    if not settings.host:
        raise MailError("mail.host is not set; add a [mail] table to the settings (see the README)")
    if not settings.sender:
        raise MailError("mail.sender is not set")
    if settings.ssl and settings.starttls:
        raise MailError("mail.ssl and mail.starttls exclude each other; set one")
    check_login_encrypted(settings)


def check_login_encrypted(settings: MailSettings) -> None:
    """Raise MailError when the settings would send the SMTP password unencrypted to a server on another machine.

    A relay on this machine (localhost, 127.0.0.0/8, ::1) may take a login in the clear: nothing leaves the host.
    """
    if settings.username and not (settings.ssl or settings.starttls) and not _is_loopback(settings.host):
        raise MailError(f"mail.username is set but neither mail.starttls nor mail.ssl: the password would go to "
                        f"{settings.host}:{settings.port} unencrypted; set mail.starttls = true (port 587) or "
                        "mail.ssl = true (port 465)")
