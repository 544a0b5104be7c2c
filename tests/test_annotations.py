"""Annotation round trip: a batch out, Label Studio's export and the CSV back in, agreement on known figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.agreement import cohen_kappa, krippendorff_alpha
from monitor.annotations import agreement_report
from monitor.cli import cli
from monitor.training.datasets import read_annotations
from monitor.db import open_db

KEY = "an annotation round key"
REPO = Path(__file__).resolve().parent.parent


def test_krippendorff_alpha_reproduces_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders x 12 units example with
    # missing values: nominal alpha = 0.743.
    n = None
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
              [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    assert round(krippendorff_alpha(list(zip(*coders))), 3) == 0.743
    assert krippendorff_alpha([[1, 1], [1, 1]]) is None  # no variation: undefined


def test_cohen_kappa_reproduces_the_two_by_two_example():
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> po 0.7, pe 0.5, kappa 0.4.
    a = [1] * 25 + [0] * 25
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([1, 1], [1, 1]) is None


@pytest.fixture
def batch(workdir, monkeypatch):
    monkeypatch.setenv("WEERBAAR_PSEUDONYM_KEY", KEY)
    runner = CliRunner()
    assert runner.invoke(cli, ["officials", "import", "config/samples/officials.csv"]).exit_code == 0
    assert runner.invoke(cli, ["run", "--once"]).exit_code == 0
    result = runner.invoke(cli, ["annotations", "export", "--sample", "50", "round-1"])
    assert result.exit_code == 0, result.output
    tasks = json.loads((workdir / "round-1" / "tasks.json").read_text())
    assert len(tasks) == 50 and all(t["data"]["item"].startswith("m-") for t in tasks)
    assert "<Choices name=\"categories\"" in (workdir / "round-1" / "label_config.xml").read_text()
    return tasks


def _label_studio_export(tasks, first, second):
    """Label Studio's JSON export of TASKS annotated by two users with the aggression labels FIRST and SECOND."""
    exported = []
    for number, (task, a, b) in enumerate(zip(tasks, first, second), start=1):
        annotations = []
        for user, value in ((1, a), ({"id": 2, "email": "b@uni.example"}, b)):
            annotations.append({"id": number * 10 + len(annotations), "completed_by": user, "was_cancelled": False,
                                "created_at": "2026-12-01T10:00:00Z", "result": [
                                    {"from_name": "categories", "to_name": "text", "type": "choices",
                                     "value": {"choices": ["aggression"] if value else []}},
                                    {"from_name": "target", "to_name": "text", "type": "choices",
                                     "value": {"choices": ["official"]}}]})
        annotations.append({"id": 999, "completed_by": 3, "was_cancelled": True, "result": []})
        exported.append({"id": number, "data": task["data"], "annotations": annotations})
    return exported


