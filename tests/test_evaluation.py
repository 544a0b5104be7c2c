"""Metrics checked against small cases worked out by hand, and the evaluation script end to end with a test model."""

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.settings import ClassifierSettings
from monitor.training.commands.evaluate_classifier import main as evaluate_command
from monitor.training.datasets import read_functional_suite, read_jsonl
from monitor.training.evaluation import (
    alarm_rates,
    average_precision,
    best_macro_f1_threshold,
    confusion_matrix,
    evaluate_classifier,
    evaluation_report,
    expected_calibration_error,
    functionality_pass_rates,
    macro_f1,
    precision_recall_f1,
    recall_at_false_alarm,
    stratified_k_fold,
    threshold_at_false_alarm_rate,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "datasets"

LABELS = [1, 1, 0, 0, 1]
PREDICTIONS = [1, 0, 1, 0, 1]


def test_confusion_and_f1_by_hand():
    assert confusion_matrix(LABELS, PREDICTIONS) == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    # precision = 2/3, recall = 2/3, F1 = 2*2 / (2*2 + 1 + 1) = 2/3
    metrics = precision_recall_f1(LABELS, PREDICTIONS)
    assert metrics == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    # Negative class: tp = 1, fp = 1, fn = 1, so F1 = 2 / 4 = 1/2; macro-F1 = (2/3 + 1/2) / 2 = 7/12.
    assert macro_f1(LABELS, PREDICTIONS) == pytest.approx(7 / 12)


def test_undefined_precision_is_none_not_zero():
    assert precision_recall_f1([1, 0], [0, 0]) == {"precision": None, "recall": 0.0, "f1": 0.0}
    assert precision_recall_f1([0, 0], [0, 0])["f1"] is None
    assert macro_f1([0, 0], [0, 0]) == 1.0  # only the negative class exists, and it is perfect


def test_non_binary_labels_are_refused():
    with pytest.raises(ValueError, match="only 0 and 1"):
        confusion_matrix([0, 2], [0, 1])


def test_average_precision_by_hand():
    # Ranked: 1 (P=1, R=1/2), 0, 1 (P=2/3, R=1): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    # Tied scores are one threshold: both flagged at once, P = 1/2 at R = 1.
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert average_precision([0, 0], [0.1, 0.2]) is None


def test_average_precision_matches_scikit_learn():
    import sklearn.metrics as sklearn_metrics
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 2)  # rounding makes ties
    assert average_precision(labels, scores) == pytest.approx(sklearn_metrics.average_precision_score(labels, scores))


def test_ece_of_a_perfectly_calibrated_case_is_zero():
    labels = [1, 0, 0, 0] + [1, 1, 1, 0]
    probabilities = [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0)


def test_ece_by_hand():
    # Bin [0.0, 0.1): mean 0.05, accuracy 0 -> gap 0.05; bin [0.9, 1.0]: mean 0.95, accuracy 1/2 -> gap 0.45.
    # Each bin holds half the rows: ECE = 0.5 * 0.05 + 0.5 * 0.45 = 0.25.
    assert expected_calibration_error([0, 0, 1, 0], [0.05, 0.05, 0.95, 0.95]) == pytest.approx(0.25)
    # A probability of exactly 1 falls in the top bin.
    assert expected_calibration_error([1], [1.0]) == pytest.approx(0.0)


def test_recall_at_false_alarm_threshold_chosen_on_one_set_applied_to_another():
    calibration_scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    calibration_labels = [0] * 10 + [1]
    # Ten negatives at 10% false alarms: one may be flagged (0.95); the threshold sits just above 0.9.
    threshold = threshold_at_false_alarm_rate(calibration_labels, calibration_scores, 0.10)
    assert 0.9 < threshold <= 0.95
    result = recall_at_false_alarm(
        calibration_labels, calibration_scores, [1, 1, 1, 0, 0], [0.92, 0.85, 0.97, 0.91, 0.5], 0.10
    )
    # On the test set: positives 0.92 and 0.97 are caught (2/3); negative 0.91 is a false alarm (1/2).
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["false_alarm_rate"] == pytest.approx(1 / 2)
    assert result["threshold"] == threshold


def test_zero_false_alarms_flags_nothing_the_negatives_reach():
    threshold = threshold_at_false_alarm_rate([0, 0, 1], [0.4, 0.7, 0.6], 0.0)
    assert threshold > 0.7
    assert alarm_rates([0, 0, 1], [0.4, 0.7, 0.6], threshold) == {"recall": 0.0, "false_alarm_rate": 0.0}
    with pytest.raises(ValueError, match="no negative"):
        threshold_at_false_alarm_rate([1, 1], [0.1, 0.2], 0.1)


def test_pass_rates_per_functionality():
    cases = [
        ("threat_direct", "a", {"threat": 1, "aggression": 1}),
        ("threat_direct", "b", {"threat": 1, "aggression": 1}),
        ("counter_speech", "c", {"threat": 0, "aggression": 0, "insult": 0}),  # the model has no insult head
        ("threat_direct", "d", {"threat": 1, "aggression": None}),  # aggression not stated
    ]
    predictions = [
        {"threat": 1, "aggression": 1},
        {"threat": 0, "aggression": 1},
        {"threat": 0, "aggression": 0},
        {"threat": 1, "aggression": 0},
    ]
    assert functionality_pass_rates(cases, predictions) == {
        "counter_speech": {"cases": 1, "passed": 1, "pass_rate": 1.0},
        "threat_direct": {"cases": 3, "passed": 2, "pass_rate": pytest.approx(2 / 3)},
    }


