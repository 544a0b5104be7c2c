"""The Monitor-style report: the share of monitored officials who received aggression and threats, naming no one.

In the style of the national Integrity and Safety Monitor: shares of officials, by body type, role, platform and
category, a monthly trend, and the collection coverage behind them. Only counts of officials appear, never names,
handles or texts. Small cells are suppressed:

- primary: a count of fewer than 5 officials is shown as "<5";
- complement: a count whose complement (the officials in its row who did NOT receive it) is under 5 is hidden ("x"),
  since "all 7 dijkgraven received a threat" tells it of each of them;
- secondary: where rows add up to a total (body types to all officials, roles to their body type), a relation may
  not hold exactly one hidden cell, or the total would give it away; the smallest other cell is hidden too ("x");
- audit: a reader who knows every shown cell, that "<5" is 0 to 4 and every relation can narrow a hidden cell by
  combining relations (nested totals); bounds() does exactly that, and a hidden cell it pins to one value gets
  another cell hidden beside it, until none is pinned;
- a share is shown only when both its counts are.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from .coverage import SourceCoverage, collection_coverage
from .categories import CATEGORIES
from .db import counting_score_id, utcnow
from .exports import day_range_utc
from .rendering import render

MIN_OFFICIALS = 5
PRIMARY, SECONDARY = "<5", "x"
MEASURES = ("monitored", "aggression", "threat")
MONITOR_SURVEY = (
    "The national Integrity and Safety Monitor asks officials in a survey: 35% (2020), 49% (2022) and 45% (2024) of "
    "local and regional politicians reported aggression or violence. This report counts something else: public "
    "online posts aimed at officials who opted in, as labelled by a model, on the sources that were collected. It "
    "misses what is said offline, in private messages and on unwatched platforms, and what the model misses; it "
    "includes what the model labels wrongly. Do not compare its shares with the survey's."
)


@dataclass
class Cells:
    """Counts of officials by key, and the suppression of each ('<5' primary, 'x' secondary)."""

    counts: dict[tuple, int] = field(default_factory=dict)
    suppressed: dict[tuple, str] = field(default_factory=dict)
    relations: list[tuple[tuple, list[tuple]]] = field(default_factory=list)

    def show(self, key: tuple) -> str:
        """Return the cell as shown: its count, or its suppression mark."""
        return self.suppressed.get(key) or str(self.counts.get(key, 0))

    def share(self, key: tuple, of: tuple) -> str:
        """Return KEY's count as a percentage of OF's, unless either is suppressed."""
        if key in self.suppressed or of in self.suppressed:
            return self.suppressed.get(key) or self.suppressed[of]
        total = self.counts.get(of, 0)
        return f"{100 * self.counts.get(key, 0) / total:.0f}%" if total else "-"

    def value_share(self, key: tuple, of: tuple) -> float | None:
        """Return KEY's share of OF as a fraction, or None when it is suppressed or has no base."""
        if key in self.suppressed or of in self.suppressed or not self.counts.get(of):
            return None
        return self.counts.get(key, 0) / self.counts[of]


def suppress(cells: Cells, complements: dict[tuple, tuple]) -> None:
    """Mark primary suppressions (under 5, or a complement under 5), then secondary ones until no total reveals one.

    COMPLEMENTS maps a count to the count of its row's officials (the monitored ones) it is part of. A count under 5
    shows as "<5"; one hidden for its complement, or to protect another, as "x".
    """
    for key, value in cells.counts.items():
        base = complements.get(key)
        if value < MIN_OFFICIALS:
            cells.suppressed[key] = PRIMARY
        elif base is not None and cells.counts.get(base, 0) - value < MIN_OFFICIALS:
            cells.suppressed[key] = SECONDARY
    while True:
        changed = False
        for total, members in cells.relations:
            keys = [total, *members]
            if sum(k in cells.suppressed for k in keys) == 1:
                changed |= _hide_one_more(cells, keys, total)
        exposed = [k for k, (low, high) in bounds(cells).items() if low == high]
        for key in exposed:
            touching = [(total, [total, *members]) for total, members in cells.relations if key in (total, *members)]
            if not any(_hide_one_more(cells, keys, total) for total, keys in touching):
                raise RuntimeError(f"suppression cannot protect {key}")  # every cell around it is hidden already
            changed = True
            break  # recompute the bounds with the new hidden cell
        if not changed:
            return


