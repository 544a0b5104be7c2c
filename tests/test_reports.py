"""The Monitor-style report: shares of officials, small cells suppressed (primary, complement, secondary), no names."""

from __future__ import annotations

import csv
import datetime as dt
import json

from click.testing import CliRunner

from monitor.cli import cli
from monitor.reports import PRIMARY, SECONDARY, Cells, bounds, build_report, suppress


def test_primary_suppression_under_five_and_when_the_complement_is_under_five():
    cells = Cells(counts={("a", "monitored"): 20, ("a", "threat"): 4, ("b", "monitored"): 20, ("b", "threat"): 17,
                          ("c", "monitored"): 20, ("c", "threat"): 10})
    complements = {(g, "threat"): (g, "monitored") for g in "abc"}
    suppress(cells, complements)
    assert cells.show(("a", "threat")) == PRIMARY  # 4 officials
    assert cells.show(("b", "threat")) == SECONDARY  # 17 of 20: only 3 spared, so it tells of nearly all of them
    assert cells.show(("c", "threat")) == "10" and cells.share(("c", "threat"), ("c", "monitored")) == "50%"
    assert cells.share(("a", "threat"), ("a", "monitored")) == PRIMARY


def test_secondary_suppression_hides_a_second_cell_where_the_total_would_reveal_one():
    # Total 30 = 4 + 12 + 14: with the total shown, hiding only the 4 would leave it as 30 - 12 - 14.
    counts = {("all",): 30, ("gemeente",): 4, ("provincie",): 12, ("waterschap",): 14}
    cells = Cells(counts=dict(counts), relations=[(("all",), [("gemeente",), ("provincie",), ("waterschap",)])])
    suppress(cells, {})
    assert cells.show(("gemeente",)) == PRIMARY
    assert cells.show(("provincie",)) == SECONDARY  # the smallest other cell
    assert cells.show(("waterschap",)) == "14" and cells.show(("all",)) == "30"
    # Two small cells already protect each other: nothing more is hidden.
    cells = Cells(counts={("all",): 30, ("g",): 3, ("p",): 2, ("w",): 25},
                  relations=[(("all",), [("g",), ("p",), ("w",)])])
    suppress(cells, {})
    assert [cells.show(k) for k in (("g",), ("p",), ("w",), ("all",))] == [PRIMARY, PRIMARY, "25", "30"]


def test_secondary_suppression_cascades_through_nested_totals():
    # Roles add up to their body type, body types to all. Hiding "dijkgraaf" (3) needs a second role hidden; that
    # role's body-type total then stays consistent, and the top relation has no single hidden cell.
    relations = [(("all",), [("waterschap",), ("gemeente",)]),
                 (("waterschap",), [("dijkgraaf",), ("heemraad",)]),
                 (("gemeente",), [("raadslid",), ("wethouder",)])]
    cells = Cells(counts={("all",): 60, ("waterschap",): 20, ("gemeente",): 40, ("dijkgraaf",): 3,
                          ("heemraad",): 17, ("raadslid",): 30, ("wethouder",): 10}, relations=relations)
    suppress(cells, {})
    assert cells.show(("dijkgraaf",)) == PRIMARY and cells.show(("heemraad",)) == SECONDARY
    assert cells.show(("waterschap",)) == "20" and cells.show(("all",)) == "60"
    for total, members in relations:  # no relation is left with exactly one hidden cell
        assert sum(k in cells.suppressed for k in (total, *members)) != 1


def test_the_audit_catches_a_cell_that_two_relations_together_pin_down():
    # all = gemeente + waterschap and gemeente = raadslid + wethouder, with 0 threats for wethouders and waterschap.
    # Each relation alone keeps two cells hidden, but 6 = gemeente + w and gemeente = 6 + we give w = we = 0.
    relations = [(("all",), [("gemeente",), ("waterschap",)]), (("gemeente",), [("raadslid",), ("wethouder",)])]
    counts = {("all",): 6, ("gemeente",): 6, ("waterschap",): 0, ("raadslid",): 6, ("wethouder",): 0}
    cells = Cells(counts=dict(counts), relations=relations)
    cells.suppressed = {("waterschap",): PRIMARY, ("wethouder",): PRIMARY, ("gemeente",): SECONDARY}
    assert bounds(cells)[("wethouder",)] == (0, 0)  # disclosed, although no relation has a single hidden cell
    cells = Cells(counts=dict(counts), relations=relations)
    suppress(cells, {})
    assert all(low < high for low, high in bounds(cells).values())
    assert {k for k, mark in cells.suppressed.items() if mark == PRIMARY} == {("waterschap",), ("wethouder",)}
    for total, members in relations:
        assert sum(k in cells.suppressed for k in (total, *members)) != 1


