"""Annotation rounds: hand out a batch (Label Studio's import format and CSV), read the labels back, measure agreement.

Items carry the export's pseudonymous mention ids and masked texts, so a batch may go to annotators outside the
team. The ids handed out are recorded in annotation_items, and labels come back by those ids only. Labels are stored
per annotator in `annotations`, apart from staff reviews and model scores; a second import of the same annotator's
label on an item replaces the first (Label Studio exports every annotation again each time).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import sqlite_utils

from .agreement import cohen_kappa, krippendorff_alpha
from .categories import CATEGORIES
from .db import counting_score_id, utcnow, write_transaction
from .exports import DEFAULT_THRESHOLD, ExportFilters, Sampling, mention_rows, select_mentions
from .pseudonyms import Pseudonymiser

TARGETS = ("official", "person", "group", "none")
CSV_COLUMNS = ("item", "text", *CATEGORIES, "target", "annotator")
TASKS_FILE, CSV_FILE, CONFIG_FILE = "tasks.json", "tasks.csv", "label_config.xml"
# The labelling interface for Label Studio (Settings -> Labeling Interface -> Code): four yes/no categories as one
# multiple choice, and one target, as models/GUIDELINES.md defines them.
LABEL_CONFIG = """<View>
  <Header value="Read models/GUIDELINES.md first. Tick every category that applies; none ticked means none."/>
  <Text name="text" value="$text"/>
  <Choices name="categories" toName="text" choice="multiple" showInline="true">
    <Choice value="aggression"/>
    <Choice value="threat"/>
    <Choice value="insult"/>
    <Choice value="identity_attack"/>
  </Choices>
  <Header value="Who is it aimed at (or, without aggression, about)?"/>
  <Choices name="target" toName="text" choice="single" showInline="true" required="true">
    <Choice value="official"/>
    <Choice value="person"/>
    <Choice value="group"/>
    <Choice value="none"/>
  </Choices>
</View>
"""


class AnnotationError(ValueError):
    """A file of annotations that cannot be imported; ERRORS names file, line or task, and field."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def export_batch(db: sqlite_utils.Database, out_dir: str | Path, settings, key: bytes, size: int,
                 method: str = "uncertain", seed: int = 0, filters: ExportFilters = ExportFilters(),
                 model: tuple[str, str] | None = None) -> dict:
    """Write a batch of SIZE mentions to annotate (tasks.json, tasks.csv, label_config.xml); record its item ids."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise AnnotationError([f"{out}: folder is not empty; a batch goes into a new or empty folder"])
    thresholds = {c: settings.classifier.thresholds.get(c, DEFAULT_THRESHOLD) for c in CATEGORIES}
    pseudonyms = Pseudonymiser(key)
    db.execute("BEGIN")
    try:
        ids = select_mentions(db, filters, Sampling(size, method, seed), settings.timezone, thresholds, model)
        rows = list(mention_rows(db, ids, pseudonyms, settings.timezone, model))
    finally:
        db.execute("ROLLBACK")
    item_ids = {pseudonyms.pseudonym("mention", i): i for i in ids}
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"data": {"item": row["mention"], "text": row["text"], "platform": row["platform"],
                       "posted_day": row["posted_day"]}} for row in rows]
    (out / TASKS_FILE).write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    with (out / CSV_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([row["mention"], row["text"], *([""] * (len(CSV_COLUMNS) - 2))])
    (out / CONFIG_FILE).write_text(LABEL_CONFIG, encoding="utf-8")
    batch, now = out.name, utcnow()
    with write_transaction(db):
        db.conn.executemany(
            "INSERT OR IGNORE INTO annotation_items (item_id, mention_id, batch, exported_at) VALUES (?, ?, ?, ?)",
            [(item, item_ids[item], batch, now) for item in (row["mention"] for row in rows)],
        )
    return {"items": len(rows), "directory": str(out)}


@dataclass
class ImportedLabel:
    """One annotator's labels on one item, as read from a file."""

    item: str
    annotator: str
    categories: list[str]
    target: str | None
    annotated_at: str
    where: str


