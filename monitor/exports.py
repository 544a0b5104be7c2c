"""Pseudonymised, labelled exports for researchers: mentions as JSONL, CSV or Parquet, a datasheet and a manifest.

Every export is pseudonymised (see monitor/pseudonyms.py): people are keyed ids, texts are masked, an official is
only a role and a body type (the body's name only when asked: "burgemeester of Zwolle" is one person). Officials who
withdrew are never exported: their links are gone, and a post is exported only through an official who still
consents. Everything is read in one read transaction, so a withdrawal committed during an export is not half in it.

Small cells: the pseudonym of the only dijkgraaf in an export, shown with "dijkgraaf" and "waterschap", names one
person. So a role and body type (with the body name too, when asked) that fewer than MIN_OFFICIALS of the officials
in the export share is generalised: the role becomes its group (ROLE_GROUPS), "executive" (burgemeester, wethouder,
commissaris, gedeputeerde, dijkgraaf, heemraad, hoogheemraad: the dagelijks bestuur and its chair), "council member"
(raadslid, statenlid, algemeen bestuurslid: the elected members) or "civil servant" (griffier, secretaris); and where
fewer than MIN_OFFICIALS are generalised to the same group and body type, role, body type and body name are left
empty (None). Only the officials the exported rows address count, so every role, body type and body name shown is
shared by at least MIN_OFFICIALS pseudonyms of the export itself. The datasheet and manifest say how many officials
and rows were generalised; which roles were is not said, as that would name the small cells again.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from .categories import CATEGORIES
from .db import counting_score_id, utcnow
from .pseudonyms import OfficialNames, Pseudonymiser, mask_text

SCHEMA_VERSION = "weerbaar-export/1"
FORMATS = ("jsonl", "csv", "parquet")
SAMPLINGS = ("random", "stratified", "uncertain")
MANIFEST = "MANIFEST.json"
DATASHEET = "DATASHEET.md"
DEFAULT_THRESHOLD = 0.5
DALC_TARGETS = {"official": "INDIVIDUAL", "person": "INDIVIDUAL", "group": "GROUP", "none": "OTHER"}
# The columns of a mention row, in order; CSV and Parquet keep them, JSONL writes them as keys.
COLUMNS = (
    "schema_version", "mention", "platform", "posted_day", "posted_time", "lang", "author", "text", "context_text",
    "targets", "model", "model_version", *(f"score_{c}" for c in CATEGORIES), "model_labels", "model_dalc_level",
    "labels",
)
NESTED = ("targets", "model_labels", "labels")
MIN_OFFICIALS = 3  # a role and body type that fewer officials of an export share is generalised (see above)
# The coarser role a small cell's official is shown with; every role of officials.ROLES is in one group.
ROLE_GROUPS = {
    "executive": ("burgemeester", "wethouder", "commissaris", "gedeputeerde", "dijkgraaf", "heemraad", "hoogheemraad"),
    "council member": ("raadslid", "statenlid", "algemeen bestuurslid"),
    "civil servant": ("griffier", "secretaris"),
}
GROUP_OF_ROLE = {role: group for group, roles in ROLE_GROUPS.items() for role in roles}
PARALLEL_FROM = 20_000  # below this many mentions, starting worker processes costs more than it saves
CHUNK = 10_000  # mentions a worker builds at a time


class ExportError(ValueError):
    """An export that cannot be made as asked; nothing was written."""


@dataclass(frozen=True)
class ExportFilters:
    """Which mentions an export holds: posting days (local, inclusive), body types, platforms, categories, reviewed."""

    since: dt.date | None = None
    until: dt.date | None = None
    body_types: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    reviewed_only: bool = False

    def as_dict(self) -> dict:
        """Return the filters as JSON-ready values."""
        return {"since": self.since and self.since.isoformat(), "until": self.until and self.until.isoformat(),
                "body_types": list(self.body_types), "platforms": list(self.platforms),
                "categories": list(self.categories), "reviewed_only": self.reviewed_only}


@dataclass(frozen=True)
class Sampling:
    """How many mentions to draw and how: random, stratified by category, or most uncertain first."""

    size: int | None = None
    method: str = "random"
    seed: int = 0


@dataclass
class ExportStats:
    """Counts gathered while writing, for the datasheet."""

    rows: int = 0
    model_labels: Counter = field(default_factory=Counter)
    human_labels: Counter = field(default_factory=Counter)
    dalc: Counter = field(default_factory=Counter)
    platforms: Counter = field(default_factory=Counter)
    body_types: Counter = field(default_factory=Counter)
    roles: Counter = field(default_factory=Counter)
    months: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    labelled_rows: int = 0
    generalised_rows: int = 0  # rows with a target shown by its role's group, or with role and body type withheld
    withheld_rows: int = 0  # rows with a target whose role and body type are withheld
    labellers: set = field(default_factory=set)
    first_day: str | None = None
    last_day: str | None = None

    def add(self, row: dict) -> None:
        """Count one exported row."""
        self.rows += 1
        day = row["posted_day"]
        self.first_day = min(self.first_day or day, day)
        self.last_day = max(self.last_day or day, day)
        self.months[day[:7]] += 1
        self.platforms[row["platform"]] += 1
        roles = [target["role"] for target in row["targets"]]
        for target in row["targets"]:
            self.body_types[target["body_type"]] += 1
            self.roles[target["role"]] += 1
        self.generalised_rows += any(role is None or role in ROLE_GROUPS for role in roles)
        self.withheld_rows += None in roles
        if row["model"]:
            self.models[f"{row['model']}@{row['model_version']}"] += 1
            self.dalc[row["model_dalc_level"]] += 1
        self.model_labels.update(row["model_labels"] or ["(none)"])
        if row["labels"]:
            self.labelled_rows += 1
        for label in row["labels"]:
            self.human_labels.update(label["categories"] or ["(none)"])
            self.labellers.add(label["labeller"])

    def merge(self, other: ExportStats) -> None:
        """Add the counts of OTHER (a chunk counted elsewhere)."""
        self.rows += other.rows
        for name in ("model_labels", "human_labels", "dalc", "platforms", "body_types", "roles", "months", "models"):
            getattr(self, name).update(getattr(other, name))
        self.labelled_rows += other.labelled_rows
        self.generalised_rows += other.generalised_rows
        self.withheld_rows += other.withheld_rows
        self.labellers |= other.labellers
        days = [d for d in (self.first_day, self.last_day, other.first_day, other.last_day) if d]
        self.first_day, self.last_day = (min(days), max(days)) if days else (None, None)


@dataclass
class ExportResult:
    """What an export wrote: its files with their SHA-256, the row count and the manifest's path."""

    directory: Path
    files: dict[str, str]
    rows: int
    manifest: Path