def _official(db, i, role, body_type):
    official = db["officials"].insert({"name": f"Naam Persoon{i}", "role": role, "body_type": body_type,
                                       "body_name": f"Body {i}", "created_at": "2026-01-01"}).last_pk
    db["accounts"].insert({"official_id": official, "platform": "x", "handle": f"persoon{i}"})
    db["consents"].insert({"official_id": official, "given_on": "2026-01-01", "scope": "x", "recorded_by": "t",
                           "recorded_at": "2026-01-01"})
    return official


def _mention(db, i, official, labels, day="2026-11-10"):
    mention = db["mentions"].insert({"platform": "x", "post_id": str(i), "text": f"tekst {i} @persoon{official}",
                                     "author_handle": "@boos", "created_at": f"{day}T12:00:00Z",
                                     "collected_at": f"{day}T13:00:00Z", "source": "x", "raw_sha256": "0"}).last_pk
    db["mention_targets"].insert({"mention_id": mention, "official_id": official, "linked_at": day})
    db["scores"].insert({"mention_id": mention, "model": "m", "model_version": "1", "probabilities": "{}",
                         "labels": json.dumps(labels), "flagged": int(bool(labels)), "scored_at": day})


def test_report_renders_with_suppressed_cells_and_no_names(db, settings, workdir):
    # 30 raadsleden (12 received aggression, 6 a threat), 8 wethouders (3 aggression), 12 dijkgraven (none).
    number = 0
    for i in range(50):
        role, body = ("raadslid", "gemeente") if i < 30 else ("wethouder", "gemeente") if i < 38 else (
            "dijkgraaf", "waterschap")
        official = _official(db, i, role, body)
        if i < 6:
            labels = ["aggression", "threat"]
        elif i < 12 or 30 <= i < 33:
            labels = ["aggression", "insult"]
        else:
            labels = []
        number += 1
        _mention(db, number, official, labels)
    db.conn.commit()
    report = build_report(db, settings, dt.date(2026, 11, 1), dt.date(2026, 11, 30), ("m", "1"))
    tables = {t["name"]: t for t in report.tables}
    roles = {row[0]: row for row in tables["by_role"]["rows"]}
    # 3 wethouders with aggression are hidden; so is the raadsleden's 12 (the relation raadsleden + wethouders =
    # gemeente would give the 3 back); the share follows its count.
    assert roles["gemeente: wethouder"][2] == PRIMARY and roles["gemeente: wethouder"][4] == PRIMARY  # 3, and 0
    assert roles["gemeente: raadslid"][1:] == ["30", SECONDARY, SECONDARY, SECONDARY, SECONDARY]  # threats: alike
    # Waterschap's 0 hides one more cell of the relation gemeente + waterschap = all.
    bodies = {row[0]: row for row in tables["by_body_type"]["rows"]}
    overall = tables["overall"]["rows"][0]
    assert bodies["waterschap"][2] == PRIMARY and bodies["gemeente"][2] == SECONDARY and overall[2] == "15"
    assert overall[4] == "6" and bodies["gemeente"][4] == SECONDARY  # a member is hidden before a total
    # One platform and one month count the same officials as the overall row, and show what it shows.
    assert tables["by_platform"]["rows"][0][1:] == overall[1:] == tables["monthly"]["rows"][0][1:]
    categories = {row[0]: row for row in tables["by_category"]["rows"]}
    assert categories["aggression"][1] == overall[2] and categories["threat"][1] == overall[4]
    assert categories["insult"][1] == "9" and categories["identity_attack"][1] == PRIMARY
    result = CliRunner().invoke(cli, ["report", "--from", "2026-11-01", "--to", "2026-11-30", "-o", "out/r.html"])
    assert result.exit_code == 0, result.output
    html = (workdir / "out" / "r.html").read_text()
    assert "<5" not in html and "&lt;5" in html and "data:image/png;base64," in html
    assert "45% (2024)" in html and "Persoon" not in html and "persoon" not in html and "tekst" not in html
    with (workdir / "out" / "r-by_role.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "group" and any(PRIMARY in row for row in rows)
    pdf = CliRunner().invoke(cli, ["report", "--from", "2026-11-01", "--to", "2026-11-30", "-o", "out/r.pdf",
                                   "--format", "pdf"])
    assert pdf.exit_code == 0 and (workdir / "out" / "r.pdf").read_bytes().startswith(b"%PDF")
