"""The Mastodon collector against a fake Mastodon instance on loopback, through the real pipeline and database."""

import json
import logging

import pytest

from monitor.pipeline import get_cursor, run_once
from scrapers.mastodon import html_to_text
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import FAST_RETRY, add_official, last_run, settings_with, targets_of
from tests.fakes.mastodon_api import FakeMastodon, account, generated_notifications, mention_html, notification, status

TOKEN = "mastodon-secret-token-4c1d"
DOMAIN = "social.example"


@pytest.fixture
def fake_mastodon():
    """A fake instance where the authorised wethouder has three mention notifications."""
    with FakeMastodon(token=TOKEN, domain=DOMAIN) as fake:
        me = mention_html("anna", DOMAIN)
        troll = account("boos", "elders.example", DOMAIN, "77")
        # The post of Anna's that the insult replies to, known on her instance by its local id 899.
        fake.statuses["899"] = status(899, "<p>Het nieuwe parkplan</p>", account("anna", DOMAIN, DOMAIN), DOMAIN)
        fake.notifications = [
            notification(500, status(900, f"<p>{me} bedankt voor de uitleg</p>", troll, "elders.example", minutes=1)),
            notification(501, status(901, f"<p>{me} jij idioot &amp; leugenaar</p><p>tweede &lt;regel&gt;</p>",
                                     troll, "elders.example", minutes=2, reply_to="899", edited=True)),
            notification(502, status(902, f"<p>{me} ik weet waar je woont<br>pas op</p>", troll,
                                     "elders.example", minutes=3)),
        ]
        yield fake


@pytest.fixture
def mastodon_env(clean_env):
    clean_env.setenv("WEERBAAR_MASTODON_ACCESS_TOKEN", TOKEN)
    return clean_env


def authorised_anna(db):
    official = add_official(db, "Anna", mastodon=f"@anna@{DOMAIN}")
    db.execute("UPDATE accounts SET authorised = 1 WHERE platform = 'mastodon'")
    db.conn.commit()
    return official


def mastodon_settings(tmp_path, fake, **extra):
    return settings_with(tmp_path, mastodon={"type": "mastodon", "base_url": fake.url, **FAST_RETRY, **extra})


def test_html_becomes_plain_text_with_line_breaks_and_no_markup():
    html = ('<p>Hallo <a href="https://x.example/@a" class="u-url mention">@<span>a</span></a> &amp; '
            '&lt;script&gt;</p><p>regel twee<br />regel drie</p><script>alert(1)</script>')
    assert html_to_text(html) == "Hallo @a & <script>\n\nregel twee\nregel drie"


def test_mention_notifications_are_stored_as_plain_text_for_the_official(platform_db, word_classifier,
                                                                         fake_mastodon, mastodon_env, tmp_path):
    official = authorised_anna(platform_db)
    [run] = run_once(platform_db, mastodon_settings(tmp_path, fake_mastodon), word_classifier)
    assert run.status == "ok" and run.new == 3
    rows = {r["post_id"]: r for r in platform_db["mentions"].rows}
    insult = rows["https://elders.example/users/boos/statuses/901"]
    assert targets_of(platform_db, "mastodon", insult["post_id"]) == [(official, "anna@social.example")]
    assert insult["text"] == "@anna jij idioot & leugenaar\n\ntweede <regel>"
    assert insult["author_handle"] == "boos@elders.example" and insult["in_reply_to"] == (
        "https://social.example/users/anna/statuses/899")
    assert insult["url"] == "https://elders.example/@boos/901" and insult["created_at"] == "2025-03-01T00:02:00Z"
    assert "<" not in rows["https://elders.example/users/boos/statuses/902"]["text"].replace("<regel>", "")
    [call] = fake_mastodon.calls_to("/api/v1/notifications")
    assert call["types[]"] == "mention"
    assert json.loads(get_cursor(platform_db, "mastodon")) == {"mastodon:anna@social.example": "502"}


def test_since_id_is_used_and_pagination_stops_at_it_without_duplicates(platform_db, word_classifier, mastodon_env,
                                                                       tmp_path):
    with FakeMastodon(token=TOKEN, domain=DOMAIN) as fake:
        fake.notifications = generated_notifications(100, "anna", DOMAIN)
        authorised_anna(platform_db)
        settings = mastodon_settings(tmp_path, fake)
        [first] = run_once(platform_db, settings, word_classifier)
        assert first.new == 100 and len(fake.calls_to("/api/v1/notifications")) == 3  # 40 + 40 + 20
        newest = fake.notifications[99][0]
        assert json.loads(get_cursor(platform_db, "mastodon")) == {"mastodon:anna@social.example": str(newest)}
        fake.notifications = generated_notifications(145, "anna", DOMAIN)
        fake.calls.clear()
        [second] = run_once(platform_db, settings, word_classifier)
        calls = fake.calls_to("/api/v1/notifications")
        assert calls[0]["since_id"] == str(newest)
        # The Link header's next page has no since_id (as on Mastodon): the collector stops at it by itself.
        assert "since_id" not in calls[1] and len(calls) == 2
        assert second.new == 45 and second.duplicates == 0
        assert platform_db["mentions"].count == 145


