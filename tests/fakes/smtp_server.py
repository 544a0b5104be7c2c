"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives and can be told to refuse.

It can also require STARTTLS or speak TLS from the first byte, and records over which TLS version each message
and each login arrived, so a test can tell encrypted mail from mail sent in the clear.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    """One message as the server took it."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: str | None = None  # the TLS version the message came over ("TLSv1.3"), None when in the clear


def tls_version(server) -> str | None:
    """Return the TLS version of SERVER's connection (aiosmtpd's SMTP protocol object), or None when in the clear."""
    ssl_object = server.transport.get_extra_info("ssl_object") if server.transport is not None else None
    return ssl_object.version() if ssl_object is not None else None


@dataclass
class RecordingHandler:
    """Keeps every accepted message; ANSWER (e.g. "451 try later", "550 no such user") replaces the DATA reply.

    With HOLD set, the server takes a message's data and does not answer until HOLD is cleared (then it answers 451
    and keeps nothing): a client can be killed while it waits, between our commit and the server's "250".
    """

    received: list[Received] = field(default_factory=list)
    answer: str | None = None
    hold: bool = False
    holding: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.hold:
            self.holding.set()
            while self.hold:
                await asyncio.sleep(0.05)
            return "451 4.4.2 held and dropped"
        if self.answer:
            return self.answer
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls_version(server)))
        return "250 OK"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackSMTP:
    """Start and stop the server on a fixed port, so a test can take it down and bring it back.

    STARTTLS: a server context; the server offers STARTTLS and refuses everything but EHLO, NOOP and QUIT before it.
    IMPLICIT_TLS: a server context; the server speaks TLS from the first byte (SMTPS, as on port 465).
    With LOGIN and either of them, AUTH is offered over TLS only; without TLS it is offered in the clear.
    """

    def __init__(self, port: int | None = None, login: tuple[str, str] | None = None,
                 starttls: ssl.SSLContext | None = None, implicit_tls: ssl.SSLContext | None = None):
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.login = login  # (username, password) the server requires
        self.logins: list[str] = []
        self.login_tls: list[str | None] = []  # per login, the TLS version it came over (None: in the clear)
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.login is not None:
            ok = (auth_data.login.decode(), auth_data.password.decode()) == self.login
            if ok:
                self.logins.append(auth_data.login.decode())
                self.login_tls.append(tls_version(server))
            return AuthResult(success=ok)
        return AuthResult(success=False)

    def start(self) -> LoopbackSMTP:
        extra: dict = {}
        if self.login is not None:
            # aiosmtpd's auth_require_tls counts only STARTTLS as TLS and would hide AUTH on an implicit-TLS socket,
            # where nothing is in the clear anyway; so it is asked for with STARTTLS only.
            extra = {"authenticator": self._authenticate, "auth_required": True,
                     "auth_require_tls": self.starttls is not None}
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        if self.starttls is not None:
            extra |= {"tls_context": self.starttls, "require_starttls": True}
        if self.implicit_tls is not None:
            extra["ssl_context"] = self.implicit_tls
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **extra)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def to(self, address: str) -> list[EmailMessage]:
        """Return the messages delivered to ADDRESS."""
        return [r.message for r in self.received if address in r.recipients]

    def toml(self, host: str = "127.0.0.1") -> str:
        """Return a [mail] table pointing at this server, reached as HOST."""
        return (f'[mail]\nhost = "{host}"\nport = {self.port}\nsender = "weerbaar@gemeente.example"\n'
                "retry_attempts = 2\nretry_wait_seconds = 0.05\nretry_max_wait_seconds = 0.1\ntimeout_seconds = 5\n")
