"""The review desk over in-process HTTP: authorisation per role, CSRF, login limits, the audit log, escaping, reviews."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from monitor.training.datasets import read_reviews
from monitor.db import open_db
from monitor.settings import load_settings
from monitor.users import disable_user, set_password
from monitor.web import create_app
from tests.desk import PASSWORD, RLO, build_desk, cheap_password_hashing, csrf_from  # noqa: F401

SECRET = "test-secret-" + "x" * 32


@pytest.fixture
def desk(workdir):
    """The desk's data, built through the real pipeline."""
    return build_desk(workdir)


def client_for(desk, settings=None) -> TestClient:
    """Return a test client of a fresh app over the desk's database."""
    return TestClient(create_app(settings or desk.settings, ("test-keywords", "1"), secret=SECRET))


def login(client: TestClient, username: str, password: str = PASSWORD, next_url: str = "/"):
    """Log in through the form, as a browser does."""
    token = csrf_from(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                       "next": next_url}, follow_redirects=False)


@pytest.fixture
def as_user(desk):
    """Return a function that gives a client logged in as a user."""
    def make(username: str) -> TestClient:
        client = client_for(desk)
        assert login(client, username).status_code == 303
        return client
    return make


def audit_rows(desk, action: str) -> list[tuple]:
    db = open_db(desk.db_path)
    rows = db.execute("SELECT actor, subject, at FROM audit_log WHERE action = ? ORDER BY id", [action]).fetchall()
    db.close()
    return rows


def review_rows(desk, mention_id: int) -> list[tuple]:
    db = open_db(desk.db_path)
    rows = db.execute("SELECT reviewer, status, labels, note, reported_on FROM reviews WHERE mention_id = ? ORDER BY id",
                      [mention_id]).fetchall()
    db.close()
    return rows


def post_review(client: TestClient, mention_id: int, **fields):
    token = csrf_from(client.get(f"/mentions/{mention_id}").text)
    return client.post(f"/mentions/{mention_id}/review", data={"csrf_token": token} | fields, follow_redirects=False)