def test_stratified_folds_cover_every_row_once_and_spread_each_stratum():
    strata = ["a"] * 10 + ["b"] * 5 + ["c"] * 2
    folds = stratified_k_fold(strata, k=5, seed=1)
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(17))
    for train, test in folds:
        assert set(train.tolist()).isdisjoint(test.tolist()) and len(train) + len(test) == 17
        assert [strata[i] for i in test].count("a") == 2 and [strata[i] for i in test].count("b") == 1
    again = stratified_k_fold(strata, k=5, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = stratified_k_fold(strata, k=5, seed=2)
    assert any((a[1] != b[1]).any() for a, b in zip(folds, other) if len(a[1]) == len(b[1]))


def test_report_excludes_masked_rows_and_lists_unlabelled_categories():
    report = evaluation_report(
        labels={"aggression": [1, 0, None, 1], "threat": [None, None, None, None]},
        scores={"aggression": [0.9, 0.2, 0.99, 0.4], "threat": [0.1, 0.1, 0.1, 0.1]},
        thresholds={"aggression": 0.5},
        alarm_thresholds={"aggression": 0.3},
    )
    aggression = report["categories"]["aggression"]
    assert aggression["rows"] == 3 and aggression["masked"] == 1 and aggression["positives"] == 2
    assert aggression["confusion"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 1}
    assert aggression["at_alarm_threshold"] == {"threshold": 0.3, "recall": 1.0, "false_alarm_rate": 0.0}
    assert report["not_labelled"] == ["threat"]
    json.dumps(report)  # ready to write as JSON


class FixedClassifier:
    """Scores threat high for texts containing 'woont' or 'maak je af', aggression also for 'clown'."""

    name = "fixed"
    version = "1"
    categories = ("aggression", "threat")

    def score(self, texts):
        out = []
        for text in texts:
            threat = 0.9 if ("woont" in text or "maak je af" in text) else 0.1
            out.append({"aggression": max(threat, 0.8 if "clown" in text else 0.2), "threat": threat})
        return out


def test_evaluate_classifier_report():
    datasets = {"jsonl:labels": read_jsonl(FIXTURES / "labels.jsonl")}
    suite = read_functional_suite(FIXTURES / "suite.jsonl")
    report = evaluate_classifier(FixedClassifier(), datasets, {"aggression": 0.5, "threat": 0.5}, suite=suite)
    assert report["model"] == "fixed@1"
    dataset = report["datasets"]["jsonl:labels"]
    assert dataset["rows"] == 3 and dataset["categories"]["aggression"]["f1"] == 1.0
    assert dataset["categories"]["threat"]["rows"] == 2  # the third text leaves threat unstated
    assert report["false_alarm"]["chosen_on"] == "jsonl:labels"
    assert report["suite"]["functionalities"]["threat_direct"] == {"cases": 2, "passed": 2, "pass_rate": 1.0}
    assert report["suite"]["pass_rate"] == 1.0



def test_script_writes_a_report_with_the_configured_test_model(workdir, capsys):
    out = workdir / "report.json"
    code = evaluate_command(
        [
            "--data", f"jsonl:{FIXTURES / 'labels.jsonl'}",
            "--data", f"imsypp:{FIXTURES / 'imsypp.csv'}",
            "--suite", str(FIXTURES / "suite.jsonl"),
            "--threshold", "threat=0.6",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["model"] == "test-keywords@1"
    assert report["thresholds"] == {"aggression": ClassifierSettings().thresholds["aggression"], "threat": 0.6}
    assert set(report["datasets"]) == {f"jsonl:{FIXTURES / 'labels.jsonl'}", f"imsypp:{FIXTURES / 'imsypp.csv'}"}
    assert report["suite"]["cases"] == 3
    printed = capsys.readouterr().out
    assert "imsypp.csv" in printed and "threat_direct" in printed


def test_script_bad_data_exits_2_and_writes_nothing(workdir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hoi", "labels": {"threat": 5}}\n', encoding="utf-8")
    out = workdir / "report.json"
    assert evaluate_command(["--data", f"jsonl:{bad}", "--out", str(out)]) == 2
    assert "bad.jsonl: line 1, column 'labels.threat'" in capsys.readouterr().err
    assert not out.exists()


def test_best_macro_f1_threshold_takes_the_lowest_of_the_best():
    # Every threshold from 0.45 to 0.6 separates the classes; the lowest of them is chosen.
    assert best_macro_f1_threshold([0, 0, 1, 1], [0.1, 0.4, 0.6, 0.9]) == 0.45
    # All positive: flagging everything (the lowest threshold) is as good as it gets.
    assert best_macro_f1_threshold([1, 1], [0.3, 0.7]) == 0.05
