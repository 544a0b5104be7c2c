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