def _hide_one_more(cells: Cells, keys: list[tuple], total: tuple) -> bool:
    """Hide the smallest shown cell of KEYS (a member before the total); return whether one was left to hide."""
    shown = [k for k in keys if k not in cells.suppressed]
    if not shown:
        return False
    cells.suppressed[min(shown, key=lambda k: (cells.counts.get(k, 0), k == total, str(k)))] = SECONDARY
    return True


def bounds(cells: Cells) -> dict[tuple, tuple[float, float]]:
    """Return what a reader can work out of each hidden cell: its lowest and highest possible value.

    A reader knows every shown cell, that "<5" is 0 to 4, and that rows add up to their totals; bounds are narrowed
    through every relation until nothing changes. A hidden cell whose lowest and highest value meet is disclosed.
    """
    infinite = float("inf")
    known = {k: (v, v) for k, v in cells.counts.items() if k not in cells.suppressed}
    for key, mark in cells.suppressed.items():
        known[key] = (0, MIN_OFFICIALS - 1) if mark == PRIMARY else (0, infinite)
    for _ in range(100):
        changed = False
        for total, members in cells.relations:
            for key in (total, *members):
                if key not in cells.suppressed:
                    continue
                others = [m for m in members if m != key]
                if key == total:
                    low = sum(known[m][0] for m in members)
                    high = sum(known[m][1] for m in members)
                else:
                    low = known[total][0] - sum(known[m][1] for m in others)
                    high = known[total][1] - sum(known[m][0] for m in others)
                new = (max(known[key][0], low), min(known[key][1], high))
                if new != known[key]:
                    known[key], changed = new, True
        if not changed:
            break
    return {k: known[k] for k in cells.suppressed}


@dataclass
class Report:
    """Everything the report shows: tables of shown cells, charts and coverage."""

    first: dt.date
    last: dt.date
    generated_at: str
    tables: list[dict]
    coverage: list[SourceCoverage]
    charts: dict[str, str] = field(default_factory=dict)
    survey_note: str = MONITOR_SURVEY
    min_officials: int = MIN_OFFICIALS


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


