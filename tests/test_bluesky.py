"""The Bluesky collector against a fake XRPC server on loopback, through the real pipeline and database."""

import json
import logging

import pytest

from monitor.pipeline import get_cursor, run_once
from tests.fakes.bluesky_api import FakeBluesky, as_notification, generated_posts, post
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import FAST_RETRY, add_official, last_run, settings_with, targets_of

HANDLE = "wethouder-eva.bsky.social"
PASSWORD = "bsky-app-pass-secret-8e2"


@pytest.fixture
def fake_bluesky():
    """A fake Bluesky with one official and three posts mentioning her."""
    with FakeBluesky(login="weerbaar.bsky.social", password=PASSWORD) as fake:
        fake.add_profile("did:plc:eva", HANDLE)
        fake.posts[HANDLE] = [
            post(1, f"@{HANDLE} fijn dat u er was", "burger1.bsky.social", minutes=1),
            post(2, f"@{HANDLE} jij idioot", "boos.bsky.social", minutes=2,
                 reply_to="at://did:plc:eva/app.bsky.feed.post/3kabc"),
            post(3, f"@{HANDLE} ik weet waar je woont", "boos.bsky.social", minutes=3),
        ]
        yield fake


def bluesky_settings(tmp_path, fake, **extra):
    return settings_with(tmp_path, bluesky={"type": "bluesky", "base_url": fake.url, **FAST_RETRY, **extra})


def test_posts_that_mention_the_official_are_stored_with_their_fields(platform_db, word_classifier, fake_bluesky,
                                                                      clean_env, tmp_path):
    official = add_official(platform_db, "Eva", bluesky=f"@{HANDLE}")
    [run] = run_once(platform_db, bluesky_settings(tmp_path, fake_bluesky), word_classifier)
    assert run.status == "ok" and run.new == 3
    reply = platform_db.execute("SELECT * FROM mentions WHERE text LIKE '%idioot%'").fetchone()
    row = dict(zip([d[0] for d in platform_db.execute("SELECT * FROM mentions").description], reply))
    assert targets_of(platform_db, "bluesky", row["post_id"]) == [(official, HANDLE)]
    assert row["post_id"] == "at://did:plc:boos/app.bsky.feed.post/3l00000000002"
    assert row["url"] == "https://bsky.app/profile/boos.bsky.social/post/3l00000000002"
    assert row["author_id"] == "did:plc:boos" and row["in_reply_to"] == "at://did:plc:eva/app.bsky.feed.post/3kabc"
    assert row["created_at"] == "2025-03-01T00:02:00Z" and row["lang"] == "nl"
    [search] = fake_bluesky.calls_to("searchPosts")
    assert search["mentions"] == "did:plc:eva" and search["sort"] == "latest" and "since" not in search
    assert platform_db.execute("SELECT platform_user_id FROM accounts").fetchone()[0] == "did:plc:eva"


def test_the_newest_sort_time_is_the_cursor_and_the_next_run_reaches_back_past_it(
        platform_db, word_classifier, fake_bluesky, clean_env, tmp_path):
    add_official(platform_db, "Eva", bluesky=HANDLE)
    settings = bluesky_settings(tmp_path, fake_bluesky)
    run_once(platform_db, settings, word_classifier)
    # sortAt is the earlier of createdAt (00:03:00) and indexedAt (00:03:02): what searchPosts filters since on.
    assert json.loads(get_cursor(platform_db, "bluesky")) == {f"bluesky:{HANDLE}": "2025-03-01T00:03:00Z"}
    fake_bluesky.posts[HANDLE].append(post(4, f"@{HANDLE} nog iets", "burger2.bsky.social", minutes=9))
    [again] = run_once(platform_db, settings, word_classifier)
    assert fake_bluesky.calls_to("searchPosts")[-1]["since"] == "2025-02-28T23:33:00Z"
    # The overlap re-reads the three posts already stored; they are skipped, not stored twice.
    assert again.new == 1 and again.duplicates == 3 and platform_db["mentions"].count == 4


def test_a_post_indexed_late_is_not_lost(platform_db, word_classifier, fake_bluesky, clean_env, tmp_path):
    add_official(platform_db, "Eva", bluesky=HANDLE)
    settings = bluesky_settings(tmp_path, fake_bluesky)
    run_once(platform_db, settings, word_classifier)
    # Written at 00:02:30 but indexed only after the first run: its sortAt lies before the cursor (00:03:00).
    _, late = post(5, f"@{HANDLE} te laat geïndexeerd", "burger3.bsky.social", minutes=2)
    late["record"]["createdAt"] = "2025-03-01T00:02:30.000Z"
    late["indexedAt"] = "2025-03-01T00:20:00.000Z"
    fake_bluesky.posts[HANDLE].append((5, late))
    [again] = run_once(platform_db, settings, word_classifier)
    assert again.new == 1 and platform_db["mentions"].get(4)["text"] == f"@{HANDLE} te laat geïndexeerd"