def test_round_trip_reproduces_known_agreement(batch, workdir):
    first = [1] * 25 + [0] * 25
    second = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    (workdir / "export.json").write_text(json.dumps(_label_studio_export(batch, first, second)))
    runner = CliRunner()
    result = runner.invoke(cli, ["annotations", "import", "export.json"])
    assert result.exit_code == 0, result.output
    assert "Imported 100 label(s) from 2 annotator(s); 0 replaced" in result.output
    db = open_db(workdir / "var" / "weerbaar.db")
    report = agreement_report(db)
    aggression = next(c for c in report["categories"] if c.category == "aggression")
    assert aggression.pairs[0]["kappa"] == pytest.approx(0.4) and aggression.pairs[0]["items"] == 50
    assert aggression.alpha == pytest.approx(0.4, abs=1e-9) and aggression.alpha_items == 50
    assert len(report["disagreements"]) == 15
    assert all(row["items"] == 50 for row in aggression.against_model)
    # Staff reviewed items 20 to 29 as the first annotator did (5 yes, 5 no), the opposite of the second.
    items = dict(db.execute("SELECT item_id, mention_id FROM annotation_items").fetchall())
    for number, task in enumerate(batch[20:30], start=20):
        db["reviews"].insert({"mention_id": items[task["data"]["item"]], "reviewer": "staf",
                              "labels": json.dumps(["aggression"] if first[number] else []),
                              "reviewed_at": "2026-12-01T12:00:00Z"})
    db.conn.commit()
    staff = {row["annotator"]: row for row in next(
        c for c in agreement_report(db)["categories"] if c.category == "aggression").against_staff}
    assert staff["label-studio:1"]["kappa"] == pytest.approx(1.0) and staff["label-studio:1"]["items"] == 10
    assert staff["label-studio:b@uni.example"]["kappa"] == pytest.approx(-1.0)
    # The same export again replaces, adds nothing; the CLI prints the figures.
    result = runner.invoke(cli, ["annotations", "import", "export.json"])
    assert "100 replaced" in result.output and db["annotations"].count == 100
    printed = runner.invoke(cli, ["annotations", "agreement"]).output
    assert "aggression: Krippendorff's alpha 0.400" in printed and "15 item(s) with disagreement" in printed
    # Training reads the majority of annotators; a tie (15 items) is left undecided for that category.
    records = read_annotations(workdir / "var" / "weerbaar.db")
    assert len(records) == 50 and sum(r.labels["aggression"] is None for r in records) == 15
    assert sum(r.labels["aggression"] == 1 for r in records) == 20 and records[0].source == "annotations"
    # scripts/train_classifier.py --annotations DB takes them in as it takes --reviews.
    from monitor.training.commands import train_classifier

    database = str(workdir / "var" / "weerbaar.db")
    arguments = train_classifier.parse_arguments(["--imsypp", "unused.csv", "--annotations", database])
    assert [r.text for r in train_classifier.extra_data(arguments)] == [r.text for r in records]
    # An export carries them as pseudonymous annotator labels, apart from the model scores.
    assert runner.invoke(cli, ["export", "out", "--reviewed-only"]).exit_code == 0
    rows = [json.loads(line) for line in (workdir / "out" / "mentions.jsonl").read_text().splitlines()]
    assert len(rows) == 50 and {label["source"] for r in rows for label in r["labels"]} == {"annotator", "staff"}
    assert sum(label["source"] == "staff" for r in rows for label in r["labels"]) == 10
    assert "b@uni.example" not in (workdir / "out" / "mentions.jsonl").read_text()
    assert "Krippendorff's alpha" in (workdir / "out" / "DATASHEET.md").read_text()


def test_csv_round_trip_and_bad_files_store_nothing(batch, workdir):
    path = workdir / "round-1" / "tasks.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[:3]:
        row.update(aggression="1", threat="1", insult="0", identity_attack="0", target="official", annotator="ann")
    rows[3].update(aggression="1", threat="0", insult="0", identity_attack="0", annotator="ann")
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runner = CliRunner()
    result = runner.invoke(cli, ["annotations", "import", str(path)])
    assert result.exit_code == 0 and "Imported 4 label(s) from 1 annotator(s)" in result.output
    bad = workdir / "bad.csv"
    bad.write_text("item,text,aggression,threat,insult,identity_attack,target,annotator\n"
                   f"{rows[0]['item']},x,1,0,0,0,official,other\n"
                   f"{rows[1]['item']},x,0,1,0,0,official,other\n"
                   "m-unknown,x,1,0,0,0,,other\n"
                   f"{rows[2]['item']},x,yes,0,0,0,,other\n")
    result = runner.invoke(cli, ["annotations", "import", str(bad)])
    assert result.exit_code == 2
    assert "bad.csv:3: field 'categories': threat without aggression" in result.output
    assert "bad.csv:4: field 'item': 'm-unknown' was not handed out" in result.output
    assert "bad.csv:5: field 'aggression': expected 0 or 1, got 'yes'" in result.output
    db = open_db(workdir / "var" / "weerbaar.db")
    assert db["annotations"].count == 4  # nothing of the bad file


def test_withdrawal_erases_annotations_with_their_mentions(batch, workdir):
    (workdir / "export.json").write_text(json.dumps(_label_studio_export(batch, [1] * 50, [0] * 50)))
    assert CliRunner().invoke(cli, ["annotations", "import", "export.json"]).exit_code == 0
    db = open_db(workdir / "var" / "weerbaar.db")
    before = db["annotations"].count
    for (official,) in db.execute("SELECT id FROM officials").fetchall():
        assert CliRunner().invoke(cli, ["officials", "withdraw", str(official), "--yes"]).exit_code == 0
    assert before == 100 and db["annotations"].count == 0 and db["annotation_items"].count == 0
