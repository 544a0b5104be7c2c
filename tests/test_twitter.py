"""The X collector against a fake X API v2 on loopback, through the real pipeline and database."""

import json
import logging

import pytest

from monitor.pipeline import get_cursor, run_once
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import FAST_RETRY, add_official, last_run, settings_with, targets_of
from tests.fakes.x_api import FakeX, generated_tweets, tweet

TOKEN = "x-secret-bearer-7f3a"


@pytest.fixture
def fake_x():
    """A fake X API with one official's account and a few mentions."""
    with FakeX(token=TOKEN) as fake:
        fake.add_user("1001", "wethouder_jan")
        fake.mentions["wethouder_jan"] = [
            tweet(100, "@wethouder_jan goed plan voor het park", "2001", minutes=1),
            tweet(101, "@wethouder_jan jij idioot", "2002", minutes=2, reply_to=100),
            tweet(102, "@wethouder_jan ik weet waar je woont", "2003", minutes=3),
        ]
        yield fake


@pytest.fixture
def x_env(clean_env):
    clean_env.setenv("WEERBAAR_X_BEARER_TOKEN", TOKEN)
    return clean_env


def x_settings(tmp_path, fake, **extra):
    return settings_with(tmp_path, x={"type": "x", "base_url": fake.url, "monthly_read_budget": 1000,
                                      **FAST_RETRY, **extra})


def test_mentions_are_stored_for_the_official_with_their_x_fields(platform_db, word_classifier, fake_x, x_env,
                                                                   tmp_path):
    official = add_official(platform_db, "Jan", x="@Wethouder_Jan")
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "ok" and run.new == 3
    rows = {r["post_id"]: r for r in platform_db["mentions"].rows}
    assert set(rows) == {"100", "101", "102"}
    reply = rows["101"]
    assert targets_of(platform_db, "x", "101") == [(official, "wethouder_jan")]
    assert reply["url"] == "https://x.com/gebruiker2002/status/101"
    assert reply["in_reply_to"] == "100" and reply["author_id"] == "2002" and reply["lang"] == "nl"
    assert reply["created_at"] == "2025-03-01T00:02:00Z"
    flagged = platform_db.execute("SELECT m.post_id FROM scores s JOIN mentions m ON m.id = s.mention_id "
                                  "WHERE s.labels LIKE '%threat%'").fetchall()
    assert flagged == [("102",)]
    # Not authorised: recent search for the handle, with the expansions and fields Weerbaar normalises.
    [search] = fake_x.calls_to("/search/recent")
    assert search["query"] == "@wethouder_jan -is:retweet"
    assert search["expansions"] == "author_id,referenced_tweets.id,in_reply_to_user_id"
    assert "edit_history_tweet_ids" in search["tweet.fields"] and search["user.fields"] == "username"
    # The account's X id was looked up and kept, to follow renames.
    assert platform_db.execute("SELECT platform_user_id FROM accounts").fetchone()[0] == "1001"