def build_report(db: sqlite_utils.Database, settings, first: dt.date, last: dt.date,
                 model: tuple[str, str] | None = None) -> Report:
    """Count, per group, the monitored officials who received at least one aggressive mention and one threat."""
    start, end = day_range_utc(first, last, settings.timezone)
    months = _months(first, last)
    bounds = [day_range_utc(max(first, m), None, settings.timezone)[0] for m in months[1:]]
    month_case = "CASE " + " ".join(f"WHEN m.created_at < '{b}' THEN {i}" for i, b in enumerate(bounds)) + \
        f" ELSE {len(months) - 1} END" if bounds else "0"
    officials: dict[int, dict] = {}
    for official_id, role, body_type, given_on, scope in db.execute(
        """SELECT o.id, o.role, o.body_type, c.given_on, c.scope FROM officials o
           JOIN consents c ON c.id = (SELECT max(id) FROM consents WHERE official_id = o.id)
           WHERE o.status = 'active' AND c.withdrawn_at IS NULL AND c.given_on <= ?""", [last.isoformat()]
    ):
        officials[official_id] = {"role": role, "body_type": body_type, "given_on": given_on,
                                  "scope": set(scope.split(",")), "platforms": set()}
    for official_id, platform in db.execute("SELECT official_id, platform FROM accounts"):
        if official_id in officials and platform in officials[official_id]["scope"]:
            officials[official_id]["platforms"].add(platform)
    received: dict[int, dict] = defaultdict(lambda: {"categories": set(), "platforms": defaultdict(set),
                                                     "months": defaultdict(set)})
    flags = ", ".join(f"max(instr(s.labels, '\"{c}\"') > 0)" for c in CATEGORIES)
    for official_id, platform, month, *has in db.execute(
        f"""SELECT t.official_id, m.platform, {month_case}, {flags}
            FROM mention_targets t JOIN mentions m ON m.id = t.mention_id
            JOIN scores s ON s.id = {counting_score_id()}
            WHERE m.created_at >= :start AND m.created_at < :end
            GROUP BY t.official_id, m.platform, 3""",
        {"start": start, "end": end, "model": model and model[0], "model_version": model and model[1]},
    ):
        if official_id not in officials:
            continue
        got = {c for c, flag in zip(CATEGORIES, has) if flag}
        entry = received[official_id]
        entry["categories"] |= got
        entry["platforms"][platform] |= got
        entry["months"][month] |= got
    cells, complements = Cells(), {}

    def count(key: tuple, members: list[int], test) -> None:
        cells.counts[key] = sum(1 for o in members if test(o))

    def groups(prefix: tuple, members: list[int], platform: str | None = None, month: int | None = None) -> None:
        count((*prefix, "monitored"), members, lambda o: True)
        for measure in ("aggression", "threat"):
            def got(o, measure=measure):
                entry = received.get(o)
                if entry is None:
                    return False
                if platform is not None:
                    return measure in entry["platforms"].get(platform, ())
                if month is not None:
                    return measure in entry["months"].get(month, ())
                return measure in entry["categories"]
            count((*prefix, measure), members, got)
            complements[(*prefix, measure)] = (*prefix, "monitored")

    everyone = sorted(officials)
    groups(("all",), everyone)
    body_types = sorted({o["body_type"] for o in officials.values()})
    for body_type in body_types:
        members = [o for o in everyone if officials[o]["body_type"] == body_type]
        groups(("body_type", body_type), members)
        roles = sorted({officials[o]["role"] for o in members})
        for role in roles:
            groups(("role", body_type, role), [o for o in members if officials[o]["role"] == role])
        for measure in MEASURES:
            cells.relations.append((("body_type", body_type, measure),
                                    [("role", body_type, role, measure) for role in roles]))
    for measure in MEASURES:
        cells.relations.append((("all", measure), [("body_type", b, measure) for b in body_types]))
    platforms = sorted({p for o in officials.values() for p in o["platforms"]})
    for platform in platforms:
        groups(("platform", platform), [o for o in everyone if platform in officials[o]["platforms"]], platform)
    for category in CATEGORIES:
        if category not in MEASURES:  # aggression and threat are the overall row's cells, shown the same way
            cells.counts[("category", category)] = sum(category in received[o]["categories"] for o in everyone
                                                      if o in received)
            complements[("category", category)] = ("all", "monitored")
    for index, month in enumerate(months):
        month_end = min(last, (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1))
        members = [o for o in everyone if officials[o]["given_on"] <= month_end.isoformat()]
        groups(("month", month.strftime("%Y-%m")), members, month=index)
    # Rows that count the very same officials as the overall row must hide what it hides: one platform watched
    # for everyone, or a period of one month.
    same = [("platform", p) for p in platforms if cells.counts[("platform", p, "monitored")] == len(everyone)
            and len(platforms) == 1]
    same += [("month", m.strftime("%Y-%m")) for m in months if len(months) == 1]
    for prefix in same:
        for measure in MEASURES:
            cells.relations.append((("all", measure), [(*prefix, measure)]))
    suppress(cells, complements)

    def rows_for(keys: list[tuple[str, tuple]]) -> list[list[str]]:
        return [[label, cells.show((*k, "monitored")), cells.show((*k, "aggression")),
                 cells.share((*k, "aggression"), (*k, "monitored")), cells.show((*k, "threat")),
                 cells.share((*k, "threat"), (*k, "monitored"))] for label, k in keys]

    header = ["group", "monitored officials", "with aggression", "share", "with a threat", "share"]
    tables = [
        {"name": "overall", "title": "All monitored officials", "header": header,
         "rows": rows_for([("all officials", ("all",))])},
        {"name": "by_body_type", "title": "By body type", "header": header,
         "rows": rows_for([(b, ("body_type", b)) for b in body_types])},
        {"name": "by_role", "title": "By role, within body type", "header": header,
         "rows": rows_for([(f"{b}: {r}", ("role", b, r)) for b in body_types
                           for r in sorted({officials[o]["role"] for o in everyone
                                            if officials[o]["body_type"] == b})])},
        {"name": "by_platform", "title": "By platform (officials monitored there; aggression received there)",
         "header": header, "rows": rows_for([(p, ("platform", p)) for p in platforms])},
        {"name": "by_category", "title": "By category", "header": ["category", "officials with at least one",
                                                                   "share of all monitored"],
         "rows": [[c, cells.show(_category_key(c)), cells.share(_category_key(c), ("all", "monitored"))]
                  for c in CATEGORIES]},
        {"name": "monthly", "title": "Monthly trend", "header": ["month", *header[1:]],
         "rows": rows_for([(m.strftime("%Y-%m"), ("month", m.strftime("%Y-%m"))) for m in months])},
    ]
    coverage = collection_coverage(db, settings, first, last, start, end)
    tables.append({"name": "coverage", "title": "Collection coverage per source", "header": [
        "source", "runs", "failed runs", "posts fetched", "posts new", "days with a successful run", "days without"],
        "rows": [[c.source, str(c.runs), str(c.failed_runs), str(c.posts_fetched), str(c.posts_new),
                  f"{c.days_with_ok_run} of {c.days_in_period}", str(c.gap_days)] for c in coverage]})
    report = Report(first, last, utcnow(), tables, coverage)
    report.charts = charts(cells, body_types, platforms, months)
    return report


