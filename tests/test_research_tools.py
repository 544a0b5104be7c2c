"""Reading 4CAT and Zeeschuimer exports: normalising, quarantining bad lines, importing through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.classifier import register_classifier
from monitor.cli import cli
from monitor.db import open_db
from monitor.officials import import_officials
from monitor.pipeline import build_sources, run_source
from monitor.settings import Settings
from scrapers.research_tools import ExportFormatError, ExportSource, detect_format, open_export

FIXTURES = Path(__file__).parent / "fixtures"
OFFICIALS_CSV = (
    "name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
    "consent_recorded_by\n"
    "Anneke Visser,burgemeester,gemeente,Gemeente Zwolle,@AnnekeVisserZw,,annekevisser.bsky.social,,2026-09-14,"
    '"x,bluesky",griffie: J. de Wit\n'
)


class KeywordClassifier:
    """A stand-in model: a text is aggressive when it holds one of a few words."""

    name = "keyword-fake"
    version = "1"
    categories = ("aggression", "threat")

    def score(self, texts):
        return [
            {
                "aggression": 0.9 if any(w in t.lower() for w in ("schande", "opkrassen", "weg")) else 0.1,
                "threat": 0.9 if any(w in t.lower() for w in ("waar je woont", "pas maar op")) else 0.05,
            }
            for t in texts
        ]


register_classifier("keyword-fake", lambda classifier_settings, settings: KeywordClassifier())


def read_all(source: ExportSource):
    mentions, quarantined = [], []
    for batch in source.fetch(None):
        mentions += batch.mentions
        quarantined += batch.quarantined
    return mentions, quarantined


def test_zeeschuimer_export_normalises_x_and_bluesky_and_quarantines_the_rest():
    mentions, quarantined = read_all(ExportSource("zs", FIXTURES / "zeeschuimer_mixed.ndjson", "zeeschuimer"))
    by_id = {m.post_id: m for m in mentions}
    assert set(by_id) == {
        "2126300000000000001",
        "2126300000000000002",
        "2126300000000000003",
        "at://did:plc:xc2yq6mydr2jzriin5ggwzae/app.bsky.feed.post/3n3cxyzabc22a",
    }
    reply = by_id["2126300000000000001"]
    assert reply.platform == "x"
    assert reply.created_at == "2026-11-27T08:15:02Z"
    assert reply.author_handle == "@boze_burger71"
    assert reply.target_handle == "@AnnekeVisserZw"
    assert reply.in_reply_to == "2126299999999999999"
    assert reply.url == "https://x.com/boze_burger71/status/2126300000000000001"
    # The newer X user shape (screen_name under core) and the untruncated note_tweet text.
    long_post = by_id["2126300000000000002"]
    assert long_post.author_handle == "@linda_verhoef"
    assert long_post.text.endswith("raadsvergadering van dinsdag.")
    bsky = by_id["at://did:plc:xc2yq6mydr2jzriin5ggwzae/app.bsky.feed.post/3n3cxyzabc22a"]
    assert bsky.platform == "bluesky"
    assert bsky.url == "https://bsky.app/profile/hardewaarheid.bsky.social/post/3n3cxyzabc22a"
    assert bsky.created_at == "2026-11-27T10:02:11Z"
    reasons = {q.location.rsplit(":", 1)[1]: q.reason for q in quarantined}
    assert set(reasons) == {"5", "6", "7"}
    assert "tiktok.com" in reasons["5"] and "not monitored" in reasons["5"]
    assert reasons["6"].startswith("not valid JSON")
    assert "created_at" in reasons["7"]


def test_4cat_csv_uses_unix_timestamp_keeps_multiline_bodies_and_names_bad_fields():
    mentions, quarantined = read_all(ExportSource("4cat", FIXTURES / "4cat_x.csv", "4cat"))
    assert [m.post_id for m in mentions] == ["2126400000000000001", "2126400000000000002"]
    first = mentions[0]
    assert first.platform == "x"
    assert first.created_at == "2026-11-27T11:00:05Z"
    assert "\nvoelen hoe het is" in first.text
    assert first.author_handle == "@woedend_nl"
    assert first.target_handle == "@AnnekeVisserZw"
    assert first.lang == "nl"
    assert [q.reason for q in quarantined] == [
        "field 'text': missing or empty text",
        "field 'created_at': not an ISO 8601 timestamp: 'niet bekend'",
    ]


def test_4cat_ndjson_reads_zeeschuimer_imports_and_bluesky_items():
    mentions, quarantined = read_all(ExportSource("4cat", FIXTURES / "4cat_mixed.ndjson", "4cat"))
    assert [(m.platform, m.post_id) for m in mentions] == [
        ("x", "2126500000000000001"),
        ("bluesky", "at://did:plc:abcdabcdabcdabcdabcdabcd/app.bsky.feed.post/3n3dabcdefg2x"),
    ]
    # 4CAT looked up the handle the Bluesky reply answers; it is the target.
    assert mentions[1].target_handle == "annekevisser.bsky.social"
    assert mentions[1].in_reply_to.endswith("/3n3c0000000aa")
    assert len(quarantined) == 2
    assert "field 'text'" in quarantined[1].reason


def test_4cat_csv_row_without_a_recognisable_link_needs_the_platform(tmp_path):
    export = tmp_path / "dataset.csv"
    export.write_text("id,timestamp,body,author,link\n1,2026-11-27 10:00:00,hallo @AnnekeVisserZw,piet,\n")
    assert read_all(ExportSource("4cat", export, "4cat"))[1][0].reason.startswith("field 'link'")
    mentions, quarantined = read_all(ExportSource("4cat", export, "4cat", platform="x"))
    assert quarantined == [] and mentions[0].author_handle == "@piet"


def test_detect_format_judges_columns_and_first_line(tmp_path):
    assert detect_format(FIXTURES / "4cat_x.csv") == "4cat"
    assert detect_format(FIXTURES / "4cat_mixed.ndjson") == "4cat"
    assert detect_format(FIXTURES / "zeeschuimer_mixed.ndjson") == "zeeschuimer"
    generic = tmp_path / "posts.jsonl"
    generic.write_text(json.dumps({"platform": "x", "id": "1", "text": "t", "created_at": "2026-11-27T10:00:00Z"}))
    assert detect_format(generic) == "generic"
    unknown = tmp_path / "other.ndjson"
    unknown.write_text('{"foo": 1}\n')
    with pytest.raises(ExportFormatError, match="other.ndjson"):
        detect_format(unknown)


def test_source_types_are_registered_for_the_settings(tmp_path):
    db = open_db(tmp_path / "weerbaar.db")
    settings = Settings(
        db_path=tmp_path / "weerbaar.db",
        sources={
            "zs": {"type": "zeeschuimer", "path": str(FIXTURES / "zeeschuimer_mixed.ndjson")},
            "cat": {"type": "4cat", "path": str(FIXTURES / "4cat_x.csv"), "platform": "x"},
        },
    )
    sources = build_sources(settings, db)
    assert [(s.name, s.export_format) for s in sources] == [("zs", "zeeschuimer"), ("cat", "4cat")]


def test_import_through_the_pipeline_stores_scores_and_quarantines_once(tmp_path):
    db = open_db(tmp_path / "weerbaar.db")
    officials = tmp_path / "officials.csv"
    officials.write_text(OFFICIALS_CSV)
    import_officials(db, officials)
    settings = Settings(db_path=tmp_path / "weerbaar.db")
    source = open_export(FIXTURES / "zeeschuimer_mixed.ndjson")
    first = run_source(db, source, KeywordClassifier(), settings)
    assert (first.status, first.new, first.unmatched, first.quarantined) == ("ok", 3, 1, 3)
    assert first.flagged == {"aggression": 1, "threat": 1}
    again = run_source(db, open_export(FIXTURES / "zeeschuimer_mixed.ndjson"), KeywordClassifier(), settings)
    assert (again.fetched, again.new, again.quarantined) == (0, 0, 0)
    assert db["mentions"].count == 3
    assert db["scores"].count == 3
    assert db["quarantine"].count == 3


def test_cli_import_prints_a_summary(tmp_path):
    config = tmp_path / "weerbaar.toml"
    config.write_text(f'db_path = "{tmp_path / "weerbaar.db"}"\n[classifier]\nmodel = "keyword-fake"\n')
    officials = tmp_path / "officials.csv"
    officials.write_text(OFFICIALS_CSV)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "officials", "import", str(officials)]).exit_code == 0
    result = runner.invoke(cli, ["--config", str(config), "import", str(FIXTURES / "4cat_x.csv")])
    assert result.exit_code == 0, result.output
    assert "(4cat): ok; read 4 record(s): new 2, duplicates 0, quarantined 2" in result.output
    assert "flagged: threat 1" in result.output
    bad = tmp_path / "mystery.ndjson"
    bad.write_text('{"foo": 1}\n')
    result = runner.invoke(cli, ["--config", str(config), "import", str(bad)])
    assert result.exit_code == 2
    assert "mystery.ndjson" in result.output