def test_hashtag_timelines_are_read_for_accounts_that_did_not_authorise(platform_db, word_classifier, clean_env,
                                                                        tmp_path):
    with FakeMastodon(domain=DOMAIN) as fake:
        anna = account("anna", DOMAIN, DOMAIN, "5")
        troll = account("boos", "elders.example", DOMAIN, "77")
        mentions_anna = [{"id": "5", "username": "anna", "acct": "anna", "url": f"https://{DOMAIN}/@anna"}]
        fake.hashtags["gemeenteraad"] = [
            (10, status(10, f"<p>{mention_html('anna', DOMAIN)} #gemeenteraad jij idioot</p>", troll,
                        "elders.example", mentions=mentions_anna)),
            (11, status(11, "<p>#gemeenteraad vanavond vergadering</p>", anna, DOMAIN)),
        ]
        official = add_official(platform_db, "Anna", mastodon=f"anna@{DOMAIN}")
        settings = mastodon_settings(tmp_path, fake, instance=DOMAIN, hashtags=["#gemeenteraad"])
        [run] = run_once(platform_db, settings, word_classifier)
    assert run.status == "ok" and run.new == 1 and run.unmatched == 1  # a post about nobody is not kept
    row = next(platform_db["mentions"].rows)
    assert targets_of(platform_db, "mastodon", row["post_id"]) == [(official, "anna@social.example")]
    assert json.loads(get_cursor(platform_db, "mastodon")) == {"mastodon:#gemeenteraad@social.example": "11"}


def test_a_malformed_status_is_quarantined_and_the_rest_stored(platform_db, word_classifier, fake_mastodon,
                                                              mastodon_env, tmp_path):
    authorised_anna(platform_db)
    troll = account("boos", "elders.example", DOMAIN, "77")
    broken = status(903, "<p>  </p>", troll, "elders.example", minutes=4)
    fake_mastodon.notifications.append(notification(503, broken))
    fake_mastodon.notifications.append((504, {"id": "504", "type": "mention", "account": troll}))
    [run] = run_once(platform_db, mastodon_settings(tmp_path, fake_mastodon), word_classifier)
    assert run.status == "ok" and run.new == 3 and run.quarantined == 2
    reasons = {r["location"]: r["reason"] for r in platform_db["quarantine"].rows}
    assert "field 'text'" in reasons["mastodon:anna@social.example: notification 503"]
    assert "status" in reasons["mastodon:anna@social.example: notification 504"]


def test_a_429_stops_the_source_until_the_reset_time(platform_db, word_classifier, fake_mastodon, mastodon_env,
                                                     tmp_path):
    authorised_anna(platform_db)
    settings = mastodon_settings(tmp_path, fake_mastodon)
    fake_mastodon.fail_next("/api/v1/notifications", 429, {"error": "Too many requests"},
                            headers={"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset": "2100-01-01T00:00:00.000000Z"})
    [run] = run_once(platform_db, settings, word_classifier)
    assert run.status == "stopped" and run.retry_after.startswith("2100-01-01T00:00")
    calls = len(fake_mastodon.calls)
    [waiting] = run_once(platform_db, settings, word_classifier)
    assert waiting.status == "waiting" and len(fake_mastodon.calls) == calls
    platform_db.execute("UPDATE cursors SET retry_after = '2000-01-01T00:00:00Z'")
    platform_db.conn.commit()
    [later] = run_once(platform_db, settings, word_classifier)
    assert later.status == "ok" and later.new == 3


def test_server_errors_are_retried_then_succeed(platform_db, word_classifier, fake_mastodon, mastodon_env, tmp_path):
    authorised_anna(platform_db)
    fake_mastodon.fail_next("/api/v1/notifications", 500, {"error": "boom"}, times=2)
    [run] = run_once(platform_db, mastodon_settings(tmp_path, fake_mastodon), word_classifier)
    assert run.status == "ok" and run.new == 3
    assert len(fake_mastodon.calls_to("/api/v1/notifications")) == 3


def test_a_rejected_token_is_recorded_as_a_clear_error_and_never_logged(platform_db, word_classifier, fake_mastodon,
                                                                        clean_env, tmp_path, caplog):
    clean_env.setenv("WEERBAAR_MASTODON_ACCESS_TOKEN", "revoked-mastodon-secret-31")
    authorised_anna(platform_db)
    caplog.set_level(logging.DEBUG)
    [run] = run_once(platform_db, mastodon_settings(tmp_path, fake_mastodon), word_classifier)
    row = last_run(platform_db)
    assert run.status == row["status"] == "stopped"
    assert "401" in row["error_message"] and "WEERBAAR_MASTODON_ACCESS_TOKEN" in row["error_message"]
    assert "revoked-mastodon-secret-31" not in caplog.text
    assert "revoked-mastodon-secret-31" not in "\n".join(platform_db.iterdump())


def test_the_benchmark_feed_serves_generated_posts_to_a_full_run(platform_db, word_classifier, clean_env, tmp_path):
    from tests.fakes import serve_fake_posts

    with serve_fake_posts("mastodon", 90) as feed:
        for name, value in feed.environment.items():
            clean_env.setenv(name, value)
        add_official(platform_db, "Bench", mastodon=feed.handle)
        platform_db.execute("UPDATE accounts SET authorised = 1")
        platform_db.conn.commit()
        [run] = run_once(platform_db, settings_with(tmp_path, mastodon=feed.source), word_classifier)
    assert run.status == "ok" and run.new == 90
    assert "&amp;" not in next(platform_db["mentions"].rows)["text"]