def _check(label: ImportedLabel, errors: list[str]) -> None:
    unknown = [c for c in label.categories if c not in CATEGORIES]
    if unknown:
        errors.append(f"{label.where}: field 'categories': unknown category {unknown[0]!r} "
                      f"(expected: {', '.join(CATEGORIES)})")
    if label.target is not None and label.target not in TARGETS:
        errors.append(f"{label.where}: field 'target': unknown target {label.target!r} "
                      f"(expected: {', '.join(TARGETS)})")
    implied = [c for c in ("threat", "insult", "identity_attack") if c in label.categories]
    if implied and "aggression" not in label.categories:
        errors.append(f"{label.where}: field 'categories': {implied[0]} without aggression (models/GUIDELINES.md: "
                      f"{implied[0]} implies aggression)")


def read_label_studio(path: Path) -> tuple[list[ImportedLabel], list[str]]:
    """Read Label Studio's JSON export: every task's annotations that were not cancelled."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], [f"{path}: not a Label Studio JSON export ({exc})"]
    if not isinstance(tasks, list):
        return [], [f"{path}: expected a JSON list of tasks (Label Studio: Export -> JSON)"]
    labels, errors = [], []
    for number, task in enumerate(tasks, start=1):
        where = f"{path}: task {number}"
        item = (task.get("data") or {}).get("item") if isinstance(task, dict) else None
        if not isinstance(item, str) or not item:
            errors.append(f"{where}: field 'data.item': missing; was this task exported by weerbaar?")
            continue
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            who = annotation.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            # A name from another tool is printed on terminals later: keep printable characters only.
            who = "".join(ch for ch in str(who) if ch.isprintable()) if who is not None else ""
            if not who:
                errors.append(f"{where} ({item}): field 'annotations.completed_by': missing")
                continue
            chosen: dict[str, list[str]] = {}
            for result in annotation.get("result") or []:
                chosen[result.get("from_name")] = list((result.get("value") or {}).get("choices") or [])
            target = (chosen.get("target") or [None])[0]
            label = ImportedLabel(item, f"label-studio:{who}", chosen.get("categories", []), target,
                                  str(annotation.get("updated_at") or annotation.get("created_at") or utcnow()),
                                  f"{where} ({item})")
            _check(label, errors)
            labels.append(label)
    return labels, errors


def read_annotation_csv(path: Path) -> tuple[list[ImportedLabel], list[str]]:
    """Read the batch CSV filled in: item, a 0/1 per category, target and annotator on every line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"{path}: not valid UTF-8 (byte {exc.start})"]
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in ("item", *CATEGORIES, "annotator") if c not in (reader.fieldnames or [])]
    if missing:
        return [], [f"{path}:1: missing column(s): {', '.join(missing)}"]
    labels, errors = [], []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        values = {c: (row.get(c) or "").strip() for c in (*CATEGORIES, "item", "annotator", "target")}
        if not any(values[c] for c in CATEGORIES) and not values["annotator"]:
            continue  # a line nobody annotated
        bad = [c for c in CATEGORIES if values[c] not in ("0", "1")]
        for column in bad:
            errors.append(f"{where}: field '{column}': expected 0 or 1, got {values[column]!r}")
        for column in ("item", "annotator"):
            if not values[column]:
                errors.append(f"{where}: field '{column}': is required")
        if bad or not values["item"] or not values["annotator"]:
            continue
        annotator = "".join(ch for ch in values["annotator"] if ch.isprintable())
        label = ImportedLabel(values["item"], annotator, [c for c in CATEGORIES if values[c] == "1"],
                              values["target"] or None, utcnow(), where)
        _check(label, errors)
        labels.append(label)
    return labels, errors


