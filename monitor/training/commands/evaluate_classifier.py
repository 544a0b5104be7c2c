"""Evaluate a trained Weerbaar classifier, as it is, on labelled datasets and a functional test suite.

Example:

    python scripts/evaluate_classifier.py \\
        --data imsypp:/work/shared/data/imsypp-nl/train.csv \\
        --data rtp-lx:/work/shared/data/rtp-lx-nl/RTP_LX_NL.json \\
        --suite tests/suite.jsonl --out var/evaluation.json

The classifier is the one the settings name (--config, else $WEERBAAR_CONFIG, else config/weerbaar.toml), or
--model with --model-path. Thresholds come from the settings unless --threshold overrides them. The false-alarm
threshold is chosen on the first --data set (or --calibrate-on) and applied to all of them. Formats: see
monitor/training/datasets.py READERS; label mappings: models/LABELS.md. Datasets stay where they are: their licences
keep them out of this repository. Cross-validating training is scripts/train_classifier.py's job, not this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from monitor.classifier import load_classifier, model_label
from monitor.settings import SettingsError, load_settings
from monitor.training.datasets import READERS, DatasetError, read_dataset, read_functional_suite
from monitor.training.evaluation import evaluate_classifier


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FORMAT:PATH",
        help=f"a labelled dataset (repeatable; PATH#part=K/N: part K of N); formats: {', '.join(READERS)}",
    )
    parser.add_argument("--suite", type=Path, help='functional suite JSONL: {"functionality", "text", "labels"}')
    parser.add_argument("--config", type=Path, help="settings TOML (default: $WEERBAAR_CONFIG or config/weerbaar.toml)")
    parser.add_argument("--model", help="classifier backend name, instead of the one in the settings")
    parser.add_argument("--model-path", type=Path, help="model folder, instead of the one in the settings")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="CATEGORY=VALUE",
        help="label threshold for a category (repeatable; default from the settings)",
    )
    parser.add_argument(
        "--false-alarm-rate",
        type=float,
        default=0.05,
        help="false-alarm rate the alarm threshold is set at (default 0.05)",
    )
    parser.add_argument("--calibrate-on", metavar="FORMAT:PATH", help="the --data set the alarm threshold is chosen on")
    parser.add_argument("--phenomena", choices=("train", "eval"), metavar="SPLIT",
                        help="also report per phenomenon on a split of the team's corpus (eval: the held-out families)")
    parser.add_argument("--limit", type=int, help="use only the first N rows of each dataset (a quick check)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    arguments = parser.parse_args(argv)
    if not arguments.data and arguments.suite is None:
        parser.error("give at least one --data FORMAT:PATH or a --suite")
    return arguments


def _thresholds(pairs: list[str], defaults: dict[str, float]) -> dict[str, float]:
    thresholds = dict(defaults)
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            thresholds[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--threshold {pair!r}: expected CATEGORY=NUMBER") from None
    return thresholds


METRIC_COLUMNS = ("precision", "recall", "f1", "macro_f1", "average_precision", "ece")


def _format(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(report: dict) -> None:
    """Print one line per dataset and category."""
    print(f"model {report['model']}; alarm threshold at {report['false_alarm']['rate']} false alarms, "
          f"chosen on {report['false_alarm']['chosen_on']}")
    header = ("dataset", "category", "rows", "pos", "P", "R", "F1", "macroF1", "AP", "ECE", "R@FA", "FA")
    print("  ".join(f"{column:>8}" if index > 1 else f"{column:<24}"[:24] for index, column in enumerate(header)))
    for name, dataset in report["datasets"].items():
        for category, metrics in dataset["categories"].items():
            alarm = metrics.get("at_alarm_threshold", {})
            cells = (
                Path(name.partition(":")[2]).name or name,
                category,
                str(metrics["rows"]),
                str(metrics["positives"]),
                *(_format(metrics[key]) for key in METRIC_COLUMNS),
                _format(alarm.get("recall")),
                _format(alarm.get("false_alarm_rate")),
            )
            print("  ".join(f"{cell:>8}" if index > 1 else f"{cell:<24}"[:24] for index, cell in enumerate(cells)))
    if "suite" in report:
        suite = report["suite"]
        print(f"functional suite: {suite['cases']} cases, pass rate {_format(suite['pass_rate'])}")
        for functionality, result in suite["functionalities"].items():
            print(f"  {functionality:<40} {result['passed']:>4}/{result['cases']:<4} {result['pass_rate']:.3f}")


def print_phenomena(phenomena: dict) -> None:
    """Print the per-phenomenon table: recall on positive families, false alarms on hard negatives."""
    columns = {"threat_recall": "threat R", "insult_recall": "insult R", "identity_attack_recall": "identity R",
               "aggression_recall": "aggr R", "aggression_false_alarms": "aggr FA", "threat_false_alarms": "threat FA"}
    print(f"corpus {phenomena['split']} families, per phenomenon (each message by its own labels)")
    print(f"{'phenomenon':<24}{'messages':>9}" + "".join(f"{name:>11}" for name in columns.values()))
    for phenomenon, entry in phenomena["results"].items():
        print(f"{phenomenon:<24}{entry['messages']:>9}" + "".join(f"{_format(entry.get(c)):>11}" for c in columns))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    """Load the classifier and the data, evaluate, print and write the report."""
    arguments = parse_arguments(argv)
    try:
        settings = load_settings(arguments.config)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    update = {}
    if arguments.model:
        update["model"] = arguments.model
    if arguments.model_path:
        update["model_path"] = arguments.model_path
    if update:
        settings.classifier = settings.classifier.model_copy(update=update)
    try:
        datasets = {spec: read_dataset(spec) for spec in arguments.data}
        suite = read_functional_suite(arguments.suite) if arguments.suite else None
    except DatasetError as exc:
        print(exc, file=sys.stderr)
        return 2
    if arguments.calibrate_on and arguments.calibrate_on not in datasets:
        print(f"--calibrate-on {arguments.calibrate_on!r} must be one of the --data sets", file=sys.stderr)
        return 2
    if arguments.limit:
        datasets = {spec: records[: arguments.limit] for spec, records in datasets.items()}
    try:
        classifier = load_classifier(settings)
    except (ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    thresholds = _thresholds(arguments.threshold, settings.classifier.thresholds)
    print(f"evaluating {model_label(classifier)} on {sum(map(len, datasets.values()))} rows", file=sys.stderr)
    report = evaluate_classifier(
        classifier,
        datasets,
        thresholds,
        suite=suite,
        false_alarm_rate=arguments.false_alarm_rate,
        calibrate_on=arguments.calibrate_on,
    )
    if arguments.phenomena:
        from ..corpus import evaluate_phenomena

        report["phenomena"] = {"split": arguments.phenomena,
                               "results": evaluate_phenomena(classifier, thresholds, arguments.phenomena)}
    report["command"] = ["scripts/evaluate_classifier.py", *(argv if argv is not None else sys.argv[1:])]
    print_table(report)
    if "phenomena" in report:
        print_phenomena(report["phenomena"])
    if arguments.out:
        _write_atomically(arguments.out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {arguments.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