def dalc_level(categories: list[str]) -> str:
    """Map our labels to DALC's level: ABUSIVE (insult, threat or identity attack), OFFENSIVE (aggression only), NOT."""
    if any(c in categories for c in ("insult", "threat", "identity_attack")):
        return "ABUSIVE"
    return "OFFENSIVE" if "aggression" in categories else "NOT"


def day_range_utc(since: dt.date | None, until: dt.date | None, timezone: str) -> tuple[str, str]:
    """Return the UTC bounds [start, end) of local days SINCE to UNTIL (inclusive); open ends stay open."""
    zone = ZoneInfo(timezone)
    fmt = "%Y-%m-%dT%H:%M:%SZ"

    def bound(day: dt.date) -> str:
        return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.timezone.utc).strftime(fmt)

    return (bound(since) if since else "0000", bound(until + dt.timedelta(days=1)) if until else "9999")


class LocalTimes:
    """Local day and time of UTC timestamps, cached by the minute (a million conversions otherwise cost seconds)."""

    def __init__(self, timezone: str):
        self.zone = ZoneInfo(timezone)
        self._cache: dict[str, tuple[str, str]] = {}

    def __call__(self, stamp: str) -> tuple[str, str]:
        """Return (YYYY-MM-DD, HH:MM) local for an ISO 8601 UTC STAMP."""
        minute = stamp[:16]
        found = self._cache.get(minute)
        if found is None:
            moment = dt.datetime.fromisoformat(minute).replace(tzinfo=dt.timezone.utc).astimezone(self.zone)
            found = self._cache[minute] = (moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M"))
        return found


def consenting_officials(db: sqlite_utils.Database) -> dict[int, dict]:
    """Return {official_id: {name, role, body_type, body_name, handles}} for officials who consent now."""
    officials = {}
    for official_id, name, role, body_type, body_name in db.execute(
        """SELECT o.id, o.name, o.role, o.body_type, o.body_name FROM officials o
           WHERE o.status = 'active'
             AND EXISTS (SELECT 1 FROM consents c WHERE c.official_id = o.id AND c.withdrawn_at IS NULL)"""
    ):
        officials[official_id] = {"name": name, "role": role, "body_type": body_type, "body_name": body_name,
                                  "handles": []}
    for official_id, handle in db.execute("SELECT official_id, handle FROM accounts"):
        if official_id in officials:
            officials[official_id]["handles"].append(handle)
    return officials


def generalised_cells(officials: dict[int, dict], with_body: bool,
                      min_officials: int = MIN_OFFICIALS) -> dict[int, tuple[str | None, str | None, str | None]]:
    """Return {official_id: (role, body_type, body_name)} as exported for OFFICIALS, small cells generalised.

    OFFICIALS are those the export's rows address. A (role, body type, body name if WITH_BODY) that fewer than
    MIN_OFFICIALS of them share becomes (the role's group, body type, body name); a group cell that fewer than
    MIN_OFFICIALS reach that way becomes (None, None, None). Body name is None unless WITH_BODY.
    """
    def cell(role: str | None, official: dict) -> tuple:
        return (role, official["body_type"], official["body_name"] if with_body else None)

    exact = Counter(cell(o["role"], o) for o in officials.values())
    cells = {}
    for official_id, official in officials.items():
        found = cell(official["role"], official)
        if exact[found] < min_officials:
            group = GROUP_OF_ROLE.get(official["role"])
            found = cell(group, official) if group else (None, None, None)
        cells[official_id] = found
    # A group cell holds only the generalised officials: those of its exact roles who were shown stay out of it.
    shown = Counter(cells.values())
    return {official_id: found if shown[found] >= min_officials else (None, None, None)
            for official_id, found in cells.items()}


def official_names(db: sqlite_utils.Database, shown_roles: Mapping[int, str | None] | None = None) -> OfficialNames:
    """Return the names and handles of every registered official, for masking (withdrawn ones are erased already).

    A name is masked as the role the export shows for that official (SHOWN_ROLES, after generalised_cells; "official"
    where it is withheld), and an official the export does not address as their role's group: "[dijkgraaf] moet weg"
    in the text would otherwise give back the role a small cell took away.
    """
    names = OfficialNames()
    handles: dict[int, list[str]] = {}
    for official_id, handle in db.execute("SELECT official_id, handle FROM accounts"):
        handles.setdefault(official_id, []).append(handle)
    for official_id, name, role in db.execute("SELECT id, name, role FROM officials"):
        if shown_roles is not None:
            role = shown_roles.get(official_id, GROUP_OF_ROLE.get(role, role)) or "official"
        names.add(official_id, name, role, handles.get(official_id, []))
    return names


def has_column(db: sqlite_utils.Database, table: str, column: str) -> bool:
    """Return whether TABLE has COLUMN now (other features add optional columns, such as mentions.context_text)."""
    return table in db.table_names() and column in db[table].columns_dict


def select_mentions(db: sqlite_utils.Database, filters: ExportFilters, sampling: Sampling, timezone: str,
                    thresholds: dict[str, float], model: tuple[str, str] | None) -> list[int]:
    """Return the ids of the mentions FILTERS select, sampled as SAMPLING says (ordered by id unless uncertain)."""
    start, end = day_range_utc(filters.since, filters.until, timezone)
    where = ["m.created_at >= :start", "m.created_at < :end"]
    params: dict = {"start": start, "end": end, "model": model and model[0], "model_version": model and model[1]}
    target = ("EXISTS (SELECT 1 FROM mention_targets t JOIN officials o ON o.id = t.official_id "
              "WHERE t.mention_id = m.id AND o.status = 'active'{extra})")
    if filters.body_types:
        params |= {f"body{i}": b for i, b in enumerate(filters.body_types)}
        where.append(target.format(extra=" AND o.body_type IN ("
                                   + ", ".join(f":body{i}" for i in range(len(filters.body_types))) + ")"))
    else:
        where.append(target.format(extra=""))
    if filters.platforms:
        params |= {f"platform{i}": p for i, p in enumerate(filters.platforms)}
        where.append("m.platform IN (" + ", ".join(f":platform{i}" for i in range(len(filters.platforms))) + ")")
    human = "EXISTS (SELECT 1 FROM reviews r WHERE r.mention_id = m.id)"
    if "annotations" in db.table_names():
        human = f"({human} OR EXISTS (SELECT 1 FROM annotations a WHERE a.mention_id = m.id))"
    if filters.reviewed_only:
        where.append(human)
    if sampling.size is None and not filters.categories:  # the scores matter only to sample or filter by them
        return [r[0] for r in db.execute(f"SELECT m.id FROM mentions m WHERE {' AND '.join(where)} ORDER BY m.id",
                                         params)]
    rows = db.execute(
        f"""SELECT m.id, s.probabilities, s.labels FROM mentions m
            LEFT JOIN scores s ON s.id = {counting_score_id()}
            WHERE {' AND '.join(where)} ORDER BY m.id""",
        params,
    ).fetchall()
    if filters.categories:
        wanted = set(filters.categories)
        human_labels = _human_categories(db)
        rows = [r for r in rows
                if wanted & set(json.loads(r[2] or "[]")) or wanted & human_labels.get(r[0], set())]
    return sample_ids(rows, sampling, thresholds)


def _human_categories(db: sqlite_utils.Database) -> dict[int, set[str]]:
    """Return {mention_id: every category a staff reviewer or annotator gave it}."""
    found: dict[int, set[str]] = {}
    tables = ["reviews"] + (["annotations"] if "annotations" in db.table_names() else [])
    for table in tables:
        for mention_id, labels in db.execute(f"SELECT mention_id, labels FROM {table}"):
            found.setdefault(mention_id, set()).update(json.loads(labels))
    return found


def sample_ids(rows: list[tuple[int, str | None, str | None]], sampling: Sampling,
               thresholds: dict[str, float]) -> list[int]:
    """Draw SAMPLING.size of ROWS (id, probabilities, labels): random, stratified by category, or most uncertain.

    Stratified draws the same number from each category's stratum (a mention's stratum is its rarest model label,
    or "none"), so rare categories such as threats are not drowned; a stratum with too few gives its share to the
    others. Uncertain orders by how close the nearest category's probability lies to its threshold.
    """
    size = sampling.size
    if size is None or size >= len(rows) and sampling.method != "uncertain":
        return [r[0] for r in rows]
    rng = random.Random(sampling.seed)
    if sampling.method == "random":
        return sorted(rng.sample([r[0] for r in rows], size))
    if sampling.method == "uncertain":
        def margin(row) -> float:
            probabilities = json.loads(row[1]) if row[1] else {}
            return min((abs(p - thresholds.get(c, DEFAULT_THRESHOLD)) for c, p in probabilities.items()),
                       default=1.0)
        # Ties (the same margin) are broken by a seeded shuffle, so --seed still decides.
        shuffled = rng.sample(rows, len(rows))
        return [r[0] for r in sorted(shuffled, key=margin)[:size]]
    if sampling.method != "stratified":
        raise ExportError(f"unknown sampling {sampling.method!r}; expected one of: {', '.join(SAMPLINGS)}")
    totals = Counter(c for r in rows for c in json.loads(r[2] or "[]"))
    strata: dict[str, list[int]] = {}
    for mention_id, _, labels in rows:
        names = [c for c in json.loads(labels or "[]") if c in totals]
        stratum = min(names, key=lambda c: (totals[c], c)) if names else "none"
        strata.setdefault(stratum, []).append(mention_id)
    for ids in strata.values():
        rng.shuffle(ids)
    chosen: list[int] = []
    order = sorted(strata)
    while len(chosen) < size:
        for name in order:
            if strata[name] and len(chosen) < size:
                chosen.append(strata[name].pop())
        order = [name for name in order if strata[name]]
    return sorted(chosen)


@dataclass
class RowBuilder:
    """What turns a stored mention into its export row; picklable, so that worker processes can build rows too."""

    pseudonyms: Pseudonymiser
    names: OfficialNames
    official_entries: dict[int, dict]
    timezone: str
    with_time: bool = False
    local: LocalTimes | None = None

    def row(self, stored: tuple) -> dict:
        """Return the pseudonymised row of one STORED mention (a tuple from stored_mentions)."""
        (mention_id, platform, created_at, lang, author_id, author_handle, text, context_text, model_name,
         model_version, probabilities, model_labels, addressed, labels) = stored
        if self.local is None:
            self.local = LocalTimes(self.timezone)
        day, time = self.local(created_at)
        scores = json.loads(probabilities) if probabilities else {}
        model_labels = json.loads(model_labels) if model_labels else []
        author = author_id or (author_handle or "").lower()
        pseudonym = self.pseudonyms.pseudonym
        return {
            "schema_version": SCHEMA_VERSION,
            "mention": pseudonym("mention", mention_id),
            "platform": platform,
            "posted_day": day,
            "posted_time": time if self.with_time else None,
            "lang": lang,
            "author": pseudonym("author", f"{platform}:{author}") if author else None,
            "text": mask_text(text, self.names, addressed),
            "context_text": mask_text(context_text, self.names, addressed) if context_text else None,
            "targets": [self.official_entries[o] for o in addressed],
            "model": model_name,
            "model_version": model_version,
            **{f"score_{c}": scores.get(c) for c in CATEGORIES},
            "model_labels": model_labels,
            "model_dalc_level": dalc_level(model_labels) if model_name else None,
            "labels": labels,
        }


def stored_mentions(db: sqlite_utils.Database, ids: list[int], pseudonyms: Pseudonymiser, timezone: str,
                    model: tuple[str, str] | None, with_body: bool = False, with_time: bool = False,
                    min_officials: int = MIN_OFFICIALS) -> tuple[RowBuilder, Iterator[tuple]]:
    """Return a RowBuilder and the stored mentions in IDS (id order), each with its consenting targets and labels.

    The builder's targets are generalised where fewer than MIN_OFFICIALS of the addressed officials share a role
    and body type (generalised_cells). The iterator reads the database lazily: consume it inside the caller's read
    transaction.
    """
    officials = consenting_officials(db)
    context = has_column(db, "mentions", "context_text")
    db.execute("DROP TABLE IF EXISTS temp.export_selection")
    db.execute("CREATE TEMP TABLE export_selection (mention_id INTEGER PRIMARY KEY)")
    db.conn.executemany("INSERT INTO temp.export_selection VALUES (?)", ((i,) for i in ids))
    targets: dict[int, list[int]] = {}
    for mention_id, official_id in db.execute(
        "SELECT t.mention_id, t.official_id FROM mention_targets t JOIN temp.export_selection e USING (mention_id) "
        "ORDER BY t.mention_id, t.official_id"
    ):
        if official_id in officials:
            targets.setdefault(mention_id, []).append(official_id)
    labels = human_labels(db, pseudonyms)
    # Every mention read below is one of these, in this transaction: these are the officials the export shows.
    addressed = {official_id for official_ids in targets.values() for official_id in official_ids}
    cells = generalised_cells({o: officials[o] for o in addressed}, with_body, min_officials)
    shown_roles = {official_id: role for official_id, (role, _, _) in cells.items()}
    builder = RowBuilder(pseudonyms, official_names(db, shown_roles if min_officials > 1 else None), {
        official_id: {"official": pseudonyms.pseudonym("official", official_id), "role": role,
                      "body_type": body_type, "body_name": body_name}
        for official_id, (role, body_type, body_name) in cells.items()
    }, timezone, with_time)

    def read() -> Iterator[tuple]:
        cursor = db.execute(
            f"""SELECT m.id, m.platform, m.created_at, m.lang, m.author_id, m.author_handle, m.text,
                       {'m.context_text' if context else 'NULL'}, s.model, s.model_version, s.probabilities,
                       s.labels
                FROM temp.export_selection e JOIN mentions m ON m.id = e.mention_id
                LEFT JOIN scores s ON s.id = {counting_score_id()}
                ORDER BY m.id""",
            {"model": model and model[0], "model_version": model and model[1]},
        )
        for stored in cursor:
            addressed = targets.get(stored[0])
            if addressed:  # else its last consenting official withdrew while the ids were chosen
                yield (*stored, addressed, labels.get(stored[0], []))
        db.execute("DROP TABLE IF EXISTS temp.export_selection")

    return builder, read()


def mention_rows(db: sqlite_utils.Database, ids: list[int], pseudonyms: Pseudonymiser, timezone: str,
                 model: tuple[str, str] | None, with_body: bool = False, with_time: bool = False,
                 min_officials: int = MIN_OFFICIALS) -> Iterator[dict]:
    """Yield the pseudonymised export row of every mention in IDS, in id order."""
    builder, stored = stored_mentions(db, ids, pseudonyms, timezone, model, with_body, with_time, min_officials)
    for mention in stored:
        yield builder.row(mention)


def human_labels(db: sqlite_utils.Database, pseudonyms: Pseudonymiser) -> dict[int, list[dict]]:
    """Return {mention_id: [labels by staff reviewers and annotators, each with a pseudonymous labeller]}."""
    found: dict[int, list[dict]] = {}
    queries = [("staff", "reviewer", "SELECT mention_id, reviewer, labels, NULL, reviewed_at FROM reviews "
                "JOIN temp.export_selection USING (mention_id) ORDER BY reviewed_at, id")]
    if "annotations" in db.table_names():
        queries.append(("annotator", "annotator", "SELECT mention_id, annotator, labels, target, annotated_at "
                        "FROM annotations JOIN temp.export_selection USING (mention_id) ORDER BY annotated_at, id"))
    for source, kind, sql in queries:
        for mention_id, who, labels, target, at in db.execute(sql):
            categories = json.loads(labels)
            level = dalc_level(categories)
            found.setdefault(mention_id, []).append({
                "source": source,
                "labeller": pseudonyms.pseudonym(kind, who),
                "labelled_at": at,
                "categories": categories,
                "target": target,
                "dalc_level": level,
                "dalc_target": DALC_TARGETS.get(target) if target and level != "NOT" else None,
            })
    return found


# -- writers --------------------------------------------------------------------------------------------------------


def _jsonl_chunk(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _csv_chunk(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([json.dumps(row[c], ensure_ascii=False) if c in NESTED else row[c] for c in COLUMNS])
    return buffer.getvalue()


def _parquet_chunk(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=parquet_schema())


def parquet_schema():
    """Return the Arrow schema of an export's Parquet file, with the schema version in its metadata."""
    import pyarrow as pa

    target = pa.struct([("official", pa.string()), ("role", pa.string()), ("body_type", pa.string()),
                        ("body_name", pa.string())])
    label = pa.struct([("source", pa.string()), ("labeller", pa.string()), ("labelled_at", pa.string()),
                       ("categories", pa.list_(pa.string())), ("target", pa.string()), ("dalc_level", pa.string()),
                       ("dalc_target", pa.string())])
    types = {"targets": pa.list_(target), "model_labels": pa.list_(pa.string()), "labels": pa.list_(label),
             **{f"score_{c}": pa.float64() for c in CATEGORIES}}
    return pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS],
                     metadata={"weerbaar_schema_version": SCHEMA_VERSION})


ENCODERS: dict[str, Callable[[list[dict]], object]] = {
    "jsonl": _jsonl_chunk, "csv": _csv_chunk, "parquet": _parquet_chunk,
}


@contextlib.contextmanager
def _sink(path: Path, fmt: str) -> Iterator[Callable[[object], None]]:
    """Open PATH for FMT and yield a function that writes one encoded chunk."""
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ExportError("Parquet needs pyarrow: pip install 'weerbaar[research]'") from None
        with pq.ParquetWriter(path, parquet_schema(), compression="zstd") as writer:
            yield writer.write_table
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            csv.writer(out).writerow(COLUMNS)
        yield out.write


# A worker process's builder and format, set once by _start_worker.
_WORKER: dict = {}


def _start_worker(builder: RowBuilder, fmt: str) -> None:
    _WORKER.update(builder=builder, fmt=fmt)


def _encode_chunk(stored: list[tuple]) -> tuple[object, ExportStats]:
    """Build, count and encode one chunk of stored mentions (in a worker process, or inline)."""
    builder, stats = _WORKER["builder"], ExportStats()
    rows = [builder.row(mention) for mention in stored]
    for row in rows:
        stats.add(row)
    return ENCODERS[_WORKER["fmt"]](rows), stats


def _chunks(items: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_mentions(path: Path, fmt: str, builder: RowBuilder, stored: Iterator[tuple], stats: ExportStats,
                   workers: int = 1, chunk: int | None = None) -> None:
    """Write the rows of STORED mentions to PATH in FMT, building them in WORKERS processes; count into STATS.

    The database is read here, in the caller's transaction; masking, pseudonyms and encoding (most of the time)
    run in the workers, and chunks are written in order.
    """
    chunk = chunk or CHUNK
    with _sink(path, fmt) as write:
        if workers <= 1:
            _start_worker(builder, fmt)
            for part in _chunks(stored, chunk):
                payload, counted = _encode_chunk(part)
                write(payload)
                stats.merge(counted)
            return
        # The database is read in this thread only (SQLite connections stay in their thread), a few chunks ahead.
        with multiprocessing.get_context("fork").Pool(workers, _start_worker, (builder, fmt)) as pool:
            pending: collections.deque = collections.deque()
            for part in _chunks(stored, chunk):
                pending.append(pool.apply_async(_encode_chunk, (part,)))
                if len(pending) > 2 * workers:
                    payload, counted = pending.popleft().get()
                    write(payload)
                    stats.merge(counted)
            while pending:
                payload, counted = pending.popleft().get()
                write(payload)
                stats.merge(counted)


def read_export(path: str | Path) -> Iterator[dict]:
    """Yield the rows of an export's mentions file in any of the three formats, nested fields decoded."""
    path = Path(path)
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)
    elif path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                yield {c: (json.loads(v) if c in NESTED else (v if v != "" else None)) for c, v in row.items()}
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
    else:
        raise ExportError(f"{path}: not an export's mentions file (.jsonl, .csv or .parquet)")


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def small_cell_counts(builder: RowBuilder, stats: ExportStats, min_officials: int) -> dict:
    """Return how many exported officials and rows small-cell protection generalised, for datasheet and manifest."""
    roles = [entry["role"] for entry in builder.official_entries.values()]
    return {"min_officials": min_officials,
            "officials_grouped": sum(role in ROLE_GROUPS for role in roles),
            "officials_withheld": roles.count(None),
            "rows_generalised": stats.generalised_rows,
            "rows_withheld": stats.withheld_rows}


def export_dataset(db: sqlite_utils.Database, out_dir: str | Path, settings, key: bytes, fmt: str = "jsonl",
                   filters: ExportFilters = ExportFilters(), sampling: Sampling = Sampling(),
                   model: tuple[str, str] | None = None, with_body: bool = False,
                   with_time: bool = False, workers: int = 1, min_officials: int = MIN_OFFICIALS) -> ExportResult:
    """Write OUT_DIR/mentions.FMT, DATASHEET.md and MANIFEST.json (SHA-256 of each file); return what was written.

    A role and body type (and body name, WITH_BODY) that fewer than MIN_OFFICIALS of the exported officials share
    is generalised (see the module's docstring); 1 generalises nothing.
    Files are written under temporary names and moved into place at the end, so a failed export leaves none.
    With WORKERS above 1, that many processes build the rows of a large export: faster on idle cores, slower on
    a machine whose cores are busy already (measured in scripts/benchmark.py).
    """
    from .datasheets import write_datasheet

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    if sampling.method not in SAMPLINGS:
        raise ExportError(f"unknown sampling {sampling.method!r}; expected one of: {', '.join(SAMPLINGS)}")
    if min_officials < 1:
        raise ExportError(f"min_officials is {min_officials}; a cell needs at least 1 official")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out}: folder is not empty; an export goes into a new or empty folder")
    pseudonyms = Pseudonymiser(key)
    thresholds = {c: settings.classifier.thresholds.get(c, DEFAULT_THRESHOLD) for c in CATEGORIES}
    out.mkdir(parents=True, exist_ok=True)
    stats = ExportStats()
    data_name = f"mentions.{fmt}"
    partial = out / f".{data_name}.partial"
    try:
        db.execute("BEGIN")
        try:
            ids = select_mentions(db, filters, sampling, settings.timezone, thresholds, model)
            builder, stored = stored_mentions(db, ids, pseudonyms, settings.timezone, model, with_body, with_time,
                                              min_officials)
            write_mentions(partial, fmt, builder, stored, stats, workers if len(ids) >= PARALLEL_FROM else 1)
            small_cells = small_cell_counts(builder, stats, min_officials)
            context = {"filters": filters, "sampling": sampling, "format": fmt, "with_body": with_body,
                       "with_time": with_time, "key_id": pseudonyms.key_id, "thresholds": thresholds,
                       "small_cells": small_cells, "role_groups": ROLE_GROUPS}
            write_datasheet(db, settings, out / f".{DATASHEET}.partial", stats, context)
        finally:
            db.execute("ROLLBACK")
        partial.replace(out / data_name)
        (out / f".{DATASHEET}.partial").replace(out / DATASHEET)
    except BaseException:
        for leftover in (partial, out / f".{DATASHEET}.partial", out / data_name, out / DATASHEET):
            leftover.unlink(missing_ok=True)
        raise
    files = {name: sha256_file(out / name) for name in (data_name, DATASHEET)}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_at": utcnow(),
        "format": fmt,
        "rows": stats.rows,
        "key_id": pseudonyms.key_id,
        "filters": filters.as_dict(),
        "sampling": {"size": sampling.size, "method": sampling.method, "seed": sampling.seed},
        "with_body": with_body,
        "with_time": with_time,
        "small_cells": small_cells,
        "files": {name: {"sha256": digest, "bytes": (out / name).stat().st_size} for name, digest in files.items()},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return ExportResult(out, files, stats.rows, out / MANIFEST)
