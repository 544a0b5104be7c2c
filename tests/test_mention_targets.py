"""A post is stored once and reaches every consenting official it addresses; erasure works per official."""

import datetime as dt
import json

from click.testing import CliRunner

from monitor.cli import cli
from monitor.digests import build_digest
from monitor.officials import import_officials, withdraw_official
from monitor.pipeline import run_once

HEADER = ("name,role,body_type,body_name,x_handle,mastodon_handle,bluesky_handle,email,consent_date,consent_scope,"
          "consent_recorded_by\n")
OFFICIALS = HEADER + (
    "Wim Dekker,wethouder,gemeente,Gemeente Ede,@WethouderDekker,,,,2026-10-01,x,griffie\n"
    "Sara El Amrani,raadslid,gemeente,Gemeente Ede,@RaadslidSara,,,,2026-10-01,x,griffie\n"
)


def _post(post_id, text, target=None, minute=0):
    record = {"platform": "x", "id": post_id, "text": text, "created_at": f"2026-11-27T10:{minute:02d}:00Z",
              "author": "@boze_burger", "url": f"https://x.com/boze_burger/status/{post_id}"}
    if target:
        record["target"] = target
    return json.dumps(record) + "\n"


def _setup(db, workdir, lines):
    (workdir / "officials.csv").write_text(OFFICIALS, encoding="utf-8")
    import_officials(db, workdir / "officials.csv")
    (workdir / "config/samples/mentions.jsonl").write_text("".join(lines), encoding="utf-8")
    ids = dict(db.execute("SELECT name, id FROM officials").fetchall())
    return ids["Wim Dekker"], ids["Sara El Amrani"]


def _digest_items(db, settings, official_id):
    digest = build_digest(db, settings, dt.date(2026, 11, 27))
    [entry] = [o for o in digest.officials if o.official_id == official_id]
    return [item.mention_id for item in entry.threats + entry.flagged], entry.mentions


def test_a_post_naming_two_officials_is_stored_once_and_appears_in_both_digests(db, settings, classifier, workdir):
    dekker, sara = _setup(db, workdir, [_post("1", "@WethouderDekker @RaadslidSara jullie zijn idioot")])
    [run] = run_once(db, settings, classifier)
    assert run.new == 1 and db["mentions"].count == 1 and db["scores"].count == 1
    mention_id = db.execute("SELECT id FROM mentions").fetchone()[0]
    assert sorted(db.execute("SELECT official_id, handle FROM mention_targets").fetchall()) == sorted(
        [(dekker, "wethouderdekker"), (sara, "raadslidsara")])
    assert _digest_items(db, settings, dekker) == ([mention_id], 1)
    assert _digest_items(db, settings, sara) == ([mention_id], 1)


def test_the_same_post_found_through_a_second_officials_search_is_linked_not_dropped(db, settings, classifier,
                                                                                       workdir):
    # The first search (Dekker's) found the reply; Sara's search finds it again later, as her target.
    dekker, sara = _setup(db, workdir, [_post("1", "wat een idioot, die wethouder", target="@WethouderDekker")])
    run_once(db, settings, classifier)
    with open(workdir / "config/samples/mentions.jsonl", "a", encoding="utf-8") as out:
        out.write(_post("1", "wat een idioot, die wethouder", target="@RaadslidSara"))
    [again] = run_once(db, settings, classifier)
    assert again.new == 0 and again.duplicates == 1 and again.linked == 1
    assert db["mentions"].count == 1 and db["scores"].count == 1
    assert sorted(r[0] for r in db.execute("SELECT official_id FROM mention_targets")) == sorted([dekker, sara])


def test_withdrawing_one_official_keeps_a_shared_post_for_the_other(db, settings, classifier, workdir):
    dekker, sara = _setup(db, workdir, [
        _post("1", "@WethouderDekker @RaadslidSara jullie zijn idioot, Wim Dekker voorop", minute=1),
        _post("2", "@WethouderDekker kut beleid, idioot", minute=2),
    ])
    run_once(db, settings, classifier)
    shared = db.execute("SELECT id FROM mentions WHERE post_id = '1'").fetchone()[0]
    db["reviews"].insert({"mention_id": shared, "reviewer": "staf", "labels": '["insult"]',
                          "reviewed_at": "2026-11-28T10:00:00Z"})

    result = CliRunner().invoke(cli, ["officials", "withdraw", str(dekker), "--yes"])

    assert result.exit_code == 0, result.output
    assert [r[0] for r in db.execute("SELECT post_id FROM mentions")] == ["1"]
    assert db.execute("SELECT official_id FROM mention_targets").fetchall() == [(sara,)]
    assert db["reviews"].count == 1 and db["scores"].count == 1  # the shared post's review and score stay
    assert _digest_items(db, settings, sara) == ([shared], 1)
    audit = json.loads(db.execute("SELECT detail FROM audit_log WHERE action = 'official.withdrawn'").fetchone()[0])
    assert audit["mentions"] == 1 and audit["mentions_kept_for_others"] == 1
    # The withdrawn official's handle and name are gone from the links and from the text kept for Sara.
    assert "wethouderdekker" not in "\n".join(str(r) for r in db.execute("SELECT * FROM mention_targets"))
    assert db.execute("SELECT text FROM mentions").fetchone()[0] == (
        "[erased] @RaadslidSara jullie zijn idioot, [erased] voorop")
    assert audit["kept_mentions_redacted"] == 1
    dump = "\n".join(db.iterdump()).lower()
    assert "wethouderdekker" not in dump and "wim dekker" not in dump

    withdraw_official(db, sara)
    assert db["mentions"].count == 0 and db["reviews"].count == 0 and db["mention_targets"].count == 0


def test_a_withdrawal_during_scoring_wins_over_the_batch_in_flight(db, settings, workdir):
    dekker, sara = _setup(db, workdir, [
        _post("1", "@WethouderDekker @RaadslidSara jullie zijn idioot", minute=1),
        _post("2", "@RaadslidSara idioot", minute=2),
    ])

    class WithdrawingClassifier:
        """Scores like a model would, while staff withdraw Sara's consent on another connection."""

        name, version, categories = "withdraw-while-scoring", "1", ("aggression", "threat")

        def score(self, texts):
            from monitor.db import open_db

            other = open_db(settings.db_path)
            withdraw_official(other, sara, actor="test")
            other.close()
            return [{"aggression": 0.9, "threat": 0.0} for _ in texts]

    [run] = run_once(db, settings, WithdrawingClassifier())

    assert run.status == "ok", run.error
    assert [r[0] for r in db.execute("SELECT post_id FROM mentions")] == ["1"]
    assert db.execute("SELECT official_id FROM mention_targets").fetchall() == [(dekker,)]
    assert run.unmatched == 1
