"""`weerbaar users`: passwords only from the environment or a prompt, argon2 hashes, roles and assignments."""

from __future__ import annotations

import json

from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.settings import load_settings
from monitor.users import authenticate
from tests.desk import cheap_password_hashing  # noqa: F401

PASSWORD = "een lang wachtwoord"


def run(*args, password: str | None = PASSWORD, input: str | None = None):
    env = {"WEERBAAR_NEW_PASSWORD": password} if password else {}
    return CliRunner().invoke(cli, list(args), env=env, input=input)


def database():
    return open_db(load_settings().db_path)


def test_the_first_admin_and_a_reviewer_are_added_with_hashed_passwords(workdir):
    assert run("officials", "import", "config/samples/officials.csv").exit_code == 0
    added = run("users", "add", "beheer", "--role", "admin")
    assert added.exit_code == 0 and "Added admin beheer" in added.output
    assert run("users", "add", "jdewit", "--role", "reviewer", "--official", "1", "--official", "3").exit_code == 0
    db = database()
    stored = db.execute("SELECT password_hash FROM users WHERE username = 'beheer'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert authenticate(db, "beheer", PASSWORD).role == "admin"
    assert authenticate(db, "beheer", "wrong password") is None
    listed = json.loads(run("users", "list", "--json").output)
    assert [(u["username"], u["role"], u["officials"]) for u in listed] == [
        ("beheer", "admin", []), ("jdewit", "reviewer", [1, 3])]
    audit = db.execute("SELECT detail FROM audit_log WHERE action = 'user.added'").fetchall()
    assert all(PASSWORD not in row[0] for row in audit)


def test_the_password_is_prompted_when_not_in_the_environment(workdir):
    result = run("users", "add", "anna", "--role", "researcher", password=None, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert authenticate(database(), "anna", PASSWORD) is not None


def test_bad_users_are_refused_and_nothing_is_stored(workdir):
    run("officials", "import", "config/samples/officials.csv")
    cases = [
        (("users", "add", "kort", "--role", "admin"), "short", "at least 10 characters"),
        (("users", "add", "x", "--role", "reviewer", "--official", "999"), PASSWORD, "--official 999: no such official"),
        (("users", "add", "y", "--role", "researcher", "--official", "1"), PASSWORD, "only a reviewer"),
        (("users", "add", "met spatie", "--role", "admin"), PASSWORD, "without spaces"),
    ]
    for args, password, message in cases:
        result = run(*args, password=password)
        assert result.exit_code == 2 and message in result.output, result.output
    no_password = run("users", "add", "z", "--role", "admin", password=None)  # nothing to read at the prompt
    assert no_password.exit_code == 2 and "WEERBAAR_NEW_PASSWORD" in no_password.output
    assert database()["users"].count == 0
    assert run("users", "add", "beheer", "--role", "admin").exit_code == 0
    assert "exists" in run("users", "add", "beheer", "--role", "admin").output


def test_disable_passwd_and_assign(workdir):
    run("officials", "import", "config/samples/officials.csv")
    run("users", "add", "jdewit", "--role", "reviewer", "--official", "1")
    assert run("users", "passwd", "jdewit", password="nog een ander wachtwoord").exit_code == 0
    db = database()
    assert authenticate(db, "jdewit", PASSWORD) is None
    assert authenticate(db, "jdewit", "nog een ander wachtwoord") is not None
    assert "sees officials 1, 2" in run("users", "assign", "jdewit", "--official", "2").output
    assert "sees officials 2" in run("users", "assign", "jdewit", "--official", "1", "--remove").output
    assert run("users", "disable", "jdewit").exit_code == 0
    assert authenticate(database(), "jdewit", "nog een ander wachtwoord") is None
    assert "disabled" in run("users", "list").output
    assert run("users", "disable", "niemand").exit_code == 2


def test_parallel_login_attempts_cannot_pass_the_limit_together(tmp_path):
    import threading

    from monitor.db import open_db
    from monitor.users import claim_login_attempt

    path = tmp_path / "w.db"
    open_db(path).close()
    claimed, start = [], threading.Barrier(12)

    def attempt() -> None:
        db = open_db(path)
        start.wait()
        claimed.append(claim_login_attempt(db, "anna", "203.0.113.7", attempts=5, window_minutes=15))
        db.close()

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Checked and counted in one write transaction each: exactly the limit gets through, however many arrive at once.
    assert sum(result is not None for result in claimed) == 5


def test_ipv6_clients_are_counted_per_64_so_rotating_addresses_share_one_limit():
    from monitor.users import client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("203.0.113.7") == "203.0.113.7" and client_key("testclient") == "testclient"