def import_annotations(db: sqlite_utils.Database, path: str | Path) -> dict[str, int]:
    """Store the labels in a Label Studio JSON export or a filled-in batch CSV, all or none; return counts."""
    path = Path(path)
    if not path.exists():
        raise AnnotationError([f"{path}: file not found"])
    reader = read_annotation_csv if path.suffix.lower() == ".csv" else read_label_studio
    labels, errors = reader(path)
    known = dict(db.execute("SELECT item_id, mention_id FROM annotation_items").fetchall())
    for label in labels:
        if label.item not in known:
            errors.append(f"{label.where}: field 'item': {label.item!r} was not handed out by this database "
                          "(or its mention has been erased)")
    seen: dict[tuple[str, str], str] = {}
    for label in labels:
        key = (label.item, label.annotator)
        if key in seen:
            errors.append(f"{label.where}: annotator {label.annotator!r} labelled this item also at {seen[key]}")
        seen[key] = label.where
    if errors:
        raise AnnotationError(errors)
    now = utcnow()
    with write_transaction(db):
        replaced = db.execute(
            "SELECT count(*) FROM annotations WHERE (item_id, annotator) IN (VALUES "
            + ", ".join("(?, ?)" for _ in labels) + ")", [v for label in labels for v in (label.item, label.annotator)]
        ).fetchone()[0] if labels else 0
        db.conn.executemany(
            """INSERT INTO annotations (mention_id, item_id, annotator, labels, target, annotated_at, imported_at,
                                        source_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (mention_id, annotator) DO UPDATE SET labels = excluded.labels, target = excluded.target,
                   annotated_at = excluded.annotated_at, imported_at = excluded.imported_at,
                   source_file = excluded.source_file""",
            [(known[label.item], label.item, label.annotator, json.dumps(label.categories), label.target,
              label.annotated_at, now, path.name) for label in labels],
        )
    return {"labels": len(labels), "replaced": replaced, "annotators": len({label.annotator for label in labels})}


# -- agreement ------------------------------------------------------------------------------------------------------


@dataclass
class CategoryAgreement:
    """Agreement on one category: among annotators, each pair, each annotator against staff and against the model."""

    category: str
    alpha: float | None
    alpha_items: int
    pairs: list[dict] = field(default_factory=list)
    against_staff: list[dict] = field(default_factory=list)
    against_model: list[dict] = field(default_factory=list)


def _kappa_row(names: dict, first: dict, second: dict) -> dict:
    common = sorted(set(first) & set(second))
    return names | {"items": len(common), "kappa": cohen_kappa([first[i] for i in common],
                                                                 [second[i] for i in common])}


def agreement_report(db: sqlite_utils.Database, model: tuple[str, str] | None = None) -> dict:
    """Return agreement per category (alpha among annotators, kappa per pair, against staff and model) and the
    items on which annotators disagree."""
    by_annotator: dict[str, dict[int, set[str]]] = {}
    items: dict[int, str] = {}
    for mention_id, item, annotator, labels in db.execute(
        "SELECT mention_id, item_id, annotator, labels FROM annotations ORDER BY mention_id"
    ):
        by_annotator.setdefault(annotator, {})[mention_id] = set(json.loads(labels))
        items[mention_id] = item
    staff = {mention_id: set(json.loads(labels)) for mention_id, labels in db.execute(
        """SELECT r.mention_id, r.labels FROM reviews r WHERE r.id = (SELECT r2.id FROM reviews r2
           WHERE r2.mention_id = r.mention_id ORDER BY r2.reviewed_at DESC, r2.id DESC LIMIT 1)""")}
    mentions = sorted(items)
    scored = {mention_id: set(json.loads(labels)) for mention_id, labels in db.execute(
        f"""SELECT m.id, s.labels FROM mentions m JOIN scores s ON s.id = {counting_score_id()}
            WHERE m.id IN (SELECT mention_id FROM annotations)""",
        {"model": model and model[0], "model_version": model and model[1]})}
    annotators = sorted(by_annotator)
    categories = []
    for category in CATEGORIES:
        values = {a: {m: int(category in labels) for m, labels in by_annotator[a].items()} for a in annotators}
        units = [[values[a].get(m) for a in annotators] for m in mentions]
        report = CategoryAgreement(category, krippendorff_alpha(units),
                                   sum(sum(v is not None for v in unit) >= 2 for unit in units))
        for first, second in combinations(annotators, 2):
            report.pairs.append(_kappa_row({"first": first, "second": second}, values[first], values[second]))
        for source, rows, reference in (("staff", report.against_staff, staff), ("model", report.against_model,
                                                                                scored)):
            other = {m: int(category in labels) for m, labels in reference.items()}
            for annotator in annotators:
                rows.append(_kappa_row({"annotator": annotator, "against": source}, values[annotator], other))
        categories.append(report)
    disagreements = []
    for mention_id in mentions:
        given = {a: by_annotator[a][mention_id] for a in annotators if mention_id in by_annotator[a]}
        split = [c for c in CATEGORIES if len({c in labels for labels in given.values()}) > 1]
        if split:
            disagreements.append({"item": items[mention_id], "categories": split,
                                  "labels": {a: sorted(labels) for a, labels in given.items()}})
    return {"annotators": annotators, "items": len(mentions), "categories": categories,
            "disagreements": disagreements}
