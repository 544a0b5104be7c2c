"""The daily digest: threats first, counts, silent sources, and hostile text that stays text."""

import datetime as dt
import json

from click.testing import CliRunner
from markupsafe import escape

from monitor.cli import cli
from monitor.digest_mail import digest_mail
from monitor.digests import build_digest, day_bounds, write_digest
from monitor.officials import import_officials
from monitor.pipeline import run_once
from monitor.rendering import render

HOSTILE = [
    "<script>alert('xss')</script> ik maak je af @AnnekeVisserZw",
    '<img src=x onerror="alert(1)"> idioot @AnnekeVisserZw',
    '"><svg onload=alert(1)> kut @AnnekeVisserZw {{ 7*7 }}',
]


def _write_mentions(workdir, texts, day="2026-11-28"):
    lines = [
        json.dumps({"platform": "x", "id": str(i), "text": t, "created_at": f"{day}T1{i % 10}:00:00Z",
                    "author": "@boos", "url": "javascript:alert(1)" if i == 0 else f"https://x.com/boos/status/{i}"})
        for i, t in enumerate(texts)
    ]
    (workdir / "config/samples/mentions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_hostile_mention_text_is_escaped_in_the_html_digest(db, settings, classifier, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    _write_mentions(workdir, HOSTILE)
    run_once(db, settings, classifier)
    html_path, text_path, digest = write_digest(db, settings, dt.date(2026, 11, 28))
    html = html_path.read_text(encoding="utf-8")
    assert digest.flagged == 3
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "<svg" not in html and "{{ 7*7 }}" in html
    assert "javascript:" not in html  # a non-http link is not made clickable
    assert html.count("<script") == 0
    text = text_path.read_text(encoding="utf-8")
    assert "<script>alert('xss')</script>" in text  # plain text keeps the words as written


def test_threats_come_first_and_counts_compare_with_the_day_before(db, settings, classifier, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    run_once(db, settings, classifier)
    digest = build_digest(db, settings, dt.date(2026, 11, 28))
    with_threats = [o for o in digest.officials if o.threats]
    assert with_threats, "the sample holds threats"
    assert digest.officials[0].threats  # officials with threats are listed first
    assert all(item.category == "threat" for o in digest.officials for item in o.threats)
    assert all(item.category != "threat" for o in digest.officials for item in o.flagged)
    start, end = day_bounds(dt.date(2026, 11, 28), settings.timezone)
    total = db.execute("SELECT count(*) FROM mentions WHERE created_at >= ? AND created_at < ?", [start, end]).fetchone()[0]
    assert sum(o.mentions for o in digest.officials) == total
    prev_start, prev_end = day_bounds(dt.date(2026, 11, 27), settings.timezone)
    total_before = db.execute(
        "SELECT count(*) FROM mentions WHERE created_at >= ? AND created_at < ?", [prev_start, prev_end]
    ).fetchone()[0]
    assert sum(o.mentions_before for o in digest.officials) == total_before > 0


def test_a_source_that_returned_nothing_gets_a_line(db, settings, classifier, workdir):
    import_officials(db, workdir / "config/samples/officials.csv")
    run_once(db, settings, classifier)
    digest = build_digest(db, settings, dt.date(2026, 12, 5))
    assert any(line.startswith("sample: geen berichten") for line in digest.silent_sources)
    # The digest file and the mailed digest show one block (templates/silent_sources.html), the mail's styled inline.
    items = "".join(f"<li>{escape(line)}</li>\n" for line in digest.silent_sources)
    assert f"<h2>Bronnen zonder berichten</h2>\n<ul>\n{items}</ul>\n" in render("digest.html", digest=digest)
    assert (f'<p style="font-weight: bold; margin-bottom: 2px;">Bronnen zonder berichten</p>\n'
            f'<ul style="margin-top: 0;">\n{items}</ul>\n') in digest_mail(settings, digest, images={}).html
    # An official's part, mailed to their own contacts, leaves the installation-wide source lines out.
    part = digest.only({digest.officials[0].official_id})
    assert part.silent_sources == [] and part.warnings == [] and len(part.officials) == 1
    assert "Bronnen zonder berichten" not in digest_mail(settings, part, images={}).html


def test_local_day_bounds_follow_daylight_saving():
    assert day_bounds(dt.date(2026, 7, 1), "Europe/Amsterdam") == ("2026-06-30T22:00:00Z", "2026-07-01T22:00:00Z")
    assert day_bounds(dt.date(2026, 12, 1), "Europe/Amsterdam") == ("2026-11-30T23:00:00Z", "2026-12-01T23:00:00Z")
    # The day clocks go back has 25 hours.
    assert day_bounds(dt.date(2026, 10, 25), "Europe/Amsterdam") == ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")


def test_digest_command_writes_both_files(db, workdir):
    runner = CliRunner()
    assert runner.invoke(cli, ["officials", "import", "config/samples/officials.csv"]).exit_code == 0
    assert runner.invoke(cli, ["run", "--once"]).exit_code == 0
    result = runner.invoke(cli, ["digest", "--date", "2026-11-28"])
    assert result.exit_code == 0, result.output
    assert (workdir / "var/digests/digest-2026-11-28.html").exists()
    assert (workdir / "var/digests/digest-2026-11-28.txt").exists()
    assert db["digests"].count == 1