def test_cursor_pagination_is_followed(platform_db, word_classifier, clean_env, tmp_path):
    with FakeBluesky() as fake:
        fake.add_profile("did:plc:eva", HANDLE)
        fake.posts[HANDLE] = generated_posts(250, HANDLE)
        add_official(platform_db, "Eva", bluesky=HANDLE)
        [run] = run_once(platform_db, bluesky_settings(tmp_path, fake), word_classifier)
        assert [c.get("cursor") for c in fake.calls_to("searchPosts")] == [None, "150", "50"]
    assert run.new == 250 and platform_db["mentions"].count == 250


def test_authorised_account_reads_mention_notifications_after_logging_in(platform_db, word_classifier, fake_bluesky,
                                                                         clean_env, tmp_path, caplog):
    clean_env.setenv("WEERBAAR_BLUESKY_APP_PASSWORD", PASSWORD)
    fake_bluesky.add_profile("did:plc:weerbaar", "weerbaar.bsky.social")
    official = add_official(platform_db, "Weerbaar", bluesky="weerbaar.bsky.social")
    platform_db.execute("UPDATE accounts SET authorised = 1")
    platform_db.conn.commit()
    _, mention = post(7, "@weerbaar.bsky.social dood aan jou", "boos.bsky.social", minutes=7)
    _, like = post(8, "niet relevant", "burger1.bsky.social", minutes=8)
    fake_bluesky.notifications = [as_notification(mention), as_notification(like, reason="like")]
    caplog.set_level(logging.DEBUG)
    [run] = run_once(platform_db, bluesky_settings(tmp_path, fake_bluesky, login_handle="weerbaar.bsky.social"),
                     word_classifier)
    assert run.status == "ok" and run.new == 1
    [(post_id, text)] = platform_db.execute("SELECT post_id, text FROM mentions").fetchall()
    assert text == "@weerbaar.bsky.social dood aan jou"
    assert [oid for oid, _ in targets_of(platform_db, "bluesky", post_id)] == [official]
    assert fake_bluesky.calls_to("listNotifications")[0]["reasons"] == ["mention", "reply"]
    assert fake_bluesky.calls_to("searchPosts") == []
    assert PASSWORD not in caplog.text and PASSWORD not in "\n".join(platform_db.iterdump())


def test_a_wrong_app_password_is_recorded_as_a_clear_error(platform_db, word_classifier, fake_bluesky, clean_env,
                                                           tmp_path, caplog):
    clean_env.setenv("WEERBAAR_BLUESKY_APP_PASSWORD", "wrong-secret-app-pass")
    add_official(platform_db, "Eva", bluesky=HANDLE)
    caplog.set_level(logging.DEBUG)
    [run] = run_once(platform_db, bluesky_settings(tmp_path, fake_bluesky, login_handle="weerbaar.bsky.social"),
                     word_classifier)
    row = last_run(platform_db)
    assert run.status == row["status"] == "stopped"
    assert "401" in row["error_message"] and "WEERBAAR_BLUESKY_APP_PASSWORD" in row["error_message"]
    assert "wrong-secret-app-pass" not in caplog.text


def test_an_expired_session_stops_the_source_with_a_clear_error(platform_db, word_classifier, fake_bluesky,
                                                                clean_env, tmp_path):
    clean_env.setenv("WEERBAAR_BLUESKY_APP_PASSWORD", PASSWORD)
    fake_bluesky.add_profile("did:plc:weerbaar", "weerbaar.bsky.social")
    add_official(platform_db, "Weerbaar", bluesky="weerbaar.bsky.social")
    platform_db.execute("UPDATE accounts SET authorised = 1")
    platform_db.conn.commit()
    fake_bluesky.fail_next("listNotifications", 401, {"error": "ExpiredToken", "message": "Token has expired"})
    [run] = run_once(platform_db, bluesky_settings(tmp_path, fake_bluesky, login_handle="weerbaar.bsky.social"),
                     word_classifier)
    assert run.status == "stopped" and "ExpiredToken" in last_run(platform_db)["error_message"]


