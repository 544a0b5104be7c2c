"""Mail over TLS: STARTTLS and implicit TLS against a real server with a throwaway CA, and refusing what is not safe.

The client trusts the test CA the way an installation with a private CA would: SSL_CERT_FILE names it, and
ssl.create_default_context() (what monitor/mail.py uses) loads it. A certificate the CA did not sign, or one for
another name, and a server that does not offer STARTTLS while mail.starttls is set, must stop the sending with a
message that names the server; nothing is marked sent and the next run with a good server sends it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from monitor.cli import cli
from monitor.db import open_db
from monitor.settings import load_settings
from tests.fakes.smtp_server import LoopbackSMTP, free_port
from tests.test_alerts import OFFICIALS, html_of, post, write_config

PASSWORD = "tls-s3cret-pw"
THREAT_SUBJECTS = ["Weerbaar: dreiging tegen Anneke Visser op X, 30-11-2026 10:15",
                   "Weerbaar: dreiging tegen Ruud Hoekstra op X, 30-11-2026 10:15"]


@dataclass
class KeyPair:
    """A certificate and its private key as PEM files."""

    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side TLS context that presents this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


@dataclass
class Certificates:
    """The throwaway CA and the server certificates the tests present."""

    ca: Path  # the CA certificate the client is told to trust
    good: KeyPair  # signed by the CA, for 127.0.0.1 and localhost
    self_signed: KeyPair  # for 127.0.0.1 and localhost, but signed by nobody the client trusts
    wrong_name: KeyPair  # signed by the CA, but for another host


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Weerbaar tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    pair = KeyPair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pair


def _server_certificate(subject: str, names: list[x509.GeneralName], key, issuer: x509.Name, issuer_key,
                        issuer_public_key) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> Certificates:
    """Make a throwaway CA, a server certificate it signs, a self-signed one and one for another host."""
    directory = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Weerbaar test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]

    good_key = ec.generate_private_key(ec.SECP256R1())
    good = _server_certificate("localhost", loopback, good_key, ca_name, ca_key, ca_key.public_key())
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _server_certificate("localhost", loopback, rogue_key, _name("localhost"), rogue_key,
                                rogue_key.public_key())
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _server_certificate("smtp.elsewhere.example", [x509.DNSName("smtp.elsewhere.example")], other_key,
                                ca_name, ca_key, ca_key.public_key())
    return Certificates(
        ca=ca_path,
        good=_write(directory, "good", good, good_key),
        self_signed=_write(directory, "self-signed", rogue, rogue_key),
        wrong_name=_write(directory, "wrong-name", other, other_key),
    )


@pytest.fixture
def trust_ca(monkeypatch, certificates):
    """Trust the throwaway CA through SSL_CERT_FILE, as an installation with a private CA does; set the password."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("WEERBAAR_SMTP_PASSWORD", PASSWORD)


