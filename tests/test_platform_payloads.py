"""Recorded-shape payloads of X, Mastodon and Bluesky replayed through the real collectors, and real-format 4CAT and
Zeeschuimer exports, checked field by field (tests/fixtures/platforms/, tests/fixtures/4cat_*, zeeschuimer_*)."""

import json
from pathlib import Path

from monitor.pipeline import run_once
from scrapers.research_tools import ExportSource, detect_format
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import FAST_RETRY, add_official, settings_with, targets_of
from tests.fakes.mastodon_api import FakeMastodon
from tests.fakes.x_api import FakeX, replay_page

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = FIXTURES / "platforms"


def recorded(name: str):
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


def stored(db, platform: str) -> dict[str, dict]:
    return {row["post_id"]: row for row in db["mentions"].rows_where("platform = ?", [platform])}


def read_export(path: Path, export_format: str):
    mentions, quarantined = [], []
    for batch in ExportSource("export", path, export_format).fetch(None):
        mentions += batch.mentions
        quarantined += batch.quarantined
    return {m.post_id: m for m in mentions}, quarantined


# -- X ----------------------------------------------------------------------------------------------------------------


def test_x_search_page_is_normalised_faithfully(platform_db, word_classifier, clean_env, tmp_path):
    clean_env.setenv("WEERBAAR_X_BEARER_TOKEN", "x-token")
    jan = add_official(platform_db, "Jan", x="@wethouder_jan")
    piet = add_official(platform_db, "Piet", x="@raadslid_piet")
    with FakeX(token="x-token") as fake:
        replay_page(fake, "wethouder_jan", recorded("x_search_recent.json"))
        settings = settings_with(tmp_path, x={"type": "x", "base_url": fake.url, "monthly_read_budget": 1000,
                                              "page_size": 5, **FAST_RETRY})
        [run] = run_once(platform_db, settings, word_classifier)
        [search] = [c for c in fake.calls_to("/search/recent")]
    # A page_size under search's minimum of 10 is raised to it, not read as a spent budget.
    assert run.status == "ok" and search["max_results"] == "10"
    assert {"note_tweet", "entities", "referenced_tweets"} <= set(search["tweet.fields"].split(","))
    rows = stored(platform_db, "x")
    # The retweet (104) is someone else's words; Jan's own reply in his thread (105) is not a mention of him.
    assert set(rows) == {"1890000000000000101", "1890000000000000102", "1890000000000000103"}
    both = rows["1890000000000000101"]
    assert both["text"] == "@wethouder_jan @raadslid_piet jullie zijn leugenaars & dieven <3 &amp;"
    assert targets_of(platform_db, "x", "1890000000000000101") == [(jan, "wethouder_jan"), (piet, "raadslid_piet")]
    assert both["in_reply_to"] == "1890000000000000100" and both["author_handle"] == "angry_burger"
    long_post = rows["1890000000000000102"]
    assert long_post["text"].endswith("parkeergarage die niemand wil. Ik weet waar je woont.")
    assert "& niemand" in long_post["text"] and long_post["context_text"] is None
    quote = rows["1890000000000000103"]
    assert quote["text"] == "@wethouder_jan kijk wat je gedaan hebt, idioot https://t.co/q1Uo7eAbCd"
    assert quote["context_text"] == "Het parkplan is goedgekeurd & gaat door"
    threat = platform_db.execute("SELECT m.post_id FROM scores s JOIN mentions m ON m.id = s.mention_id "
                                 "WHERE s.labels LIKE '%threat%'").fetchall()
    assert threat == [("1890000000000000102",)]  # the threat is in the note_tweet part only


# -- Mastodon ---------------------------------------------------------------------------------------------------------


def test_mastodon_notifications_are_normalised_faithfully(platform_db, word_classifier, clean_env, tmp_path):
    clean_env.setenv("WEERBAAR_MASTODON_ACCESS_TOKEN", "m-token")
    anna = add_official(platform_db, "Anna", mastodon="@anna@social.example")
    piet = add_official(platform_db, "Piet", mastodon="piet@social.example")
    platform_db.execute("UPDATE accounts SET authorised = 1 WHERE handle = 'anna@social.example'")
    platform_db.conn.commit()
    with FakeMastodon(token="m-token", domain="social.example") as fake:
        fake.notifications = [(int(n["id"]), n) for n in recorded("mastodon_notifications.json")]
        quoted = recorded("mastodon_status.json")
        fake.statuses[quoted["id"]] = quoted
        settings = settings_with(tmp_path, m={"type": "mastodon", "base_url": fake.url, **FAST_RETRY})
        [run] = run_once(platform_db, settings, word_classifier)
    assert run.status == "ok" and run.new == 2
    rows = stored(platform_db, "mastodon")
    quoting = rows["https://elders.example/users/boos/statuses/113000000000000101"]
    # The "RE: <link>" paragraph is for clients without quotes; the quote itself is context.
    assert quoting["text"] == "@anna jij idioot, dit is een schande"
    assert quoting["context_text"] == "Het parkplan is goedgekeurd & gaat door."
    reply = rows["https://elders.example/users/boos/statuses/113000000000000102"]
    # in_reply_to is the parent's ActivityPub URI, the same kind of id as post_id, so replies join.
    assert reply["in_reply_to"] == quoted["uri"]
    # Piet's short @piet resolved through the status's mentions list, on the right instance.
    assert targets_of(platform_db, "mastodon", reply["post_id"]) == [(anna, "anna@social.example"),
                                                                     (piet, "piet@social.example")]


