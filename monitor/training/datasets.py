"""Read labelled training and evaluation data, and map each dataset's labels to Weerbaar's categories.

This is the one place where a dataset's own label names appear. Every reader takes a path, returns a list of
`LabelledText` and raises `DatasetError` naming the file, line and column when the file is not in the shape the
dataset documents. Datasets stay where they are: their licences (see each PROVENANCE.md) keep them out of this
repository, so callers pass paths.

A label is 1 (the dataset's label entails our category), 0 (it rules our category out) or None (it does not decide:
training must mask that category for that row instead of reading it as 0). The choices are in `LABEL_MAP` below and
are explained for people in models/LABELS.md.

Two definitions of `aggression` meet here. Our product definition is an insult, abuse or threat aimed at a PERSON.
Our evaluation set, IMSyPP-NL, counts every offensive or violent message whatever its target. Where a dataset says an
offence is aimed at a group or an institution, the two disagree, so `aggression` is None there rather than 0 (0 would
train against our own evaluation labels) or 1 (which would train against the definition). Invariants in every map:
threat = 1 or insult = 1 implies aggression = 1, and aggression = 0 implies threat = 0 and insult = 0.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..categories import CATEGORIES

Label = int | None


def _m(aggression: Label, threat: Label, insult: Label, identity_attack: Label) -> dict[str, Label]:
    return {"aggression": aggression, "threat": threat, "insult": insult, "identity_attack": identity_attack}


N = None  # "the dataset does not say": masked in training

# Columns: _m(aggression, threat, insult, identity_attack). One entry per dataset label (or label combination).
LABEL_MAP: dict[str, dict] = {
    # IMSyPP-NL (Dutch, evaluation set). Key: (type, target kind); target kinds are defined in IMSYPP_TARGET_KIND.
    # aggression = offensive or violent whatever the target: this is the evaluation definition and must stay so.
    "imsypp": {
        ("0. appropriate", ""): _m(0, 0, 0, 0),  # clean
        ("1. inappropriate", ""): _m(0, 0, 0, 0),  # vulgar but, by IMSyPP's definition, aimed at no one
        ("2. offensive", "individual"): _m(1, 0, 1, 0),  # offence at a person is an insult; violence is type 3
        # 'politics' mixes named politicians with parties and 'the left': person or group cannot be told apart.
        ("2. offensive", "politics"): _m(1, 0, N, 0),
        ("2. offensive", "identity"): _m(1, 0, 0, 1),  # targets 1-7 are protected groups; annotated target is no person
        ("2. offensive", "ideology"): _m(1, 0, 0, 0),  # an ideology's followers are a group, and not a protected one
        ("2. offensive", "media_or_other"): _m(1, 0, N, 0),  # 'media' can be a journalist, 'other' anything
        # 'violent' = threat or incitement to violence; whether it also insults is not annotated.
        ("3. violent", "individual"): _m(1, 1, N, 0),
        ("3. violent", "politics"): _m(1, 1, N, 0),
        ("3. violent", "identity"): _m(1, 1, N, 1),
        ("3. violent", "ideology"): _m(1, 1, N, 0),
        ("3. violent", "media_or_other"): _m(1, 1, N, 0),
    },
    # DALC v2.0 (Dutch tweets). Key: (level, target). level: ABUSIVE if `abusive` is EXPLICIT/IMPLICIT, else
    # OFFENSIVE if `offensive_aggregated` is, else NOT. DALC's offensive covers profanity and any targeted offence,
    # veiled or direct (threats included); abusive is the hurtful, debasing subset, always aimed at someone.
    "dalc": {
        ("NOT", ""): _m(0, 0, 0, 0),  # not offensive at all, so none of ours
        ("OFFENSIVE", ""): _m(0, 0, 0, 0),  # untargeted profanity: aimed at no one
        ("OFFENSIVE", "INDIVIDUAL"): _m(1, N, 1, N),  # threats are not split out; a slur at a person may be identity
        ("ABUSIVE", "INDIVIDUAL"): _m(1, N, 1, N),
        ("OFFENSIVE", "GROUP"): _m(N, N, 0, N),  # group offence: definitions disagree; groups include political ones
        ("ABUSIVE", "GROUP"): _m(N, N, 0, 1),  # abuse of a social group is the closest DALC has to hate speech
        ("OFFENSIVE", "OTHER"): _m(N, N, 0, 0),  # an institution, entity or concept: not a person, not a group
        ("ABUSIVE", "OTHER"): _m(N, N, 0, 0),
        ("ABUSIVE", ""): _m(N, N, N, N),  # abuse without a target contradicts DALC's own definition: trust nothing
    },
    # GermEval 2018 and 2019 (German tweets). Key: (task 1, task 2). No threat label: threats sit inside OFFENSE.
    "germeval": {
        ("OTHER", "OTHER"): _m(0, 0, 0, 0),  # not offensive
        # INSULT ascribes negative qualities to persons without reference to a group identity.
        ("OFFENSE", "INSULT"): _m(1, N, 1, 0),
        # ABUSE ascribes a despised social identity (hate speech), to a group or to a person as its member.
        ("OFFENSE", "ABUSE"): _m(N, N, N, 1),
        ("OFFENSE", "PROFANITY"): _m(0, 0, 0, 0),  # swearing that, by definition, insults no one
    },
    # GermEval 2021 (German Facebook comments). Key: Sub1_Toxic. Toxic folds insults, threats, discrimination,
    # sarcasm and vulgarity together with no target, so it decides none of ours; the set is useful for negatives.
    "germeval2021": {
        "0": _m(0, 0, 0, 0),
        "1": _m(N, N, N, N),
    },
    # GermEval 2026 harmful content, subtask vio (German tweets). Key: label, lower-cased. The files spell
    # propensity 'prospensity' and the readme 'call2Violence'. 'nothing' = no statement about violence; the set was
    # not annotated for insults, so only threat is decided there.
    "germeval2026_vio": {
        "nothing": _m(N, 0, N, N),
        "prospensity": _m(1, 1, N, N),  # the author's own will to use violence: a threat
        "propensity": _m(1, 1, N, N),
        "call2violence": _m(1, 1, N, N),  # calling on others to commit violence: incitement counts as threat
        "support": _m(N, N, N, N),  # approving of violence is not a threat by the author, nor a clean negative
        "glorification": _m(N, N, N, N),
        "other": _m(N, N, N, N),
    },
    # GermEval 2026 harmful content, subtask def (German tweets). Key: DEF/def, upper-cased. TRUE = a defamatory
    # offence under StGB 185-187 (Beleidigung, uble Nachrede, Verleumdung) against a person.
    "germeval2026_def": {
        "TRUE": _m(1, N, 1, N),
        # Every tweet was judged for 185 (insult), so FALSE rules out an insult to a person; it can still hold a
        # threat or identity hate, which this subtask did not annotate.
        "FALSE": _m(N, N, 0, N),
    },
    # OLID / OffensEval 2019 (English tweets). Key: (subtask_a, subtask_b, subtask_c).
    # OFF covers profanity and any targeted offence, veiled or direct, so NOT rules out all of ours.
    "olid": {
        ("NOT", "NULL", "NULL"): _m(0, 0, 0, 0),
        ("OFF", "UNT", "NULL"): _m(0, 0, 0, 0),  # untargeted profanity: aimed at no one
        ("OFF", "TIN", "IND"): _m(1, N, 1, N),  # TIN merges insults and threats: threat undecided
        # Group-targeted offence is identity_attack, not person-aimed aggression (definitions disagree: masked).
        # OLID's groups include political affiliation, so identity_attack = 1 here is a little noisy.
        ("OFF", "TIN", "GRP"): _m(N, N, 0, 1),
        ("OFF", "TIN", "OTH"): _m(N, N, 0, 0),  # an organisation, event or issue: neither a person nor a group
    },
    # Davidson et al. 2017 (English tweets). Key: class. Offensive is mostly casual slurs and profanity with no
    # target recorded, so it decides nothing about a person; hate is aimed at a group.
    "davidson2017": {
        "2": _m(0, 0, 0, 0),  # neither
        "1": _m(N, N, N, 0),  # offensive, explicitly not hate
        "0": _m(N, N, N, 1),  # hate speech
    },
    # Gab Hate Corpus (English). Key: the first of cv, hd, vo that is 1, else 'none'. cv (call for violence) and
    # hd (assault on human dignity) are both hate-based in GHC's typology, so both mean identity_attack.
    # Caveat: a threat that is not identity-based was out of the annotators' scope, so threat = 0 is a little noisy.
    "gab_hate_corpus": {
        "cv": _m(1, 1, N, 1),
        "hd": _m(N, 0, N, 1),
        "vo": _m(N, 0, N, 0),  # vulgarity or offence with no target recorded
        "none": _m(0, 0, 0, 0),
    },
    # Latent Hatred / implicit hate (English tweets). Stage 1 key: class. Stage 2 key: 'threatening' if either
    # column says so, else 'incitement' if either does, else 'other'. Every stage-2 post is implicit hate.
    "implicit_hate": {
        "not_hate": _m(N, N, N, 0),  # annotated for hate only: says nothing about insults or threats to a person
        "implicit_hate": _m(N, N, N, 1),
        "explicit_hate": _m(N, N, N, 1),
        "threatening": _m(1, 1, N, 1),  # 'commitment to violence': a threat
        # incitement here = promoting hate groups and ideologies; it may or may not call for violence.
        "incitement": _m(N, N, N, 1),
        "other": _m(N, 0, N, 1),  # annotators chose among seven classes including 'threatening' and did not pick it
    },
    # ETHOS (English YouTube/Reddit comments). Scores are annotator agreement in [0, 1]; ETHOS_THRESHOLD decides.
    # Multi-label file (hate comments only): key (violent, directed). Binary file: key isHate.
    "ethos": {
        ("violent", "directed"): _m(1, 1, N, 1),
        ("violent", "generalised"): _m(1, 1, N, 1),  # incites violence against people for their group
        ("not violent", "directed"): _m(1, 0, 1, 1),  # hate aimed at a person is abuse of that person
        ("not violent", "generalised"): _m(N, 0, 0, 1),  # hate at a group: definitions disagree on aggression
        "hate": _m(N, N, N, 1),
        "not hate": _m(N, N, N, 0),  # non-hate comments may still insult or threaten: only identity_attack decided
    },
    # RTP-LX Dutch (transcreated web text, not social media). Harm scores are the mean of three annotators on
    # 1 (absent) to 3; see RTP_LX_POSITIVE_AT. Insult in RTP-LX may target a person or a group (no target recorded).
    "rtp_lx": {
        "Insult": "insult",
        "Violence": "threat",  # 'Violence' also covers glorified or described violence: a noisy threat label
        "IdentityAttack": "identity_attack",
        # aggression = 1 if insult or threat is 1, 0 if both are 0, else None. Toxicity (1-5) names neither a kind
        # nor a target, so it is not mapped.
    },
}

# IMSyPP target codes grouped by what they say about who is attacked.
IMSYPP_TARGET_KIND = {
    **{code: "identity" for code in ("1. racism", "2. migrants", "3. islamophobia", "4. antisemitism", "5. religion",
                                     "6. homophobia", "7. sexism")},
    "8. ideology": "ideology",
    "9. media": "media_or_other",
    "10. politics": "politics",
    "11. individual": "individual",
    "12. other": "media_or_other",
}
ETHOS_THRESHOLD = 0.5  # majority of annotators (PROVENANCE.md)
RTP_LX_POSITIVE_AT = 2.0  # mean >= 2: on average at least "some" of the harm
RTP_LX_NEGATIVE_BELOW = 1.5  # mean < 1.5: at most one of three annotators saw a hint of it; in between: masked


class DatasetError(ValueError):
    """A dataset file cannot be used; the message names the file, line and column."""


@dataclass
class LabelledText:
    """A text with a label per category: 1, 0, or None where the dataset says nothing about that category."""

    text: str
    labels: dict[str, Label]
    source: str
    language: str
    group: str | None = None
    # The dataset's own class of the row where folds are stratified by it (IMSyPP's type), else None.
    stratum: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.labels) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")
        bad = {name: value for name, value in self.labels.items() if value not in (0, 1, None)}
        if bad:
            raise ValueError(f"labels must be 0, 1 or None, got {bad}")
        # Every record carries every category, so a missing key can never be mistaken for 0.
        self.labels = {name: self.labels.get(name) for name in CATEGORIES}


def _error(path: Path | str, line: int | str, column: str | None, problem: str) -> DatasetError:
    where = f"line {line}" + (f", column '{column}'" if column else "")
    return DatasetError(f"{path}: {where}: {problem}")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _lookup(path: Path, line: int, column: str, table: Mapping, key) -> dict[str, Label]:
    if key not in table:
        shown = key if isinstance(key, str) else " / ".join(str(part) for part in key)
        known = sorted({k if isinstance(k, str) else " / ".join(map(str, k)) for k in table})
        raise _error(path, line, column, f"unknown label {shown!r}; expected one of: {'; '.join(known)}")
    return dict(table[key])


def _open(path: Path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None


def _delimited_rows(
    path: Path, delimiter: str, required: Sequence[str], quoting: int = csv.QUOTE_MINIMAL
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first line of the record, row) from a headed CSV/TSV, checking the header and every row's width."""
    path = Path(path)
    with _open(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise _error(path, 1, None, "file is empty; expected a header line")
            header = [name.strip() for name in header]
            missing = [name for name in required if name not in header]
            if missing:
                raise _error(
                    path, 1, missing[0], f"missing column(s) {', '.join(missing)}; header has {', '.join(header)}"
                )
            previous_end = reader.line_num
            for fields in reader:
                start = previous_end + 1
                previous_end = reader.line_num
                if not fields or fields == [""]:
                    continue
                if len(fields) != len(header):
                    column = header[len(fields)] if len(fields) < len(header) else f"#{len(fields)}"
                    raise _error(
                        path,
                        start,
                        column,
                        f"expected {len(header)} fields separated by {delimiter!r}, found {len(fields)}",
                    )
                yield start, dict(zip(header, fields))
        except csv.Error as exc:
            raise _error(path, reader.line_num, None, f"malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 (byte {exc.start})") from None


def _text(raw: str | None, clean: Callable[[str], str] = _clean) -> str | None:
    # A row with no text left after cleaning (IMSyPP has five that hold only a segment marker) has nothing to learn
    # from or to score: readers skip it rather than fail the file.
    return clean(raw or "") or None


def _score(path: Path, line: int, column: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _error(path, line, column, f"expected a number, found {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise _error(path, line, column, f"expected a score between 0 and 1, found {raw!r}")
    return value


def read_imsypp(path: Path | str) -> list[LabelledText]:
    """Read IMSyPP-NL (CSV: row, doc, type, target); `-*-*-*-` segment markers are dropped from the text."""
    path = Path(path)
    records = []
    for line, row in _delimited_rows(path, ",", ("doc", "type", "target")):
        text = _text(row["doc"], lambda raw: _clean(raw.replace("-*-*-*-", " ")))
        if text is None:
            continue
        kind_of_type = row["type"].strip()
        target = row["target"].strip()
        if kind_of_type in ("2. offensive", "3. violent"):
            if target not in IMSYPP_TARGET_KIND:
                raise _error(
                    path, line, "target", f"offensive and violent rows need a target code (1-12), found {target!r}"
                )
            key = (kind_of_type, IMSYPP_TARGET_KIND[target])
        else:
            key = (kind_of_type, "")
        labels = _lookup(path, line, "type", LABEL_MAP["imsypp"], key)
        records.append(LabelledText(text, labels, "imsypp-nl", "nl", group=f"imsypp:{row.get('row', line)}",
                                    stratum=kind_of_type))
    return records


DALC_LEVELS = ("EXPLICIT", "IMPLICIT", "NOT")


def read_dalc(path: Path | str) -> list[LabelledText]:
    """Read DALC v2.0 full text (CSV: id, text, abusive, offensive_aggregated, target_aggregated, ...)."""
    path = Path(path)
    records = []
    for line, row in _delimited_rows(path, ",", ("id", "text", "abusive", "offensive_aggregated", "target_aggregated")):
        text = _text(row["text"])
        if text is None:
            continue
        for column in ("abusive", "offensive_aggregated"):
            if row[column].strip().upper() not in DALC_LEVELS:
                raise _error(path, line, column, f"expected one of {', '.join(DALC_LEVELS)}, found {row[column]!r}")
        abusive = row["abusive"].strip().upper() != "NOT"
        offensive = row["offensive_aggregated"].strip().upper() != "NOT"
        level = "ABUSIVE" if abusive else "OFFENSIVE" if offensive else "NOT"
        target = row["target_aggregated"].strip().upper()
        # The release writes an untargeted offence's target as NOT or leaves it empty; NOT rows have no target.
        target = "" if target == "NOT" or level == "NOT" else target
        labels = _lookup(path, line, "target_aggregated", LABEL_MAP["dalc"], (level, target))
        records.append(LabelledText(text, labels, "dalc-v2", "nl", group=f"dalc:{row['id'].strip()}"))
    return records


def _read_germeval_offense(path: Path | str, source: str) -> list[LabelledText]:
    path = Path(path)
    records = []
    # No header and no quoting: a tweet's quotes are literal, so the csv module would mangle them.
    with _open(path) as handle:
        try:
            for line, raw in enumerate(handle, start=1):
                raw = raw.rstrip("\r\n")
                if not raw.strip():
                    continue
                fields = raw.split("\t")
                if len(fields) != 3:
                    column = ("task1", "task2")[min(len(fields), 3) - 1] if len(fields) < 3 else "#4"
                    problem = f"expected 3 tab-separated fields (text, task1, task2), found {len(fields)}"
                    raise _error(path, line, column, problem)
                text = _text(fields[0], lambda value: _clean(value.replace("|LBR|", " ")))
                if text is None:
                    continue
                key = (fields[1].strip(), fields[2].strip())
                labels = _lookup(path, line, "task1/task2", LABEL_MAP["germeval"], key)
                records.append(LabelledText(text, labels, source, "de"))
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return records


def read_germeval2018(path: Path | str) -> list[LabelledText]:
    """Read GermEval 2018 (no header: text TAB OFFENSE|OTHER TAB ABUSE|INSULT|PROFANITY|OTHER)."""
    return _read_germeval_offense(path, "germeval2018")


def read_germeval2019(path: Path | str) -> list[LabelledText]:
    """Read GermEval 2019 subtasks 1 and 2 (same shape as GermEval 2018)."""
    return _read_germeval_offense(path, "germeval2019")


def read_germeval2021(path: Path | str) -> list[LabelledText]:
    """Read GermEval 2021 (CSV: comment_id, comment_text, Sub1_Toxic, Sub2_Engaging, Sub3_FactClaiming)."""
    path = Path(path)
    records = []
    for line, row in _delimited_rows(path, ",", ("comment_id", "comment_text", "Sub1_Toxic")):
        text = _text(row["comment_text"])
        if text is None:
            continue
        labels = _lookup(path, line, "Sub1_Toxic", LABEL_MAP["germeval2021"], row["Sub1_Toxic"].strip())
        records.append(LabelledText(text, labels, "germeval2021", "de"))
    return records


def _read_germeval2026(path: Path | str, subtask: str, source: str, normalise: Callable[[str], str]):
    path = Path(path)
    with _open(path) as handle:
        header = handle.readline()
    # The trial file of 'def' writes its label column in lower case.
    columns = [name.strip().strip('"') for name in header.split(";")]
    label_column = next((name for name in columns if name.lower() == subtask), subtask)
    records = []
    for line, row in _delimited_rows(path, ";", ("id", "description", label_column)):
        text = _text(row["description"])
        if text is None:
            continue
        labels = _lookup(path, line, label_column, LABEL_MAP[source], normalise(row[label_column].strip()))
        records.append(LabelledText(text, labels, source.replace("_", "-"), "de"))
    return records


def read_germeval2026_vio(path: Path | str) -> list[LabelledText]:
    """Read GermEval 2026 harmful content, subtask vio (CSV with ';': id, description, vio)."""
    return _read_germeval2026(path, "vio", "germeval2026_vio", str.lower)


def read_germeval2026_def(path: Path | str) -> list[LabelledText]:
    """Read GermEval 2026 harmful content, subtask def (CSV with ';': id, description, DEF)."""
    return _read_germeval2026(path, "def", "germeval2026_def", str.upper)


def read_olid(path: Path | str) -> list[LabelledText]:
    """Read OLID v1.0 in the training file's shape (TSV: id, tweet, subtask_a, subtask_b, subtask_c)."""
    path = Path(path)
    records = []
    for line, row in _delimited_rows(path, "\t", ("id", "tweet", "subtask_a", "subtask_b", "subtask_c")):
        text = _text(row["tweet"])
        if text is None:
            continue
        key = tuple(row[name].strip() for name in ("subtask_a", "subtask_b", "subtask_c"))
        labels = _lookup(path, line, "subtask_a/b/c", LABEL_MAP["olid"], key)
        records.append(LabelledText(text, labels, "olid", "en", group=f"olid:{row['id'].strip()}"))
    return records


def read_davidson2017(path: Path | str) -> list[LabelledText]:
    """Read Davidson et al. 2017 labeled_data.csv (count, hate_speech, offensive_language, neither, class, tweet)."""
    path = Path(path)
    records = []
    for line, row in _delimited_rows(path, ",", ("class", "tweet")):
        # The tweets keep the Twitter API's HTML escaping (&amp;, &#8220;).
        text = _text(row["tweet"], lambda raw: _clean(html.unescape(raw)))
        if text is None:
            continue
        labels = _lookup(path, line, "class", LABEL_MAP["davidson2017"], row["class"].strip())
        records.append(LabelledText(text, labels, "davidson2017", "en"))
    return records


def read_gab_hate_corpus(path: Path | str) -> list[LabelledText]:
    """Read the Gab Hate Corpus (TSV: text, hd, cv, vo; majority votes 0/1)."""
    path = Path(path)
    records = []
    for line, row in _delimited_rows(path, "\t", ("text", "hd", "cv", "vo")):
        text = _text(row["text"])
        if text is None:
            continue
        flags = {}
        for column in ("cv", "hd", "vo"):
            value = row[column].strip()
            if value not in ("0", "1"):
                raise _error(path, line, column, f"expected 0 or 1, found {value!r}")
            flags[column] = value == "1"
        key = next((column for column in ("cv", "hd", "vo") if flags[column]), "none")
        records.append(LabelledText(text, dict(LABEL_MAP["gab_hate_corpus"][key]), "gab-hate-corpus", "en"))
    return records


def read_implicit_hate(path: Path | str) -> list[LabelledText]:
    """Read implicit-hate posts: stage 1 (post, class) or stage 2 (post, implicit_class, extra_implicit_class)."""
    path = Path(path)
    with _open(path) as handle:
        header = [name.strip() for name in handle.readline().rstrip("\r\n").split("\t")]
    stage2 = "implicit_class" in header
    required = ("post", "implicit_class", "extra_implicit_class") if stage2 else ("post", "class")
    table = LABEL_MAP["implicit_hate"]
    stage2_classes = {"white_grievance", "incitement", "inferiority", "irony", "stereotypical", "threatening", "other"}
    records = []
    for line, row in _delimited_rows(path, "\t", required):
        text = _text(row["post"])
        if text is None:
            continue
        if stage2:
            classes = {row["implicit_class"].strip(), row["extra_implicit_class"].strip()} - {"", "None"}
            unknown = classes - stage2_classes
            if unknown or not classes:
                problem = f"expected one of {', '.join(sorted(stage2_classes))}, found {sorted(unknown) or 'nothing'}"
                raise _error(path, line, "implicit_class", problem)
            key = "threatening" if "threatening" in classes else "incitement" if "incitement" in classes else "other"
            labels = dict(table[key])
        else:
            value = row["class"].strip()
            if value not in ("not_hate", "implicit_hate", "explicit_hate"):
                raise _error(path, line, "class", f"expected not_hate, implicit_hate or explicit_hate, found {value!r}")
            labels = dict(table[value])
        records.append(LabelledText(text, labels, "implicit-hate", "en"))
    return records


def read_ethos(path: Path | str) -> list[LabelledText]:
    """Read ETHOS, binary (comment;isHate) or multi-label (comment;violence;directed_vs_generalized;...) file."""
    path = Path(path)
    with _open(path) as handle:
        header = [name.strip() for name in handle.readline().rstrip("\r\n").split(";")]
    multi = "violence" in header
    required = ("comment", "violence", "directed_vs_generalized") if multi else ("comment", "isHate")
    table = LABEL_MAP["ethos"]
    records = []
    for line, row in _delimited_rows(path, ";", required):
        text = _text(row["comment"])
        if text is None:
            continue
        if multi:
            violent = _score(path, line, "violence", row["violence"]) >= ETHOS_THRESHOLD
            directed = _score(path, line, "directed_vs_generalized", row["directed_vs_generalized"]) >= ETHOS_THRESHOLD
            key = ("violent" if violent else "not violent", "directed" if directed else "generalised")
        else:
            key = "hate" if _score(path, line, "isHate", row["isHate"]) >= ETHOS_THRESHOLD else "not hate"
        records.append(LabelledText(text, dict(table[key]), "ethos", "en"))
    return records


def rtp_lx_label(mean: float) -> Label:
    """Map an RTP-LX harm mean (1-3) to 1, 0 or None (annotators split)."""
    if mean >= RTP_LX_POSITIVE_AT:
        return 1
    if mean < RTP_LX_NEGATIVE_BELOW:
        return 0
    return None


def _json_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every non-empty line of a JSON Lines file; raise on a line that is not one."""
    with _open(path) as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise _error(path, line, None, f"not valid JSON ({exc.msg}, character {exc.pos + 1})") from None
            if not isinstance(item, dict):
                raise _error(path, line, None, "expected a JSON object")
            yield line, item


def read_rtp_lx(path: Path | str) -> list[LabelledText]:
    """Read RTP-LX (JSON lines: Prompt, Locale, Annotations {Toxicity, Insult, Violence, IdentityAttack, ...})."""
    path = Path(path)
    records = []
    for line, item in _json_objects(path):
        text = _text(item.get("Prompt") if isinstance(item.get("Prompt"), str) else "")
        if text is None:
            continue
        annotations = item.get("Annotations")
        if not isinstance(annotations, dict):
            raise _error(path, line, "Annotations", "missing or not an object")
        labels: dict[str, Label] = {}
        for field, category in LABEL_MAP["rtp_lx"].items():
            value = annotations.get(field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 3:
                problem = f"expected a mean score from 1 to 3, found {value!r}"
                raise _error(path, line, f"Annotations.{field}", problem)
            labels[category] = rtp_lx_label(float(value))
        if 1 in (labels["insult"], labels["threat"]):
            labels["aggression"] = 1
        elif labels["insult"] == 0 and labels["threat"] == 0:
            labels["aggression"] = 0
        language = str(item.get("Locale") or "nl").lower()
        records.append(LabelledText(text, labels, "rtp-lx-nl", language, group=f"rtp-lx:{item.get('Index', line)}"))
    return records


def _parse_labels(path: Path, line: int, value) -> dict[str, Label]:
    """Turn a JSONL `labels` field into labels: a dict names what is known, a list names every category that applies."""
    if isinstance(value, list):
        unknown = [name for name in value if name not in CATEGORIES]
        if unknown:
            raise _error(path, line, "labels", f"unknown category {unknown[0]!r}; known: {', '.join(CATEGORIES)}")
        # A list is a complete judgement, as a reviewer gives it: what it leaves out is 0.
        return {name: int(name in value) for name in CATEGORIES}
    if isinstance(value, dict):
        labels: dict[str, Label] = {}
        for name, label in value.items():
            if name not in CATEGORIES:
                raise _error(path, line, f"labels.{name}", f"unknown category; known: {', '.join(CATEGORIES)}")
            if label is None:
                labels[name] = None
            elif label in (0, 1) and not isinstance(label, float):
                labels[name] = int(label)
            else:
                raise _error(path, line, f"labels.{name}", f"expected 0, 1, true, false or null, found {label!r}")
        return labels
    raise _error(path, line, "labels", "expected an object of category -> 0/1/null or a list of category names")


def _read_jsonl(path: Path | str, source: str | None, language: str, require_functionality: bool) -> list[LabelledText]:
    path = Path(path)
    records = []
    for line, item in _json_objects(path):
        if not isinstance(item.get("text"), str):
            raise _error(path, line, "text", "missing or not a string")
        text = _text(item["text"])
        if text is None:
            continue
        if "labels" not in item:
            raise _error(path, line, "labels", "missing")
        labels = _parse_labels(path, line, item["labels"])
        group = item.get("functionality", item.get("group"))
        if require_functionality and not (isinstance(group, str) and group.strip()):
            raise _error(path, line, "functionality", "missing or empty")
        records.append(
            LabelledText(
                text,
                labels,
                str(item.get("source") or source or path.stem),
                str(item.get("language") or item.get("lang") or language),
                group=None if group is None else str(group),
            )
        )
    return records


def read_jsonl(path: Path | str, source: str | None = None, language: str = "nl") -> list[LabelledText]:
    """Read JSONL of {"text", "labels": {category: 0/1/null} or [category, ...]} (optional language, source, group)."""
    return _read_jsonl(path, source, language, require_functionality=False)


def read_functional_suite(path: Path | str, language: str = "nl") -> list[LabelledText]:
    """Read a functional test suite (JSONL of {"functionality", "text", "labels"}); functionality becomes the group."""
    return _read_jsonl(path, "suite", language, require_functionality=True)


def read_reviews(db_path: Path | str) -> list[LabelledText]:
    """Read reviewed mentions from a Weerbaar database: the latest judgement per mention, unlisted categories as 0."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise DatasetError(f"{db_path}: file not found")
    # Read-only: evaluation must never migrate or lock the live database.
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        # Since the review desk (migration m301) a row may only claim a mention ('in_review'): it holds no judgement.
        columns = {row[1] for row in connection.execute("PRAGMA table_info(reviews)")}
        judgement = "AND r2.status != 'in_review'" if "status" in columns else ""
        rows = connection.execute(
            f"""
            SELECT r.id, r.mention_id, r.labels, m.text, m.lang
            FROM reviews r JOIN mentions m ON m.id = r.mention_id
            WHERE r.id = (
                SELECT r2.id FROM reviews r2 WHERE r2.mention_id = r.mention_id {judgement}
                ORDER BY r2.reviewed_at DESC, r2.id DESC LIMIT 1
            )
            ORDER BY r.mention_id
            """
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DatasetError(f"{db_path}: not a Weerbaar database with reviews and mentions ({exc})") from None
    finally:
        connection.close()
    records = []
    for review_id, mention_id, raw_labels, text, lang in rows:
        where = f"reviews row id {review_id}"
        try:
            names = json.loads(raw_labels)
        except json.JSONDecodeError:
            raise _error(db_path, where, "labels", f"not valid JSON: {raw_labels[:40]!r}") from None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise _error(db_path, where, "labels", "expected a JSON list of category names")
        unknown = [name for name in names if name not in CATEGORIES]
        if unknown:
            raise _error(db_path, where, "labels", f"unknown category {unknown[0]!r}; known: {', '.join(CATEGORIES)}")
        records.append(
            LabelledText(
                _clean(text),
                {name: int(name in names) for name in CATEGORIES},
                "reviews",
                lang or "nl",
                group=f"mention:{mention_id}",
            )
        )
    return records


def read_annotations(db_path: Path | str) -> list[LabelledText]:
    """Read annotated mentions from a Weerbaar database: per category the annotators' majority, a tie left None."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise DatasetError(f"{db_path}: file not found")
    # Read-only: training must never migrate or lock the live database.
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            """SELECT a.id, a.mention_id, a.labels, m.text, m.lang FROM annotations a
               JOIN mentions m ON m.id = a.mention_id ORDER BY a.mention_id, a.id"""
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DatasetError(f"{db_path}: not a Weerbaar database with annotations and mentions ({exc})") from None
    finally:
        connection.close()
    votes: dict[int, list[set[str]]] = {}
    texts: dict[int, tuple[str, str | None]] = {}
    for annotation_id, mention_id, raw_labels, text, lang in rows:
        where = f"annotations row id {annotation_id}"
        try:
            names = json.loads(raw_labels)
        except json.JSONDecodeError:
            raise _error(db_path, where, "labels", f"not valid JSON: {raw_labels[:40]!r}") from None
        if not isinstance(names, list) or any(name not in CATEGORIES for name in names):
            raise _error(db_path, where, "labels", f"expected a JSON list of: {', '.join(CATEGORIES)}")
        votes.setdefault(mention_id, []).append(set(names))
        texts[mention_id] = (text, lang)
    records = []
    for mention_id, given in votes.items():
        labels: dict[str, Label] = {}
        for name in CATEGORIES:
            yes = sum(name in labels_given for labels_given in given)
            labels[name] = 1 if 2 * yes > len(given) else 0 if 2 * yes < len(given) else None
        text, lang = texts[mention_id]
        records.append(LabelledText(_clean(text), labels, "annotations", lang or "nl", group=f"mention:{mention_id}"))
    return records


def template_records(templates: Sequence) -> list[LabelledText]:
    """Turn generated threat TemplateTexts into records: threat as generated; a threat is aggression, else unknown."""
    # Hard negatives include insults without a threat, so a non-threat template says nothing about aggression.
    return [
        LabelledText(
            t.text,
            {"aggression": 1 if t.threat else None, "threat": int(t.threat)},
            "threat-templates",
            "nl",
            group=f"template:{t.family}",
        )
        for t in templates
    ]


def read_threat_templates(path: Path | str) -> list[LabelledText]:
    """Generate a split of monitor/training/threat_templates.py: 'eval' (the held-out threat suite) or 'train', 60 a
    family.

    Seed 0 by default; 'eval:1' takes seed 1. The family is each record's group.
    """
    from .threat_templates import EVALUATION, TRAIN, generate_templates

    split, _, seed = str(path).partition(":")
    splits = {"eval": EVALUATION, "train": TRAIN}
    if split not in splits or (seed and not seed.isdigit()):
        raise DatasetError(f"threat-templates:{path}: expected 'eval' or 'train', optionally ':SEED' (e.g. eval:1)")
    return template_records(generate_templates(int(seed or 0), 60, splits[split]))


IMSYPP_RELABELS = Path(__file__).resolve().parents[2] / "models" / "corpus" / "relabels" / "imsypp-nl.csv"


def read_imsypp_relabelled(path: Path | str, relabels: Path = IMSYPP_RELABELS) -> list[LabelledText]:
    """Read IMSyPP-NL with the team's own labels on its offensive and violent rows (models/corpus/relabels/).

    The team labelled those rows by models/GUIDELINES.md (which "violent" rows are threats at a person, which
    "offensive" rows insult one). Threat, insult and identity attack come from there; aggression stays IMSyPP's
    ("offensive or violent"), the definition the evaluation of real posts uses (models/LABELS.md).
    """
    ours = {}
    for line, row in _delimited_rows(Path(relabels), ",", ("row", *CATEGORIES, "target")):
        try:
            ours[row["row"].strip()] = {c: int(row[c]) for c in CATEGORIES if c != "aggression"}
        except ValueError:
            raise _error(relabels, line, "labels", "expected 0 or 1 in every category column") from None
    records = read_imsypp(path)
    for record in records:
        relabel = ours.get(record.group.removeprefix("imsypp:"))
        if relabel is not None and record.labels["aggression"] == 1:
            record.labels.update(relabel)
    return records


def read_corpus(path: Path | str) -> list[LabelledText]:
    """Read Weerbaar's own corpus: 'train' or 'eval' of models/corpus/, or a folder of family files (monitor/training/corpus.py)."""
    from .corpus import read_corpus_dataset

    return read_corpus_dataset(path)


READERS: dict[str, Callable[[Path], list[LabelledText]]] = {
    "imsypp": read_imsypp,
    "dalc": read_dalc,
    "germeval2018": read_germeval2018,
    "germeval2019": read_germeval2019,
    "germeval2021": read_germeval2021,
    "germeval2026-vio": read_germeval2026_vio,
    "germeval2026-def": read_germeval2026_def,
    "olid": read_olid,
    "davidson2017": read_davidson2017,
    "gab-hate-corpus": read_gab_hate_corpus,
    "implicit-hate": read_implicit_hate,
    "ethos": read_ethos,
    "rtp-lx": read_rtp_lx,
    "jsonl": read_jsonl,
    "suite": read_functional_suite,
    "reviews": read_reviews,
    "threat-templates": read_threat_templates,
    "corpus": read_corpus,
    "imsypp-ours": read_imsypp_relabelled,
}


PART_SUFFIX = re.compile(r"#part=(\d+)/(\d+)$")


def read_dataset(spec: str) -> list[LabelledText]:
    """Read a dataset given as FORMAT:PATH, e.g. 'imsypp:/data/imsypp-nl/train.csv' or 'reviews:var/weerbaar.db'.

    A suffix '#part=K/N' keeps part K of N (see dataset_part), so that one file can train on one part and be
    evaluated on another: 'rtp-lx:RTP_LX_NL.json#part=1/2' and 'rtp-lx:RTP_LX_NL.json#part=2/2'."""
    name, separator, path = spec.partition(":")
    if not separator or not path:
        raise DatasetError(f"{spec!r}: expected FORMAT:PATH; formats: {', '.join(READERS)}")
    if name not in READERS:
        raise DatasetError(f"{spec!r}: unknown format {name!r}; formats: {', '.join(READERS)}")
    part = PART_SUFFIX.search(path)
    if part is None:
        return READERS[name](Path(path))
    index, count = int(part[1]), int(part[2])
    if count < 2 or not 1 <= index <= count:
        raise DatasetError(f"{spec!r}: '#part=K/N' needs N of at least 2 and K from 1 to N")
    return dataset_part(READERS[name](Path(path[: part.start()])), index, count)


def dataset_part(records: Sequence[LabelledText], index: int, count: int) -> list[LabelledText]:
    """Return part INDEX (1-based) of COUNT: the rows whose group (else text) hashes to it. The parts are disjoint,
    cover every row, keep a group's rows together and do not change when rows are added or reordered."""
    def part_of(record: LabelledText) -> int:
        key = (record.group or record.text).encode("utf-8")
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % count

    return [r for r in records if part_of(r) == index - 1]


def label_balance(records: Sequence[LabelledText]) -> dict[str, dict[str, int]]:
    """Count 1, 0 and None (masked) per category."""
    balance = {name: {"positive": 0, "negative": 0, "masked": 0} for name in CATEGORIES}
    for record in records:
        for name, label in record.labels.items():
            balance[name]["positive" if label == 1 else "negative" if label == 0 else "masked"] += 1
    return balance
