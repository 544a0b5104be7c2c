"""Weerbaar's own Dutch corpus (models/corpus/): reading it, checking it, and its agreement and per-phenomenon figures.

The corpus is written in families: one phenomenon (models/corpus/DATASHEET.md lists them) by one writer, one JSON
Lines file each, `<split>/<writer>-<phenomenon>.jsonl`. A family is wholly in training or wholly in evaluation, and
the evaluation families come from a writer who wrote no training family, so the held-out figures measure how the
model handles a phenomenon written by someone else. Labels follow models/GUIDELINES.md.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..agreement import cohen_kappa
from .datasets import CATEGORIES, DatasetError, LabelledText

CORPUS_DIR = Path(__file__).resolve().parents[2] / "models" / "corpus"
SPLITS = ("train", "eval")
TARGETS = ("official", "person", "group", "none")
REGISTERS = ("formal", "informal", "street", "youth", "flemish", "regional", "typos", "english_mix")
TOPICS = ("housing", "asylum", "wind_turbines", "nitrogen", "farmers", "parking", "taxes", "schools", "cycling",
          "traffic", "waste", "events", "safety", "budget", "climate", "energy", "other")
# Each phenomenon and the category its family is about: positives are measured by recall of that category, hard
# negatives by how often the model raises aggression or threat on them.
POSITIVE_PHENOMENA = {
    "threat_direct": "threat", "threat_conditional": "threat", "threat_veiled_family": "threat",
    "threat_veiled_home": "threat", "threat_call": "threat", "threat_obfuscated": "threat", "threat_others": "threat",
    "harm_wish": "insult", "insult_name_calling": "insult", "insult_swear_compound": "insult",
    "insult_question": "insult", "insult_sarcasm": "insult", "insult_implicit": "insult",
    "insult_obfuscated": "insult", "identity_official": "identity_attack", "identity_group": "identity_attack",
    "negated_positive": "insult",
}
HARD_NEGATIVE_PHENOMENA = (
    "criticism_policy", "complaint_local", "figurative_violence", "news_reported", "counter_speech",
    "negation_nonthreat", "profanity_untargeted", "object_abuse", "neutral_mention", "identity_neutral",
    "political_action", "violence_nonhuman",
)
PHENOMENA = (*POSITIVE_PHENOMENA, *HARD_NEGATIVE_PHENOMENA)
_FAMILY_FILE = re.compile(r"(?P<writer>w\d+)-(?P<phenomenon>[a-z_]+)\.jsonl")
_FIELDS = {"id", "text", *CATEGORIES, "target", "register", "topic"}


@dataclass(frozen=True)
class CorpusMessage:
    """One message of the corpus with its labels, target and the family it belongs to."""

    id: str
    text: str
    labels: dict[str, int]
    target: str
    register: str
    topic: str
    writer: str
    phenomenon: str
    split: str

    @property
    def family(self) -> str:
        """Return the family id, writer and phenomenon: '<writer>-<phenomenon>'."""
        return f"{self.writer}-{self.phenomenon}"


def corpus_files(split: str, root: Path = CORPUS_DIR) -> list[Path]:
    """Return the family files of SPLIT ('train' or 'eval') under ROOT, sorted."""
    if split not in SPLITS:
        raise DatasetError(f"corpus split {split!r}: expected one of {', '.join(SPLITS)}")
    return sorted((root / split).glob("*.jsonl"))


def read_family(path: Path) -> list[CorpusMessage]:
    """Read and check one family file; raise DatasetError naming the file, line and field of the first problem."""
    name = _FAMILY_FILE.fullmatch(path.name)
    if name is None or name["phenomenon"] not in PHENOMENA:
        raise DatasetError(f"{path}: not a family file: expected <writer>-<phenomenon>.jsonl with a phenomenon of "
                           f"{', '.join(PHENOMENA)}")
    split = path.parent.name
    messages = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}, line {number}: not JSON: {exc.msg}") from None
            messages.append(_message(path, number, item, name["writer"], name["phenomenon"], split))
    return messages


def _message(path: Path, line: int, item: object, writer: str, phenomenon: str, split: str) -> CorpusMessage:
    def fail(field: str, problem: str) -> DatasetError:
        return DatasetError(f"{path}, line {line}: field '{field}': {problem}")

    if not isinstance(item, dict):
        raise fail("-", "expected a JSON object")
    missing = _FIELDS - set(item)
    if missing:
        raise fail(sorted(missing)[0], "missing")
    prefix = f"{writer}-{phenomenon}-"
    if not (isinstance(item["id"], str) and item["id"].startswith(prefix) and item["id"][len(prefix):].isdigit()):
        raise fail("id", f"expected {prefix}NNNN, got {item['id']!r}")
    if not isinstance(item["text"], str) or not item["text"].strip():
        raise fail("text", "missing or empty")
    labels = {}
    for category in CATEGORIES:
        if item[category] not in (0, 1) or isinstance(item[category], bool):
            raise fail(category, f"expected 0 or 1, got {item[category]!r}")
        labels[category] = item[category]
    if labels["aggression"] == 0 and any(labels[c] for c in CATEGORIES if c != "aggression"):
        raise fail("aggression", "0, but threat, insult or identity_attack is 1 (they imply aggression)")
    for field, allowed in (("target", TARGETS), ("register", REGISTERS), ("topic", TOPICS)):
        if item[field] not in allowed:
            raise fail(field, f"expected one of {', '.join(allowed)}, got {item[field]!r}")
    return CorpusMessage(item["id"], item["text"], labels, item["target"], item["register"], item["topic"], writer,
                         phenomenon, split)


def read_corpus(split: str, root: Path = CORPUS_DIR) -> list[CorpusMessage]:
    """Read every family of SPLIT, checking ids are unique."""
    messages = [message for path in corpus_files(split, root) for message in read_family(path)]
    seen = Counter(message.id for message in messages)
    doubled = [identifier for identifier, count in seen.items() if count > 1]
    if doubled:
        raise DatasetError(f"{root / split}: ids used twice: {', '.join(sorted(doubled)[:5])}")
    return messages


def read_corpus_dataset(path: Path | str) -> list[LabelledText]:
    """Read 'train' or 'eval' of the bundled corpus, or a folder of family files, as labelled texts (see READERS).

    Each record's group is its family, so a split by group ('#part=K/N', cross-validation) keeps a family whole.
    """
    path = Path(path)
    messages = read_corpus(str(path)) if str(path) in SPLITS else read_corpus(path.name, path.parent)
    return [LabelledText(m.text, dict(m.labels), "weerbaar-corpus", "nl", group=f"{GROUP_PREFIX}{m.family}")
            for m in messages]


GROUP_PREFIX = "corpus:"


def group_phenomenon(group: str | None) -> str | None:
    """Return the phenomenon of a record read by read_corpus_dataset from its GROUP ('corpus:<writer>-<phenomenon>'),
    or None for a record from elsewhere."""
    if not group or not group.startswith(GROUP_PREFIX):
        return None
    return group.removeprefix(GROUP_PREFIX).partition("-")[2]


def comparable_text(text: str) -> str:
    """Return TEXT reduced for near-copy checks: lower case, no handles, links or punctuation, single spaces."""
    text = re.sub(r"https?://\S+|@\S+", " ", text.lower())
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def split_overlaps(train: Iterable[CorpusMessage], evaluation: Iterable[CorpusMessage]) -> dict[str, list[str]]:
    """Return what the evaluation split shares with training: families, writers, and near-copies of texts."""
    train, evaluation = list(train), list(evaluation)
    texts = defaultdict(list)
    for message in train:
        texts[comparable_text(message.text)].append(message.id)
    return {
        "families": sorted({m.family for m in train} & {m.family for m in evaluation}),
        "writers": sorted({m.writer for m in train} & {m.writer for m in evaluation}),
        "texts": sorted(f"{m.id} = {', '.join(texts[comparable_text(m.text)])}" for m in evaluation
                        if comparable_text(m.text) in texts),
    }


def agreement(first: Mapping[str, Mapping[str, object]], second: Mapping[str, Mapping[str, object]]) -> dict:
    """Return kappa per category (and raw agreement on target) over the ids both labellers labelled."""
    ids = sorted(set(first) & set(second))
    report = {"items": len(ids), "kappa": {}, "agreement": {}, "disagreements": {}}
    for category in CATEGORIES:
        a = [int(first[i][category]) for i in ids]
        b = [int(second[i][category]) for i in ids]
        kappa = cohen_kappa(a, b)
        # Undefined only when both labellers gave one and the same label to every item: full agreement.
        report["kappa"][category] = round(kappa, 3) if kappa is not None else 1.0
        report["agreement"][category] = round(sum(x == y for x, y in zip(a, b)) / len(ids), 3)
        report["disagreements"][category] = [i for i, x, y in zip(ids, a, b) if x != y]
    targets = [first[i]["target"] == second[i]["target"] for i in ids]
    report["agreement"]["target"] = round(sum(targets) / len(ids), 3)
    return report


def phenomenon_report(messages: Sequence[CorpusMessage], scores: Sequence[Mapping[str, float]],
                      thresholds: Mapping[str, float]) -> dict[str, dict]:
    """Return per phenomenon: on positive families the recall of their category and of aggression; on hard negatives
    the share wrongly raised to aggression or threat. Each message counts by its own labels, not its family's."""
    by_phenomenon: dict[str, list[tuple[CorpusMessage, Mapping[str, float]]]] = defaultdict(list)
    for message, score in zip(messages, scores):
        by_phenomenon[message.phenomenon].append((message, score))

    def raised(score: Mapping[str, float], category: str) -> bool:
        return score.get(category, 0.0) >= thresholds.get(category, 0.5)

    report = {}
    for phenomenon in PHENOMENA:
        rows = by_phenomenon.get(phenomenon, [])
        if not rows:
            continue
        entry: dict[str, object] = {"messages": len(rows)}
        if phenomenon in POSITIVE_PHENOMENA:
            category = POSITIVE_PHENOMENA[phenomenon]
            for name in dict.fromkeys((category, "aggression")):
                positives = [s for m, s in rows if m.labels[name] == 1]
                if positives:
                    entry[f"{name}_recall"] = round(sum(raised(s, name) for s in positives) / len(positives), 3)
                    entry[f"{name}_positives"] = len(positives)
        negatives = [s for m, s in rows if m.labels["aggression"] == 0]
        if negatives:
            for name in ("aggression", "threat"):
                entry[f"{name}_false_alarms"] = round(sum(raised(s, name) for s in negatives) / len(negatives), 3)
            entry["negatives"] = len(negatives)
        report[phenomenon] = entry
    return report


def read_second_pass(path: Path) -> dict[str, dict]:
    """Read a second labeller's file ({"id", the four categories, "target"} per line) as {id: labels and target}."""
    labels = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            item = json.loads(line)
            for field in (*CATEGORIES, "target"):
                if field not in item:
                    raise DatasetError(f"{path}, line {number}: field '{field}': missing")
            labels[item["id"]] = item
    return labels


def second_pass_agreement(root: Path = CORPUS_DIR) -> dict[str, dict]:
    """Return the agreement of every second labeller in ROOT/second_pass with the writers' labels."""
    written = {m.id: dict(m.labels, target=m.target) for split in SPLITS for m in read_corpus(split, root)}
    return {path.stem: agreement(written, read_second_pass(path))
            for path in sorted((root / "second_pass").glob("*.jsonl"))}


def evaluate_phenomena(classifier, thresholds: Mapping[str, float], split: str = "eval",
                       root: Path = CORPUS_DIR) -> dict[str, dict]:
    """Score SPLIT of the corpus with CLASSIFIER and return phenomenon_report at THRESHOLDS."""
    messages = read_corpus(split, root)
    return phenomenon_report(messages, classifier.score([m.text for m in messages]), thresholds)