def test_mastodon_short_name_of_another_instance_is_not_the_official(platform_db, word_classifier, clean_env,
                                                                     tmp_path):
    add_official(platform_db, "Anna", mastodon="anna@social.example")
    with FakeMastodon(domain="social.example") as fake:
        fake.hashtags["gemeenteraad"] = [(int(s["id"]), s) for s in recorded("mastodon_hashtag.json")]
        settings = settings_with(tmp_path, m={"type": "mastodon", "base_url": fake.url, "instance": "social.example",
                                              "hashtags": ["gemeenteraad"], **FAST_RETRY})
        [run] = run_once(platform_db, settings, word_classifier)
    # "@anna" on the page is anna@ander.example; the boost is skipped (its original is found on its own).
    assert run.status == "ok" and run.new == 0 and platform_db["mentions"].count == 0


# -- Bluesky ----------------------------------------------------------------------------------------------------------


def test_bluesky_search_page_is_normalised_faithfully(platform_db, word_classifier, clean_env, tmp_path):
    handle = "wethouder-eva.bsky.social"
    eva = add_official(platform_db, "Eva", bluesky=handle)
    with FakeBluesky() as fake:
        fake.add_profile("did:plc:eva", handle)
        page = recorded("bluesky_search_posts.json")["posts"]
        fake.posts[handle] = [(index, post) for index, post in enumerate(reversed(page))]
        settings = settings_with(tmp_path, b={"type": "bluesky", "base_url": fake.url, **FAST_RETRY})
        [run] = run_once(platform_db, settings, word_classifier)
    rows = stored(platform_db, "bluesky")
    # Eva's own post in her own thread is not a mention of her.
    assert run.status == "ok" and run.new == 3 and "at://did:plc:eva/app.bsky.feed.post/3lbbbbbbbbb00" not in rows
    invalid = rows["at://did:plc:nohandle/app.bsky.feed.post/3lbbbbbbbbb03"]
    assert invalid["author_handle"] == "did:plc:nohandle"
    assert invalid["url"] == "https://bsky.app/profile/did:plc:nohandle/post/3lbbbbbbbbb03"
    assert targets_of(platform_db, "bluesky", invalid["post_id"]) == [(eva, handle)]
    with_media = rows["at://did:plc:boos/app.bsky.feed.post/3lbbbbbbbbb02"]
    plain = rows["at://did:plc:burger/app.bsky.feed.post/3lbbbbbbbbb01"]
    assert with_media["context_text"] == plain["context_text"] == "Het parkplan gaat door."
    assert plain["text"] == "@wethouder-eva.bsky.social dit zegt genoeg"


# -- 4CAT and Zeeschuimer -------------------------------------------------------------------------------------------


def test_4cat_x_api_v2_ndjson_is_read_with_its_author_user_and_inlined_references():
    path = FIXTURES / "4cat_x_api_v2.ndjson"
    assert detect_format(path) == "4cat"
    mentions, quarantined = read_export(path, "4cat")
    assert quarantined == [] and set(mentions) == {"2126600000000000001", "2126600000000000002"}  # no retweet
    reply = mentions["2126600000000000001"]
    assert reply.text == "@AnnekeVisserZw ga toch weg & neem je plannen mee >:("
    assert reply.author_handle == "boos_in_zwolle" and reply.target_handle == "AnnekeVisserZw"
    assert reply.url == "https://x.com/boos_in_zwolle/status/2126600000000000001"
    assert reply.in_reply_to == "2126599999999999999" and reply.created_at == "2026-11-27T13:00:00Z"
    assert mentions["2126600000000000002"].context_text == "De nieuwe begroting is rond & sluit."


def test_4cat_bluesky_csv_reads_replied_author_and_languages():
    mentions, quarantined = read_export(FIXTURES / "4cat_bluesky.csv", "4cat")
    [post] = mentions.values()
    assert quarantined == [] and post.platform == "bluesky"
    assert post.target_handle == "annekevisser.bsky.social" and post.lang == "nl"
    assert post.created_at == "2026-11-27T14:00:00Z"


def test_zeeschuimer_semicolon_csv_export_is_recognised_and_read():
    path = FIXTURES / "zeeschuimer_export.csv"
    assert detect_format(path) == "zeeschuimer"
    mentions, quarantined = read_export(path, "zeeschuimer")
    assert quarantined == [] and list(mentions) == ["2126700000000000001"]  # the retweet row is left out
    post = mentions["2126700000000000001"]
    assert post.text == "@AnnekeVisserZw jij & je raad; allemaal weg"
    assert post.target_handle == "@AnnekeVisserZw" and post.author_handle == "@woedend_nl" and post.lang == "nl"


def test_a_tweet_with_fields_of_the_wrong_type_is_quarantined_and_the_run_goes_on(platform_db, word_classifier,
                                                                                 clean_env, tmp_path):
    clean_env.setenv("WEERBAAR_X_BEARER_TOKEN", "x-token")
    add_official(platform_db, "Jan", x="@wethouder_jan")
    page = recorded("x_search_recent.json")
    broken = dict(page["data"][-1], id="1890000000000000106", entities="geen object", note_tweet=["lijst"])
    page["data"].insert(0, broken)
    with FakeX(token="x-token") as fake:
        replay_page(fake, "wethouder_jan", page)
        settings = settings_with(tmp_path, x={"type": "x", "base_url": fake.url, "monthly_read_budget": 1000,
                                              **FAST_RETRY})
        [run] = run_once(platform_db, settings, word_classifier)
    assert run.status == "ok" and run.new == 3 and run.quarantined == 1
    [row] = platform_db["quarantine"].rows
    assert row["location"] == "x:@wethouder_jan: tweet 1890000000000000106"
    assert row["reason"].startswith("unexpected structure: AttributeError")
    assert json.loads(platform_db["cursors"].get("x")["cursor"]) == {"x:wethouder_jan": "1890000000000000106"}