def _category_key(category: str) -> tuple:
    return ("all", category) if category in MEASURES else ("category", category)


def charts(cells: Cells, body_types: list[str], platforms: list[str], months: list[dt.date]) -> dict[str, str]:
    """Return PNG charts as base64 (suppressed shares are left out and marked), or none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    found = {}

    def bars(name: str, title: str, groups: list[tuple[str, tuple]]) -> None:
        figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
        width = 0.38
        for offset, measure in ((-width / 2, "aggression"), (width / 2, "threat")):
            values = [cells.value_share((*k, measure), (*k, "monitored")) for _, k in groups]
            positions = [i + offset for i in range(len(groups))]
            axes.bar(positions, [100 * v if v is not None else 0 for v in values], width,
                     label="with aggression" if measure == "aggression" else "with a threat")
            for x, v in zip(positions, values):
                if v is None:
                    axes.text(x, 1, "supp.", ha="center", fontsize=7, rotation=90)
        axes.set_xticks(range(len(groups)), [label for label, _ in groups], fontsize=8)
        axes.set_ylabel("% of monitored officials")
        axes.set_ylim(0, 100)
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8)
        found[name] = _png(figure)
        plt.close(figure)

    bars("by_body_type", "Share of monitored officials, by body type", [(b, ("body_type", b)) for b in body_types])
    bars("by_platform", "Share of monitored officials, by platform", [(p, ("platform", p)) for p in platforms])
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
    labels = [m.strftime("%Y-%m") for m in months]
    for measure, text in (("aggression", "with aggression"), ("threat", "with a threat")):
        values = [cells.value_share(("month", m, measure), ("month", m, "monitored")) for m in labels]
        axes.plot(labels, [100 * v if v is not None else float("nan") for v in values], marker="o", label=text)
    axes.set_ylabel("% of monitored officials")
    axes.set_ylim(0, 100)
    axes.set_title("Monthly trend (suppressed months left out)", fontsize=10)
    axes.legend(fontsize=8)
    found["monthly"] = _png(figure)
    plt.close(figure)
    return found


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_report(report: Report, output: str | Path, fmt: str = "html") -> list[Path]:
    """Write the report as HTML or PDF at OUTPUT and a CSV of every table beside it; return the paths written."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt == "pdf":
        output.write_bytes(_pdf(report))
    else:
        output.write_text(render("report.html", report=report), encoding="utf-8")
    written.append(output)
    for table in report.tables:
        path = output.with_name(f"{output.stem}-{table['name']}.csv")
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(table["header"])
            writer.writerows(table["rows"])
        written.append(path)
    return written


def _line(pdf, height: float, text: str) -> None:
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def _pdf(report: Report) -> bytes:
    """Return the report as PDF (fpdf2; the built-in fonts hold Latin-1, which every label here is)."""
    try:
        from fpdf import FPDF
    except ImportError:
        raise RuntimeError("PDF output needs fpdf2: pip install 'weerbaar[research]'") from None
    pdf = FPDF(orientation="portrait", format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    _line(pdf, 8, f"Aggression against monitored officials, {report.first} to {report.last}")
    pdf.set_font("Helvetica", size=9)
    _line(pdf, 5, report.survey_note)
    pdf.ln(2)
    _line(pdf, 5, f"Cells of fewer than {report.min_officials} officials are shown as '<5'; 'x' marks a cell "
                  "hidden because fewer than 5 in its row lack it, or so that a total does not reveal a small "
                  "cell. Generated " + report.generated_at + ".")
    for table in report.tables:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11)
        _line(pdf, 6, table["title"])
        pdf.set_font("Helvetica", size=8)
        with pdf.table(text_align="LEFT", first_row_as_headings=True) as grid:
            for row in [table["header"], *table["rows"]]:
                line = grid.row()
                for value in row:
                    line.cell(str(value).encode("latin-1", "replace").decode("latin-1"))
        chart = report.charts.get(table["name"])
        if chart:
            pdf.image(io.BytesIO(base64.b64decode(chart)), w=170)
    return bytes(pdf.output())