def test_since_id_is_stored_per_account_and_used_next_run_without_duplicates(platform_db, word_classifier, fake_x,
                                                                              x_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    settings = x_settings(tmp_path, fake_x)
    run_once(platform_db, settings, word_classifier)
    assert json.loads(get_cursor(platform_db, "x")) == {"x:wethouder_jan": "102"}
    fake_x.mentions["wethouder_jan"].append(tweet(103, "@wethouder_jan nog een vraag", "2004", minutes=4))
    [again] = run_once(platform_db, settings, word_classifier)
    assert fake_x.calls_to("/search/recent")[-1]["since_id"] == "102"
    assert again.new == 1 and again.duplicates == 0
    assert platform_db["mentions"].count == 4
    assert json.loads(get_cursor(platform_db, "x")) == {"x:wethouder_jan": "103"}


def test_authorised_accounts_page_through_their_mention_timeline(platform_db, word_classifier, x_env, tmp_path):
    with FakeX(token=TOKEN) as fake:
        fake.add_user("1001", "wethouder_jan")
        fake.mentions["wethouder_jan"] = generated_tweets(23, "wethouder_jan")
        add_official(platform_db, "Jan", x="wethouder_jan")
        platform_db.execute("UPDATE accounts SET authorised = 1")
        platform_db.conn.commit()
        [run] = run_once(platform_db, x_settings(tmp_path, fake, page_size=10), word_classifier)
        pages = fake.calls_to(r"^/2/users/1001/mentions$")
    assert run.status == "ok" and run.new == 23 and platform_db["mentions"].count == 23
    assert [p.get("pagination_token") for p in pages] == [None, "13", "3"]
    assert all(p["max_results"] == "10" for p in pages)


def test_malformed_tweets_are_quarantined_with_their_raw_json_and_the_rest_is_stored(platform_db, word_classifier,
                                                                                    fake_x, x_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    fake_x.mentions["wethouder_jan"].append((103, {"id": "103", "author_id": "2005", "lang": "nl",
                                                   "created_at": "2025-03-01T00:05:00.000Z"}))
    fake_x.mentions["wethouder_jan"].append((104, {"id": "104", "text": "@wethouder_jan", "created_at": "gisteren"}))
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "ok" and run.new == 3 and run.quarantined == 2
    quarantined = {r["location"]: r for r in platform_db["quarantine"].rows}
    assert set(quarantined) == {"x:@wethouder_jan: tweet 103", "x:@wethouder_jan: tweet 104"}
    assert "field 'text'" in quarantined["x:@wethouder_jan: tweet 103"]["reason"]
    assert "field 'created_at'" in quarantined["x:@wethouder_jan: tweet 104"]["reason"]
    assert json.loads(quarantined["x:@wethouder_jan: tweet 103"]["raw"])["author_id"] == "2005"
    assert last_run(platform_db)["quarantined"] == 2


def test_a_429_stops_the_source_until_the_reset_time_and_a_later_run_fetches(platform_db, word_classifier, fake_x,
                                                                              x_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    settings = x_settings(tmp_path, fake_x)
    fake_x.fail_next("/search/recent", 429, {"title": "Too Many Requests", "detail": "Too Many Requests",
                                             "type": "about:blank", "status": 429},
                     headers={"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0",
                              "x-rate-limit-reset": "4102444800"})  # 2100-01-01T00:00:00Z
    [run] = run_once(platform_db, settings, word_classifier)
    assert run.status == "stopped" and run.retry_after == "2100-01-01T00:00:00.000000Z"
    assert platform_db.execute("SELECT retry_after FROM cursors WHERE source = 'x'").fetchone()[0] == run.retry_after
    calls = len(fake_x.calls)
    [waiting] = run_once(platform_db, settings, word_classifier)
    assert waiting.status == "waiting" and len(fake_x.calls) == calls  # X was not asked at all
    platform_db.execute("UPDATE cursors SET retry_after = '2000-01-01T00:00:00Z' WHERE source = 'x'")
    platform_db.conn.commit()
    [later] = run_once(platform_db, settings, word_classifier)
    assert later.status == "ok" and later.new == 3


def test_server_errors_are_retried_then_succeed(platform_db, word_classifier, fake_x, x_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    fake_x.fail_next("/search/recent", 503, {"title": "Service Unavailable"}, times=2)
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "ok" and run.new == 3
    assert len(fake_x.calls_to("/search/recent")) == 3


def test_server_errors_that_persist_stop_the_source_with_a_clear_message(platform_db, word_classifier, fake_x,
                                                                         x_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    fake_x.fail_next("/search/recent", 500, {"title": "Internal Error"}, times=5)
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "stopped" and "X unreachable after retries" in run.error
    assert len(fake_x.calls_to("/search/recent")) == FAST_RETRY["retry_attempts"]


def test_an_expired_token_is_recorded_as_a_clear_error_and_no_secret_is_logged(platform_db, word_classifier, fake_x,
                                                                               clean_env, tmp_path, caplog):
    clean_env.setenv("WEERBAAR_X_BEARER_TOKEN", "x-expired-secret-token-99")
    add_official(platform_db, "Jan", x="wethouder_jan")
    caplog.set_level(logging.DEBUG)
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "stopped"
    row = last_run(platform_db)
    assert row["status"] == "stopped" and "401" in row["error_message"]
    assert "WEERBAAR_X_BEARER_TOKEN" in row["error_message"]
    assert "x-expired-secret-token-99" not in caplog.text
    dump = "\n".join(platform_db.iterdump())
    assert "x-expired-secret-token-99" not in dump and TOKEN not in dump


def test_a_missing_token_stops_the_source_with_what_to_set(platform_db, word_classifier, fake_x, clean_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "stopped" and "WEERBAAR_X_BEARER_TOKEN" in run.error
    assert fake_x.calls == []


def test_the_monthly_read_budget_is_never_exceeded(platform_db, word_classifier, x_env, tmp_path, caplog):
    with FakeX(token=TOKEN) as fake:
        fake.add_user("1001", "wethouder_jan")
        fake.mentions["wethouder_jan"] = generated_tweets(500, "wethouder_jan")
        add_official(platform_db, "Jan", x="wethouder_jan")
        settings = x_settings(tmp_path, fake, monthly_read_budget=125)
        with caplog.at_level(logging.WARNING):
            [run] = run_once(platform_db, settings, word_classifier)
        reads = platform_db.execute("SELECT sum(reads) FROM api_usage WHERE source = 'x'").fetchone()[0]
        assert run.new == reads == 125  # a page of 100, then a page of 25: exactly what was left
        assert run.status == "stopped" and "budget" in run.error and run.retry_after
        assert "monthly read budget spent" in caplog.text
        # Newest first: the unread backlog is skipped, the cursor points at the newest post read.
        assert json.loads(get_cursor(platform_db, "x")) == {"x:wethouder_jan": str(1_890_000_000_000_000_499)}
        platform_db.execute("UPDATE cursors SET retry_after = NULL")
        platform_db.conn.commit()
        calls = len(fake.calls)
        [again] = run_once(platform_db, settings, word_classifier)
        assert again.status == "stopped" and len(fake.calls) == calls + 1  # only the user lookup, no post reads
        assert platform_db.execute("SELECT sum(reads) FROM api_usage").fetchone()[0] == 125


def test_suspended_and_unknown_accounts_are_marked_and_the_others_collected(platform_db, word_classifier, fake_x,
                                                                            x_env, tmp_path):
    add_official(platform_db, "Jan", x="wethouder_jan")
    add_official(platform_db, "Piet", x="piet_weg")
    add_official(platform_db, "Kees", x="kees_geschorst")
    fake_x.add_user("1003", "kees_geschorst")
    fake_x.suspended.add("1003")
    [run] = run_once(platform_db, x_settings(tmp_path, fake_x), word_classifier)
    assert run.status == "ok" and run.new == 3
    states = {h: (s, d) for h, s, d in platform_db.execute("SELECT handle, state, state_detail FROM accounts")}
    assert states["wethouder_jan"][0] == "ok"
    assert states["piet_weg"][0] == "not_found" and "Could not find user" in states["piet_weg"][1]
    assert states["kees_geschorst"][0] == "suspended" and "suspended" in states["kees_geschorst"][1]
    assert len(fake_x.calls_to("/search/recent")) == 1


def test_a_renamed_account_is_followed_by_its_id(platform_db, word_classifier, fake_x, x_env, tmp_path, caplog):
    official = add_official(platform_db, "Jan", x="wethouder_jan")
    settings = x_settings(tmp_path, fake_x)
    run_once(platform_db, settings, word_classifier)
    fake_x.rename("1001", "burgemeester_jan")
    fake_x.mentions["burgemeester_jan"].append(tweet(103, "@burgemeester_jan gefeliciteerd", "2004", minutes=5))
    with caplog.at_level(logging.WARNING):
        [run] = run_once(platform_db, settings, word_classifier)
    assert "renamed to burgemeester_jan" in caplog.text
    assert platform_db.execute("SELECT handle FROM accounts").fetchone()[0] == "burgemeester_jan"
    assert fake_x.calls_to("/search/recent")[-1]["since_id"] == "102"
    assert run.new == 1
    assert targets_of(platform_db, "x", "103") == [(official, "burgemeester_jan")]
    assert json.loads(get_cursor(platform_db, "x")) == {"x:burgemeester_jan": "103"}


def test_the_benchmark_feed_serves_generated_posts_to_a_full_run(platform_db, word_classifier, clean_env, tmp_path):
    from tests.fakes import serve_fake_posts

    with serve_fake_posts("x", 250) as feed:
        for name, value in feed.environment.items():
            clean_env.setenv(name, value)
        add_official(platform_db, "Bench", x=feed.handle)
        [run] = run_once(platform_db, settings_with(tmp_path, x=feed.source), word_classifier)
    assert run.status == "ok" and run.new == 250
