"""Measure exported models, or the mean of their probabilities, as this experiment's README reports them.

    .venv/bin/python models/experiments/2026-12-03-two-teacher-distillation/measure.py RUN_JSON MODEL[=W] ...

RUN_JSON is a training run record: its arguments rebuild the 903 calibration rows (`held_out_rows`), of which 285 are
IMSyPP-NL's. Each MODEL is an exported model folder; several are averaged with weights W (default 1), at the first
one's thresholds. Printed as JSON: IMSyPP's 285 rows (aggression average precision and macro-F1 at the threshold),
how many of their violent rows, of the rows the team relabelled as threats, and of the other rows get the threat
label, threat on the 903 rows (by the run's labels and by the team's), the held-out corpus families (aggression AP,
"flagged by any category" macro-F1, false aggression on four hard-negative families, the per-phenomenon report),
RTP-LX NL AP per category and the held-out threat templates' threat AP. Needs ../shared/data (RTP-LX NL and the
run's IMSyPP file); prints figures only, no text.
"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from monitor.onnx_classifier import read_onnx_classifier
from monitor.training.commands.train_classifier import held_out_rows
from monitor.training.corpus import phenomenon_report, read_corpus
from monitor.training.datasets import read_dataset, read_imsypp_relabelled, template_records
from monitor.training.evaluation import average_precision, macro_f1, scores_report
from monitor.training.threat_templates import EVALUATION, generate_templates

RTP_LX = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "rtp-lx-nl" / "RTP_LX_NL.json"
HARD_NEGATIVES = ("counter_speech", "news_reported", "criticism_policy", "object_abuse")


def main(run_path: str, specs: list[str]) -> dict:
    run = json.loads(Path(run_path).read_text(encoding="utf-8"))
    models = []
    for spec in specs:
        path, _, weight = spec.partition("=")
        models.append((read_onnx_classifier(path, threads=2), float(weight or 1)))
    thresholds = json.loads((Path(specs[0].partition("=")[0]) / "model.json").read_text(encoding="utf-8"))["thresholds"]
    categories = models[0][0].categories
    total = sum(weight for _, weight in models)

    def probabilities(texts):
        return sum(weight / total * np.array([[s[c] for c in categories] for s in model.score(texts)])
                   for model, weight in models)

    result = {}
    held = held_out_rows(run["arguments"])
    scores = probabilities([r.text for r in held])
    imsypp = [i for i, r in enumerate(held) if r.source.startswith("imsypp")]
    aggression = scores_report([held[i] for i in imsypp], scores[imsypp], categories, thresholds)["aggression"]
    result["imsypp_285"] = {"rows": len(imsypp), "aggression_ap": round(aggression["average_precision"], 3),
                            "aggression_macro_f1": round(aggression["macro_f1"], 3)}
    # IMSyPP's violent rows among them: how many get the threat label, and how many of those the team relabelled as
    # threats at a person or group (models/corpus/relabels/) do.
    ours_labels = {r.group: r.labels for r in read_imsypp_relabelled(run["arguments"]["imsypp"])}
    ours = {group: labels["threat"] for group, labels in ours_labels.items()}
    violent = [i for i in imsypp if (held[i].stratum or "").startswith("3")]
    threat_label = scores[:, categories.index("threat")] >= thresholds["threat"]
    relabelled = [i for i in imsypp if ours.get(held[i].group) == 1]
    others = [i for i in imsypp if ours.get(held[i].group) != 1]
    result["imsypp_285_violent"] = {
        "rows": len(violent), "threat_labelled": int(threat_label[violent].sum()),
        "relabelled_threats_of_285": len(relabelled),
        "relabelled_threats_labelled": int(threat_label[relabelled].sum()),
        "other_rows_threat_labelled": int(threat_label[others].sum())}
    # Threat on the 903 rows twice: by the labels the run calibrated on, and by the team's labels of IMSyPP's rows
    # (the same for every run, so runs trained on either compare; the split is the same with either labelling).
    held_ours = [dataclasses.replace(r, labels=ours_labels[r.group]) if r.group in ours_labels else r for r in held]
    for name, rows in (("threat_903", held), ("threat_903_ours", held_ours)):
        threat = scores_report(rows, scores, categories, thresholds)["threat"]
        confusion = threat["confusion"]
        result[name] = {"ap": round(threat["average_precision"], 3), "recall": round(threat["recall"], 3),
                        "false_alarms": round(confusion["fp"] / (confusion["fp"] + confusion["tn"]), 4)}
    corpus = read_corpus("eval")
    corpus_scores = probabilities([m.text for m in corpus])
    rows = [dict(zip(categories, map(float, row))) for row in corpus_scores]
    phenomena = phenomenon_report(corpus, rows, thresholds)
    harmful = np.array([int(any(m.labels[c] == 1 for c in categories)) for m in corpus])
    flagged = np.array([any(s[c] >= thresholds[c] for c in categories) for s in rows])
    labels = np.array([m.labels["aggression"] for m in corpus])
    result["corpus_eval"] = {
        "aggression_ap": round(average_precision(labels, corpus_scores[:, 0]), 3),
        "aggression_macro_f1": round(macro_f1(labels, corpus_scores[:, 0] >= thresholds["aggression"]), 3),
        "flagged_macro_f1": round(macro_f1(harmful, flagged), 3),
        "false_aggression": {k: phenomena[k].get("aggression_false_alarms") for k in HARD_NEGATIVES if k in phenomena},
    }
    rtp = read_dataset(f"rtp-lx:{RTP_LX}")
    report = scores_report(rtp, probabilities([r.text for r in rtp]), categories, thresholds)
    result["rtp_lx_ap"] = {c: round(r["average_precision"], 3) for c, r in report.items()}
    suite = template_records(generate_templates(0, 60, EVALUATION))
    suite_report = scores_report(suite, probabilities([r.text for r in suite]), categories, thresholds)
    result["threat_templates_ap"] = round(suite_report["threat"]["average_precision"], 3)
    result["phenomena"] = phenomena
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:]), indent=1))