def test_a_429_stops_the_source_until_ratelimit_reset(platform_db, word_classifier, fake_bluesky, clean_env,
                                                      tmp_path):
    add_official(platform_db, "Eva", bluesky=HANDLE)
    settings = bluesky_settings(tmp_path, fake_bluesky)
    fake_bluesky.fail_next("searchPosts", 429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                           headers={"ratelimit-limit": "3000", "ratelimit-remaining": "0",
                                    "ratelimit-reset": "4102444800", "ratelimit-policy": "3000;w=300"})
    [run] = run_once(platform_db, settings, word_classifier)
    assert run.status == "stopped" and run.retry_after == "2100-01-01T00:00:00.000000Z"
    calls = len(fake_bluesky.calls)
    [waiting] = run_once(platform_db, settings, word_classifier)
    assert waiting.status == "waiting" and len(fake_bluesky.calls) == calls
    platform_db.execute("UPDATE cursors SET retry_after = '2000-01-01T00:00:00Z'")
    platform_db.conn.commit()
    [later] = run_once(platform_db, settings, word_classifier)
    assert later.status == "ok" and later.new == 3


def test_server_errors_are_retried_then_succeed(platform_db, word_classifier, fake_bluesky, clean_env, tmp_path):
    add_official(platform_db, "Eva", bluesky=HANDLE)
    fake_bluesky.fail_next("searchPosts", 500, {"error": "InternalServerError", "message": "oops"})
    fake_bluesky.fail_next("searchPosts", 502, {"error": "BadGateway"})
    [run] = run_once(platform_db, bluesky_settings(tmp_path, fake_bluesky), word_classifier)
    assert run.status == "ok" and run.new == 3 and len(fake_bluesky.calls_to("searchPosts")) == 3


def test_a_malformed_post_is_quarantined_and_the_rest_stored(platform_db, word_classifier, fake_bluesky, clean_env,
                                                             tmp_path):
    add_official(platform_db, "Eva", bluesky=HANDLE)
    _, broken = post(4, "", "boos.bsky.social", minutes=4)
    del broken["record"]["createdAt"]
    broken["record"]["text"] = f"@{HANDLE} zonder datum"
    fake_bluesky.posts[HANDLE].append((4, broken))
    [run] = run_once(platform_db, bluesky_settings(tmp_path, fake_bluesky), word_classifier)
    assert run.status == "ok" and run.new == 3 and run.quarantined == 1
    location, reason, raw = platform_db.execute("SELECT location, reason, raw FROM quarantine").fetchone()
    assert location == f"bluesky:@{HANDLE}: {broken['uri']}" and "field 'created_at'" in reason
    assert json.loads(raw)["record"]["text"] == f"@{HANDLE} zonder datum"


def test_unknown_accounts_are_marked_and_renamed_ones_followed_by_did(platform_db, word_classifier, fake_bluesky,
                                                                      clean_env, tmp_path):
    add_official(platform_db, "Eva", bluesky=HANDLE)
    add_official(platform_db, "Niemand", bluesky="bestaat-niet.bsky.social")
    settings = bluesky_settings(tmp_path, fake_bluesky)
    run_once(platform_db, settings, word_classifier)
    states = dict(platform_db.execute("SELECT handle, state FROM accounts").fetchall())
    assert states == {HANDLE: "ok", "bestaat-niet.bsky.social": "not_found"}
    fake_bluesky.profiles["did:plc:eva"]["handle"] = "eva.example.nl"
    fake_bluesky.posts["eva.example.nl"] = fake_bluesky.posts.pop(HANDLE)
    fake_bluesky.posts["eva.example.nl"].append(post(5, "@eva.example.nl gefeliciteerd", "b.bsky.social", minutes=5))
    [run] = run_once(platform_db, settings, word_classifier)
    assert run.new == 1
    assert platform_db.execute("SELECT handle FROM accounts WHERE platform_user_id = 'did:plc:eva'").fetchone() == (
        "eva.example.nl",)
    assert set(json.loads(get_cursor(platform_db, "bluesky"))) == {"bluesky:eva.example.nl"}


def test_the_benchmark_feed_serves_generated_posts_to_a_full_run(platform_db, word_classifier, clean_env, tmp_path):
    from tests.fakes import serve_fake_posts

    with serve_fake_posts("bluesky", 250) as feed:
        add_official(platform_db, "Bench", bluesky=feed.handle)
        [run] = run_once(platform_db, settings_with(tmp_path, bluesky=feed.source), word_classifier)
    assert run.status == "ok" and run.new == 250
