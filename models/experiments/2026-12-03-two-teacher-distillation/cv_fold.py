"""One cross-validation fold of 2026.12.5's recipe on IMSyPP-NL: both teachers and the student trained on the fold.

    .venv/bin/python models/experiments/2026-12-03-two-teacher-distillation/cv_fold.py FOLD OUT_JSON [ROWS] [--relabels]

The folds are `train_classifier.py --cv 5 --cv-split head`'s, and each model is calibrated as `--cv-calibrate` does
(temperatures and thresholds fitted on a split of the fold's own training rows), so the figures compare with the
fold figures in models/weerbaar-e5-ft/MODEL_CARD.md. In the fold: teacher A is 2026.12.4's recipe (the corpus's
aggression labels kept), teacher B the same with `--extra-mask aggression`, and the student starts from B and learns
A's calibrated aggression as a soft label (`--blend aggression=1.0`). All three are scored on the test fold, which
none of them saw. ROWS is the student's --blend-rows: all (default, 2026.12.5) or extra (A's soft label on the
corpus's rows only; the real rows keep B's). With --relabels, teacher B and the student train and calibrate on the
team's labels of IMSyPP's rows (`train_classifier.py --imsypp-relabels`; teacher A stays 2026.12.4's recipe). Besides
aggression, each model's threat label is scored on the test fold by the team's labels: recall of the rows relabelled
as threats, false alarms on the others. Needs ../shared/data; about an hour on 2 cores. Writes figures and row ids
only, no text.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from monitor.training.calibration import calibrate, calibration_split
from monitor.training.commands.train_classifier import (
    blend_soft_labels,
    config_from,
    distil_student,
    extra_data,
    mark_extra,
    parse_arguments,
    threat_data,
    transfer_data,
)
from monitor.training.datasets import IMSYPP_RELABELS, read_imsypp, read_imsypp_relabelled
from monitor.training.evaluation import scores_report
from monitor.training.finetune import finetune
from monitor.training.heads import imsypp_folds

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def main(fold: int, out: Path, rows: str = "all", relabels: bool = False) -> None:
    import torch

    torch.set_num_threads(2)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    recipe = ["--imsypp", str(DATA / "imsypp-nl" / "train.csv"),
              "--germeval-vio", str(DATA / "xling" / "harmful_germeval2026_vio" / "vio_train_26.csv"),
              "--extra", "corpus:train", "--extra-rows", "100000", "--extra-weight", "0.3"]
    student = ["--distil-layers", "12", "--student-lr", "2e-5", "--student-epochs", "2"]
    arguments = parse_arguments(recipe + ["--extra-mask", "aggression"] + student)
    config = config_from(arguments)
    categories = config.categories
    imsypp = read_imsypp(arguments.imsypp)
    ours = read_imsypp_relabelled(arguments.imsypp, IMSYPP_RELABELS)
    threat = threat_data(arguments)
    train_rows, test_rows = imsypp_folds([r.stratum for r in imsypp], 5, arguments.seed)[fold - 1]
    test = [imsypp[i] for i in test_rows]
    test_ours = [ours[i] for i in test_rows]
    fold_imsypp = {"imsypp": [imsypp[i] for i in train_rows], "ours": [ours[i] for i in train_rows]}
    report = {"fold": fold, "blend_rows": rows, "relabels": relabels, "test_rows": [r.group for r in test]}

    def score(name: str, model, held_out) -> None:
        _, _, thresholds = calibrate(model, held_out, categories, arguments.false_alarm_rate)
        probabilities = model.probabilities([r.text for r in test])
        aggression = scores_report(test, probabilities, categories, thresholds)["aggression"]
        threat = scores_report(test_ours, probabilities, categories, thresholds)["threat"]
        confusion = threat["confusion"]
        report[name] = {"thresholds": thresholds, "temperatures": model.temperatures,
                        "aggression_macro_f1": round(aggression["macro_f1"], 4),
                        "aggression_pr_auc": round(aggression["average_precision"], 4),
                        "threat_ours": {"threats": confusion["tp"] + confusion["fn"], "labelled": confusion["tp"],
                                        "false_alarms": confusion["fp"], "non_threats": confusion["fp"] + confusion["tn"],
                                        "pr_auc": round(threat["average_precision"], 4)},
                        "probabilities": np.round(probabilities, 4).tolist()}
        log(f"fold {fold} {name}: aggression macro-F1 {aggression['macro_f1']:.4f} at {thresholds['aggression']}, "
            f"PR-AUC {aggression['average_precision']:.4f}; threats (ours) labelled {confusion['tp']} of "
            f"{confusion['tp'] + confusion['fn']}, false alarms {confusion['fp']}")

    models = {}
    for name, masks, labels in (("teacher_a", [], "imsypp"),
                                ("teacher_b", ["aggression"], "ours" if relabels else "imsypp")):
        extra = mark_extra(extra_data(argparse.Namespace(**(vars(arguments) | {"extra_mask": masks}))))
        train, held_imsypp, held_threat = calibration_split(fold_imsypp[labels], threat, extra,
                                                            arguments.calibration_fraction, arguments.seed)
        log(f"{name}: training on {len(train)} rows")
        models[name] = finetune(train, config, arguments.cache_dir, log=log)
        score(name, models[name], held_imsypp + held_threat)
    teacher_a, teacher_b = models["teacher_a"], models["teacher_b"]
    records = list(train) + transfer_data(arguments)  # the last train: B's, the corpus's aggression masked
    soft, blended = blend_soft_labels(teacher_b.logits([r.text for r in records]),
                                      [teacher_b.temperatures[c] for c in categories], records, rows,
                                      teacher_a.probabilities, {"aggression": 1.0}, categories)
    log(f"student: {len(records)} rows, A's aggression soft label on {blended} ({rows})")
    student = distil_student(teacher_b, records, soft, config, arguments, log)
    score("student", student, held_imsypp + held_threat)
    report["seconds"] = round(time.monotonic() - started)
    out.write_text(json.dumps(report) + "\n", encoding="utf-8")


if __name__ == "__main__":
    command = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("fold", type=int)
    command.add_argument("out", type=Path)
    command.add_argument("rows", nargs="?", choices=("all", "extra"), default="all")
    command.add_argument("--relabels", action="store_true")
    given = command.parse_args()
    main(given.fold, given.out, given.rows, given.relabels)
