"""Mail settings: typed tables that refuse unknown keys, the password only from the environment, a real login."""

from __future__ import annotations

import logging

import pytest

from monitor.db import open_db
from monitor.mail import Mail, queue_mail, send_pending
from monitor.settings import SettingsError, load_settings
from tests.fakes.smtp_server import LoopbackSMTP


def write(tmp_path, text: str):
    path = tmp_path / "weerbaar.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("table, message", [
    ('[mail]\nhots = "smtp.example"\n', "[mail] hots: unknown key"),
    ('[alerts]\nrecipients = ["steunpunt"]\n', "not an e-mail address: 'steunpunt'"),
    ('[digest]\nrecipient = ["a@b.nl"]\n', "[digest] recipient: unknown key"),
    ('[alerts]\nspike_z = -1\n', "[alerts] spike_z: Input should be greater than 0"),
])
def test_a_bad_mail_setting_names_the_file_and_field(tmp_path, monkeypatch, table, message):
    monkeypatch.delenv("WEERBAAR_CONFIG", raising=False)
    path = write(tmp_path, table)
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_the_smtp_password_in_the_file_is_refused_and_the_environment_overrides(tmp_path, monkeypatch):
    with pytest.raises(SettingsError, match="WEERBAAR_SMTP_PASSWORD"):
        load_settings(write(tmp_path, 'smtp_password = "geheim"\n'))
    monkeypatch.setenv("WEERBAAR_MAIL__HOST", "smtp.override.example")
    monkeypatch.setenv("WEERBAAR_ALERTS__RECIPIENTS", '["desk@override.example"]')
    settings = load_settings(write(tmp_path, '[mail]\nhost = "smtp.file.example"\nport = 2525\n'))
    assert settings.mail.host == "smtp.override.example" and settings.mail.port == 2525
    assert settings.alerts.recipients == ["desk@override.example"]


def test_login_uses_the_password_from_the_environment_and_never_logs_it(tmp_path, monkeypatch, caplog):
    server = LoopbackSMTP(login=("weerbaar", "s3cret-pw")).start()
    try:
        db = open_db(tmp_path / "mail.db")
        mail_table = (f'[mail]\nhost = "127.0.0.1"\nport = {server.port}\nsender = "w@gemeente.example"\n'
                      'username = "weerbaar"\nretry_attempts = 1\ntimeout_seconds = 1\n')
        settings = load_settings(write(tmp_path, mail_table)).mail
        queue_mail(db, "digest", "k1", ["desk@gemeente.example"], Mail("s", "t", "<p>t</p>"), settings.sender)
        db.conn.commit()
        monkeypatch.setenv("WEERBAAR_SMTP_PASSWORD", "wrong")
        with caplog.at_level(logging.DEBUG):
            refused = send_pending(db, settings)
        assert refused.sent == 0 and server.received == []
        monkeypatch.setenv("WEERBAAR_SMTP_PASSWORD", "s3cret-pw")
        assert send_pending(db, settings, include_failed=True).sent == 1
        assert server.logins == ["weerbaar"] and len(server.received) == 1
        stored = db.execute("SELECT group_concat(coalesce(last_error, '')) FROM outbox").fetchone()[0]
        assert "s3cret" not in caplog.text and "wrong" not in caplog.text and "s3cret" not in (stored or "")
    finally:
        server.stop()


def test_a_login_to_another_machine_without_tls_is_refused_before_connecting(tmp_path, monkeypatch):
    from monitor.mail import MailError, check_host

    monkeypatch.setenv("WEERBAAR_SMTP_PASSWORD", "s3cret-pw")
    db = open_db(tmp_path / "mail.db")
    plain = ('[mail]\nhost = "smtp.gemeente.example"\nport = 25\nsender = "w@gemeente.example"\n'
             'username = "weerbaar"\nretry_attempts = 1\ntimeout_seconds = 1\n')
    settings = load_settings(write(tmp_path, plain)).mail
    with pytest.raises(MailError, match="password would go to smtp.gemeente.example:25 unencrypted"):
        check_host(settings)
    queue_mail(db, "digest", "k1", ["desk@gemeente.example"], Mail("s", "t", "<p>t</p>"), settings.sender)
    db.conn.commit()
    delivery = send_pending(db, settings)
    assert delivery.sent == 0
    status, error = db.execute("SELECT status, last_error FROM outbox").fetchone()
    assert status == "pending" and "unencrypted" in error and "s3cret" not in error
    # With STARTTLS set, or to a relay on this machine, the same login is allowed.
    check_host(load_settings(write(tmp_path, plain + "starttls = true\n")).mail)
    check_host(load_settings(write(tmp_path, plain.replace("smtp.gemeente.example", "127.0.0.1"))).mail)