def test_pages_need_a_login(desk):
    client = client_for(desk)
    for path in ("/queue", f"/mentions/{desk.mentions['threat_anneke']}", "/officials",
                 f"/mentions/{desk.mentions['threat_anneke']}/evidence"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_login_with_a_wrong_password_fails_and_the_right_one_opens_the_queue(desk):
    client = client_for(desk)
    wrong = login(client, "anna", "not the password")
    assert wrong.status_code == 401 and "verkeerd wachtwoord" in wrong.text
    right = login(client, "anna", next_url="/queue")
    assert right.status_code == 303 and right.headers["location"] == "/queue"
    assert "Wachtrij" in client.get("/queue").text


def test_session_cookie_is_signed_httponly_samesite_and_secure_behind_https(desk, monkeypatch):
    client = client_for(desk)
    cookie = login(client, "anna").headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    # A forged cookie (not signed with the key) is no session.
    forged = client_for(desk)
    forged.cookies.set("weerbaar_session", "eyJ1aWQiOiAxfQ==.forged.signature")
    assert forged.get("/queue", follow_redirects=False).status_code == 303
    monkeypatch.setenv("WEERBAAR_WEB__BASE_URL", "https://weerbaar.example.nl")
    secure = client_for(desk, load_settings())
    response = login(secure, "anna")
    assert "secure" in response.headers["set-cookie"].lower()
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_every_post_needs_the_csrf_token(desk, as_user):
    client = client_for(desk)
    client.get("/login")
    refused = client.post("/login", data={"username": "anna", "password": PASSWORD, "csrf_token": "wrong"})
    assert refused.status_code == 403
    assert client.get("/queue", follow_redirects=False).status_code == 303  # not logged in
    anna = as_user("anna")
    mention = desk.mentions["threat_anneke"]
    for data in ({"labels": "threat"}, {"labels": "threat", "csrf_token": "forged"}):
        assert anna.post(f"/mentions/{mention}/review", data=data).status_code == 403
    assert review_rows(desk, mention) == []
    assert anna.post("/logout", data={}).status_code == 403
    assert anna.get("/queue").status_code == 200  # still logged in


def test_logins_are_limited_per_user_name_and_per_client(desk):
    client = client_for(desk)
    for _ in range(desk.settings.web.login_attempts):
        assert login(client, "anna", "guess").status_code == 401
    blocked = login(client, "anna")
    assert blocked.status_code == 429 and "Te veel mislukte pogingen" in blocked.text
    # The same client trying another name is blocked too (a password sprayed over many names).
    assert login(client, "rob").status_code == 429
    assert [actor for actor, _, _ in audit_rows(desk, "login.succeeded")] == []
    assert len(audit_rows(desk, "login.failed")) == desk.settings.web.login_attempts
    assert len(audit_rows(desk, "login.blocked")) == 2


def test_pages_send_a_content_security_policy_without_inline_script(desk, as_user):
    anna = as_user("anna")
    for path in ("/queue", f"/mentions/{desk.mentions['threat_anneke']}", f"/officials/{desk.anneke}", "/login"):
        response = anna.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        scripts = response.text.count("<script")
        assert scripts == response.text.count('<script src="/static/desk.js" defer></script>') == 1


def test_a_reviewer_sees_only_the_mentions_of_their_officials(desk, as_user):
    anna, rob = as_user("anna"), as_user("rob")
    queue = anna.get("/queue").text
    assert "we weten waar je woont" in queue and "we weten waar je woont, Ruud" not in queue
    assert f'href="/mentions/{desk.mentions["threat_ruud"]}"' not in queue
    ruuds = desk.mentions["threat_ruud"]
    for path in (f"/mentions/{ruuds}", f"/mentions/{ruuds}/evidence", f"/officials/{desk.ruud}"):
        response = anna.get(path)
        assert response.status_code == 404
        assert "we weten waar je woont, Ruud" not in response.text and "anoniem123" not in response.text
    assert post_review(rob, ruuds, labels="threat").status_code == 303
    token = csrf_from(anna.get("/queue").text)
    assert anna.post(f"/mentions/{ruuds}/review", data={"labels": "none", "csrf_token": token}).status_code == 404
    assert [r[0] for r in review_rows(desk, ruuds)] == ["rob"]
    # A post addressed to both officials is visible to both reviewers.
    both = desk.mentions["both"]
    assert anna.get(f"/mentions/{both}").status_code == rob.get(f"/mentions/{both}").status_code == 200
    assert rob.get(f"/mentions/{desk.mentions['threat_anneke']}").status_code == 404
    # A mention that does not exist answers the same as one the user may not see.
    assert anna.get("/mentions/999999").status_code == 404


def test_an_admin_sees_every_mention_and_the_users(desk, as_user):
    admin = as_user("beheer")
    queue = admin.get("/queue").text
    for key in ("threat_anneke", "threat_ruud", "both", "insult_anneke"):
        assert f'href="/mentions/{desk.mentions[key]}"' in queue
    users = admin.get("/users").text
    assert "onderzoek" in users and "researcher" in users
    assert as_user("anna").get("/users").status_code == 403


def test_a_researcher_never_sees_the_queue_handles_or_texts(desk, as_user):
    client = client_for(desk)
    assert login(client, "onderzoek").headers["location"] == "/exports"
    researcher = client
    paths = ["/queue", "/officials", f"/officials/{desk.anneke}", "/users"]
    for key in desk.mentions:
        paths += [f"/mentions/{desk.mentions[key]}", f"/mentions/{desk.mentions[key]}/evidence"]
    for path in paths:
        response = researcher.get(path)
        assert response.status_code == 403, path
        for secret in ("weten waar je woont", "boze_burger", "AnnekeVisserZw", "clown"):
            assert secret not in response.text
    token = csrf_from(researcher.get("/exports").text)
    response = researcher.post(f"/mentions/{desk.mentions['both']}/review", data={"labels": "none", "csrf_token": token})
    assert response.status_code == 403
    assert review_rows(desk, desk.mentions["both"]) == []


def test_a_shared_post_names_only_the_officials_the_reviewer_is_assigned_to(desk, as_user):
    anna, admin = as_user("anna"), as_user("beheer")
    both = desk.mentions["both"]
    for page in (anna.get(f"/mentions/{both}").text, anna.get("/queue").text):
        assert "Anneke Visser" in page and "Ruud Hoekstra" not in page
    assert "Ruud Hoekstra" in admin.get(f"/mentions/{both}").text  # an admin sees every official
    pack = zipfile.ZipFile(io.BytesIO(anna.get(f"/mentions/{both}/evidence").content))
    officials = json.loads(pack.read("record.json"))["mentions"][0]["officials"]
    assert [o["name"] for o in officials] == ["Anneke Visser"]
    # Filtering the queue on an official one may not see filters nothing and tells nothing.
    filtered = anna.get(f"/queue?official={desk.ruud}&status=all")
    assert filtered.status_code == 200 and "Ruud Hoekstra" not in filtered.text


def test_logging_out_ends_the_session_everywhere_even_for_a_copied_cookie(desk, as_user):
    anna = as_user("anna")
    copied = dict(anna.cookies)
    token = csrf_from(anna.get("/queue").text)
    assert anna.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    thief = client_for(desk)
    thief.cookies.update(copied)
    assert thief.get("/queue", follow_redirects=False).status_code == 303
    assert as_user("anna").get("/queue").status_code == 200  # a new login works
    assert [r[1] for r in audit_rows(desk, "user.logged_out")] == [f"user:{anna_id(desk)}"]


def anna_id(desk) -> int:
    db = open_db(desk.db_path)
    try:
        return db.execute("SELECT id FROM users WHERE username = 'anna'").fetchone()[0]
    finally:
        db.close()


def test_viewing_the_queue_and_an_official_page_is_in_the_audit_log_with_ids_only(desk, as_user):
    anna = as_user("anna")
    anna.get("/queue")
    anna.get(f"/officials/{desk.anneke}")
    [(actor, subject, _)] = audit_rows(desk, "queue.viewed")
    assert (actor, subject) == ("anna", f"user:{anna_id(desk)}")
    db = open_db(desk.db_path)
    detail = json.loads(db.execute("SELECT detail FROM audit_log WHERE action = 'queue.viewed'").fetchone()[0])
    db.close()
    assert desk.mentions["threat_anneke"] in detail["mentions"] and "woont" not in json.dumps(detail)
    assert [(a, s) for a, s, _ in audit_rows(desk, "official.viewed")] == [("anna", f"official:{desk.anneke}")]


def test_an_absurd_page_number_is_a_normal_page_not_an_error(desk, as_user):
    assert as_user("anna").get("/queue?page=99999999999999999999").status_code == 200


def test_a_disabled_user_or_a_changed_password_ends_the_session(desk, as_user):
    anna, rob = as_user("anna"), as_user("rob")
    db = open_db(desk.db_path)
    disable_user(db, "anna")
    set_password(db, "rob", "another long password")
    db.close()
    assert anna.get("/queue", follow_redirects=False).status_code == 303
    assert login(client_for(desk), "anna").status_code == 401
    assert rob.get("/queue", follow_redirects=False).status_code == 303


def test_every_view_of_a_full_record_is_in_the_audit_log(desk, as_user):
    anna = as_user("anna")
    mention = desk.mentions["threat_anneke"]
    anna.get(f"/mentions/{mention}")
    anna.get(f"/mentions/{mention}/evidence")
    views = audit_rows(desk, "mention.viewed")
    assert [(actor, subject) for actor, subject, _ in views] == [("anna", f"mention:{mention}")]
    assert views[0][2].endswith("Z")
    assert [(a, s) for a, s, _ in audit_rows(desk, "mention.evidence_packed")] == [("anna", f"mention:{mention}")]
    # A refused view writes nothing about the mention.
    anna.get(f"/mentions/{desk.mentions['threat_ruud']}")
    assert len(audit_rows(desk, "mention.viewed")) == 1


def test_hostile_text_is_escaped_on_every_page(desk, as_user):
    admin = as_user("beheer")
    threat, insult = desk.mentions["threat_anneke"], desk.mentions["insult_anneke"]
    pages = [admin.get(p).text for p in ("/queue", f"/mentions/{threat}", f"/mentions/{insult}",
                                         f"/officials/{desk.anneke}")]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert RLO not in html
        assert 'href="javascript:' not in html.lower()
    mention_page = pages[1]
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in mention_page
    assert "javascript:alert(document.cookie)" in mention_page  # shown as text, never as a link
    insult_page = pages[2]
    assert "&lt;img src=x onerror=alert(1)&gt;" in insult_page
    # The right-to-left override in the author's handle was stripped when the post was collected.
    assert "@evilgnp.exe" in insult_page
    assert '<a href="https://bsky.app/profile/evil/post/9002" rel="noopener noreferrer nofollow"' in insult_page
    # A note is hostile too: it may be pasted from the post.
    post_review(admin, insult, labels="aggression", note="<script>alert(2)</script>")
    assert "&lt;script&gt;alert(2)" in admin.get(f"/mentions/{insult}").text


def test_the_queue_puts_threats_first_and_filters(desk, as_user):
    admin = as_user("beheer")
    queue = admin.get("/queue").text
    order = [queue.index(f'href="/mentions/{desk.mentions[key]}"') for key in ("threat_ruud", "both", "insult_anneke")]
    assert queue.index(f'href="/mentions/{desk.mentions["threat_anneke"]}"') < order[1]
    assert order[0] < order[1]
    assert f'href="/mentions/{desk.mentions["calm_anneke"]}"' not in queue  # not flagged
    by_platform = admin.get("/queue", params={"platform": "bluesky"}).text
    assert f'/mentions/{desk.mentions["insult_anneke"]}"' in by_platform
    assert f'/mentions/{desk.mentions["threat_anneke"]}"' not in by_platform
    threats = admin.get("/queue", params={"category": "threat", "official": desk.ruud}).text
    assert f'/mentions/{desk.mentions["threat_ruud"]}"' in threats
    assert f'/mentions/{desk.mentions["threat_anneke"]}"' not in threats
    everything = admin.get("/queue", params={"flagged": "0"}).text
    assert f'/mentions/{desk.mentions["calm_anneke"]}"' in everything
    none_yet = admin.get("/queue", params={"until": "2000-01-01"}).text
    assert "Geen berichten" in none_yet
    assert "since: geen datum" in admin.get("/queue", params={"since": "gisteren"}).text


def test_a_review_keeps_history_moves_the_status_and_feeds_training(desk, as_user):
    anna = as_user("anna")
    mention = desk.mentions["threat_anneke"]
    assert post_review(anna, mention, status="in_review").status_code == 303
    assert post_review(anna, mention, labels=["threat", "aggression"], note="woont adres?").status_code == 303
    assert post_review(anna, mention, labels=["threat", "aggression"], status="reported",
                       reported_on="2026-11-30").status_code == 303
    rows = review_rows(desk, mention)
    assert [(r[1], json.loads(r[2]), r[4]) for r in rows] == [
        ("in_review", [], None), ("confirmed", ["aggression", "threat"], None),
        ("reported", ["aggression", "threat"], "2026-11-30")]
    page = anna.get(f"/mentions/{mention}").text
    assert "aangifte gedaan" in page and "woont adres?" in page
    assert f'/mentions/{mention}"' not in anna.get("/queue").text  # no longer open
    assert f'/mentions/{mention}"' in anna.get("/queue", params={"status": "reported"}).text
    assert '<div class="meta">anna</div>' in anna.get("/queue", params={"status": "reported"}).text
    # A false positive: labels 'none'.
    insult = desk.mentions["insult_anneke"]
    assert post_review(anna, insult, labels="none").status_code == 303
    assert review_rows(desk, insult)[0][1:3] == ("dismissed", "[]")
    post_review(anna, desk.mentions["both"], status="in_review")
    records = {r.group: r.labels for r in read_reviews(desk.db_path)}
    assert records[f"mention:{mention}"] == {"aggression": 1, "threat": 1, "insult": 0, "identity_attack": 0}
    assert records[f"mention:{insult}"] == {"aggression": 0, "threat": 0, "insult": 0, "identity_attack": 0}
    assert f"mention:{desk.mentions['both']}" not in records  # only claimed, not judged


@pytest.mark.parametrize("fields, message", [
    ({"labels": "dreiging"}, "unknown category"),
    ({"labels": ["none", "threat"]}, "cannot be combined"),
    ({}, "choose at least one category"),
    ({"labels": "threat", "status": "reported"}, "date of the police report"),
    ({"labels": "threat", "status": "reported", "reported_on": "2999-01-01"}, "in the future"),
    ({"labels": "threat", "note": "x" * 4001}, "at most 4000"),
])
def test_a_bad_review_is_refused_and_stores_nothing(desk, as_user, fields, message):
    anna = as_user("anna")
    mention = desk.mentions["threat_anneke"]
    response = post_review(anna, mention, **fields)
    assert response.status_code == 400 and message in response.text
    assert review_rows(desk, mention) == []


def test_the_official_page_shows_a_timeline_and_a_90_day_chart(desk, as_user):
    page = as_user("anna").get(f"/officials/{desk.anneke}").text
    assert page.count('class="bar"') == 90
    assert page.count('class="bar-threat"') == 1
    assert f'/mentions/{desk.mentions["threat_anneke"]}"' in page
    assert f'/mentions/{desk.mentions["calm_anneke"]}"' not in page


def test_login_never_redirects_to_another_site(desk):
    client = client_for(desk)
    for target in ("//evil.example", "https://evil.example/", "/\\evil.example"):
        assert login(client, "anna", next_url=target).headers["location"] == "/"
        client.post("/logout", data={"csrf_token": csrf_from(client.get("/queue").text)})


def test_weerbaar_web_serves_the_desk_over_http_and_never_logs_the_secret(desk, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "web-secret-that-must-not-be-logged"
    log = tmp_path / "web.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "web", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"WEERBAAR_WEB_SECRET": secret})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert response.status == 200 and "Inloggen" in response.read().decode()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "server" not in {name.lower() for name in response.headers.keys()}
    finally:
        process.terminate()
        process.wait(20)
    assert secret not in log.read_text()


def test_a_password_typed_as_the_user_name_is_stored_nowhere(desk):
    client = client_for(desk)
    login(client, "my-secret-password-in-the-wrong-box", "whatever")
    db = open_db(desk.db_path)
    for table in ("audit_log", "login_attempts"):
        rows = db.execute(f"SELECT * FROM {table}").fetchall()
        assert rows and "my-secret-password" not in repr(rows)


def test_an_admin_manages_users_in_the_app_and_a_reviewer_cannot(desk, as_user):
    admin, anna = as_user("beheer"), as_user("anna")
    token = csrf_from(admin.get("/users").text)
    added = admin.post("/users/add", data={"csrf_token": token, "username": "nieuw", "role": "reviewer",
                                           "password": PASSWORD, "officials": [str(desk.ruud)]})
    assert added.status_code == 200 and "nieuw toegevoegd" in added.text
    nieuw = client_for(desk)
    assert login(nieuw, "nieuw").status_code == 303
    assert nieuw.get(f"/mentions/{desk.mentions['threat_ruud']}").status_code == 200
    assert nieuw.get(f"/mentions/{desk.mentions['threat_anneke']}").status_code == 404
    short = admin.post("/users/add", data={"csrf_token": token, "username": "kort", "role": "admin", "password": "x"})
    assert short.status_code == 400 and "at least 10 characters" in short.text
    assign = admin.post("/users/assign", data={"csrf_token": token, "username": "nieuw", "officials": [str(desk.anneke)]})
    assert assign.status_code == 200
    assert nieuw.get(f"/mentions/{desk.mentions['threat_anneke']}").status_code == 200
    assert admin.post("/users/disable", data={"csrf_token": token, "username": "beheer"}).status_code == 400
    assert admin.post("/users/disable", data={"csrf_token": token, "username": "nieuw"}).status_code == 200
    assert nieuw.get("/queue", follow_redirects=False).status_code == 303
    anna_token = csrf_from(anna.get("/queue").text)
    refused = anna.post("/users/add", data={"csrf_token": anna_token, "username": "x", "role": "admin",
                                            "password": PASSWORD})
    assert refused.status_code == 403
    assert admin.post("/users/add", data={"username": "y", "role": "admin", "password": PASSWORD}).status_code == 403
    db = open_db(desk.db_path)
    assert db.execute("SELECT count(*) FROM users WHERE username IN ('x', 'y', 'kort')").fetchone()[0] == 0
    assert db.execute("SELECT actor FROM audit_log WHERE action = 'user.added' AND subject = "
                      "(SELECT 'user:' || id FROM users WHERE username = 'nieuw')").fetchone()[0] == "beheer"