@pytest.fixture
def servers():
    """Start LoopbackSMTP servers for a test and stop every one of them after it."""
    started: list[LoopbackSMTP] = []

    def start(**options) -> LoopbackSMTP:
        server = LoopbackSMTP(login=("weerbaar", PASSWORD), **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def set_up(workdir, server: LoopbackSMTP, mode: str, host: str = "127.0.0.1", digest: bool = False) -> None:
    """Write a config that mails through SERVER with MODE ("starttls" or "ssl"), the officials and two threats."""
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    (workdir / "posts.jsonl").write_text("\n".join([
        post("1", "@AnnekeVisserZw we weten waar je woont"),
        post("2", "@RuudHoekstraWH ik maak je af", author="@ander_account"),
    ]) + "\n", encoding="utf-8")
    # write_config asks its server for the [mail] table; the keys after it land in that table.
    write_config(workdir, SimpleNamespace(toml=lambda: server.toml(host)), f'{mode} = true\nusername = "weerbaar"\n')
    if digest:
        path = workdir / "weerbaar.toml"
        path.write_text(path.read_text().replace(
            '[digest]\ndirectory = "var/digests"',
            '[digest]\ndirectory = "var/digests"\nrecipients = ["griffie@weerbaar.example"]'))
    assert CliRunner().invoke(cli, ["officials", "import", "officials.csv"]).exit_code == 0


def run_once():
    result = CliRunner().invoke(cli, ["run", "--once"])
    assert result.exit_code == 0, result.output
    return result


def outbox() -> list[dict]:
    db = open_db(load_settings().db_path)
    try:
        rows = db.execute("SELECT recipient, status, sent_at, last_error FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()
    return [dict(zip(["recipient", "status", "sent_at", "last_error"], row)) for row in rows]


def test_the_default_context_trusts_the_ca_named_in_ssl_cert_file(trust_ca):
    authorities = ssl.create_default_context().get_ca_certs()
    assert any(dict(field[0] for field in ca["subject"]).get("commonName") == "Weerbaar test CA"
               for ca in authorities)


def test_an_alert_goes_out_over_starttls_and_the_login_comes_after_it(workdir, trust_ca, certificates, servers):
    server = servers(starttls=certificates.good.server_context())
    set_up(workdir, server, "starttls")
    run_once()
    desk = server.to("desk@weerbaar.example")
    assert sorted(m["Subject"] for m in desk) == THREAT_SUBJECTS
    assert {r.recipients[0] for r in server.received} == {
        "desk@weerbaar.example", "bode@zwolle.example", "woordvoerder@zwolle.example"}
    assert len(server.received) == 4 and all(r.tls and r.tls.startswith("TLSv1.") for r in server.received)
    # One connection, one login, and it came over TLS: the password never crossed in the clear.
    assert server.logins == ["weerbaar"] and server.login_tls[0] is not None
    assert {(row["status"], row["last_error"]) for row in outbox()} == {("sent", None)}


def test_a_digest_goes_out_over_implicit_tls_to_a_server_named_localhost(workdir, trust_ca, certificates, servers):
    server = servers(implicit_tls=certificates.good.server_context())
    set_up(workdir, server, "ssl", host="localhost", digest=True)
    run_once()
    assert sorted(m["Subject"] for m in server.to("desk@weerbaar.example")) == THREAT_SUBJECTS
    result = CliRunner().invoke(cli, ["digest", "--send"])
    assert result.exit_code == 0, result.output
    assert "Mail: sent 3, still queued 0, refused 0." in result.output  # the whole digest and Anneke's 2 contacts
    [digest] = [r for r in server.received if r.recipients == ["griffie@weerbaar.example"]]
    assert digest.message["Subject"].startswith("Weerbaar-digest")
    assert "Anneke Visser" in html_of(digest.message) and "Ruud Hoekstra" in html_of(digest.message)
    assert len(server.received) == 4 + 3 and all(r.tls and r.tls.startswith("TLSv1.") for r in server.received)
    # One login per connection (the run's alerts, then the digest), each over TLS.
    assert server.logins == ["weerbaar", "weerbaar"] and all(version is not None for version in server.login_tls)


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
@pytest.mark.parametrize("certificate, reason", [
    ("self_signed", "certificate verify failed: self-signed certificate"),
    ("wrong_name", "certificate verify failed: IP address mismatch"),
], ids=["self-signed", "wrong-name"])
def test_an_untrusted_certificate_stops_the_mail_and_the_next_run_with_a_good_server_sends_it(
    workdir, trust_ca, certificates, servers, mode, certificate, reason,
):
    port = free_port()
    context = getattr(certificates, certificate).server_context()
    options = {"starttls": context} if mode == "starttls" else {"implicit_tls": context}
    impostor = servers(port=port, **options)
    set_up(workdir, impostor, mode)
    run_once()  # the run stores everything and exits normally; the alerts wait
    assert impostor.received == [] and impostor.logins == []
    rows = outbox()
    assert len(rows) == 4 and {row["status"] for row in rows} == {"pending"}
    assert all(row["sent_at"] is None for row in rows)
    assert all(f"127.0.0.1:{port}" in row["last_error"] and reason in row["last_error"] for row in rows)

    retried = CliRunner().invoke(cli, ["alerts", "retry"])
    assert retried.exit_code == 1
    assert "Mail: sent 0, still queued 4, refused 0." in retried.output
    assert f"TLS with 127.0.0.1:{port} failed" in retried.output and reason in retried.output
    assert PASSWORD not in retried.output and all(PASSWORD not in row["last_error"] for row in outbox())
    assert impostor.received == []

    impostor.stop()
    good = {"starttls": certificates.good.server_context()} if mode == "starttls" else {
        "implicit_tls": certificates.good.server_context()}
    server = servers(port=port, **good)
    run_once()
    assert sorted(m["Subject"] for m in server.to("desk@weerbaar.example")) == THREAT_SUBJECTS
    assert len(server.received) == 4 and all(r.tls is not None for r in server.received)
    assert {row["status"] for row in outbox()} == {"sent"}
    run_once()
    assert len(server.received) == 4  # sent once, not again


def test_a_server_without_starttls_gets_neither_mail_nor_password_in_the_clear(
    workdir, trust_ca, certificates, servers,
):
    port = free_port()
    plain = servers(port=port)  # offers AUTH in the clear and no STARTTLS
    set_up(workdir, plain, "starttls")
    run_once()
    assert plain.received == [] and plain.logins == []
    rows = outbox()
    assert {row["status"] for row in rows} == {"pending"} and all(row["sent_at"] is None for row in rows)
    assert all(f"127.0.0.1:{port} does not offer STARTTLS" in row["last_error"] for row in rows)
    retried = CliRunner().invoke(cli, ["alerts", "retry"])
    assert retried.exit_code == 1 and "does not offer STARTTLS" in retried.output
    listed = json.loads(CliRunner().invoke(cli, ["alerts", "list", "--json"]).output)
    assert len(listed) == 4 and {r["status"] for r in listed} == {"pending"}

    plain.stop()
    server = servers(port=port, starttls=certificates.good.server_context())
    run_once()
    assert len(server.received) == 4 and all(r.tls is not None for r in server.received)
    assert server.login_tls and all(version is not None for version in server.login_tls)


def test_ssl_against_a_port_that_speaks_plain_smtp_fails_clearly(workdir, trust_ca, servers):
    plain = servers()
    set_up(workdir, plain, "ssl")
    run_once()
    assert plain.received == [] and plain.logins == []
    retried = CliRunner().invoke(cli, ["alerts", "retry"])
    assert retried.exit_code == 1 and "Mail: sent 0, still queued 4, refused 0." in retried.output
    assert f"TLS with 127.0.0.1:{plain.port} failed: WRONG_VERSION_NUMBER" in retried.output
