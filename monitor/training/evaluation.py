"""Metrics for a classifier's scores against labelled data: plain functions of numpy arrays, and a JSON-ready report.

Labels are 1, 0 or None (the dataset says nothing about that category); every metric here sees only the rows where
the label is known. A metric that is undefined on the data given (no positives, say) is None, which JSON writes as
null, rather than a made-up 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

ECE_BINS = 10
# Thresholds tried for the best macro-F1: 0.05 to 0.95 in steps of 0.05.
F1_THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _binary(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if array.size and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return array.astype(np.int8)


def _pair(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = _binary(labels, "labels")
    scores = np.asarray(scores, dtype=float)
    if scores.shape != labels.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} and {scores.size}")
    return labels, scores


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def confusion_matrix(labels, predictions) -> dict[str, int]:
    """Count true/false positives and negatives of binary PREDICTIONS against binary LABELS."""
    labels, predictions = _binary(labels, "labels"), _binary(predictions, "predictions")
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in length: {labels.size} and {predictions.size}")
    return {
        "tp": int(((labels == 1) & (predictions == 1)).sum()),
        "fp": int(((labels == 0) & (predictions == 1)).sum()),
        "fn": int(((labels == 1) & (predictions == 0)).sum()),
        "tn": int(((labels == 0) & (predictions == 0)).sum()),
    }


def precision_recall_f1(labels, predictions) -> dict[str, float | None]:
    """Return precision, recall and F1 of the positive class (None where a denominator is 0)."""
    counts = confusion_matrix(labels, predictions)
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        # F1 = 2tp / (2tp + fp + fn): defined whenever there is any positive, predicted or true.
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def macro_f1(labels, predictions) -> float | None:
    """Return the mean of the F1 of the positive class and the F1 of the negative class."""
    labels, predictions = _binary(labels, "labels"), _binary(predictions, "predictions")
    positive = precision_recall_f1(labels, predictions)["f1"]
    negative = precision_recall_f1(1 - labels, 1 - predictions)["f1"]
    scores = [value for value in (positive, negative) if value is not None]
    return float(np.mean(scores)) if scores else None


def average_precision(labels, scores) -> float | None:
    """Return the area under the precision-recall curve as average precision (sum over recall steps of precision)."""
    labels, scores = _pair(labels, scores)
    positives = int(labels.sum())
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_positives = np.cumsum(sorted_labels)
    # Tied scores form one threshold: only the last row of each tie block is an operating point.
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tp_at = true_positives[last_of_tie]
    flagged_at = (np.flatnonzero(last_of_tie) + 1).astype(float)
    precision = tp_at / flagged_at
    recall_steps = np.diff(np.r_[0, tp_at]) / positives
    return float((recall_steps * precision).sum())


def expected_calibration_error(labels, probabilities, bins: int = ECE_BINS) -> float | None:
    """Return the expected calibration error over BINS equal-width probability bins (weighted by bin size)."""
    labels, probabilities = _pair(labels, probabilities)
    if labels.size == 0:
        return None
    if ((probabilities < 0) | (probabilities > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    # Bin i holds [i/bins, (i+1)/bins); a probability of exactly 1 goes in the top bin.
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for bin_index in range(bins):
        members = index == bin_index
        if members.any():
            gap = abs(labels[members].mean() - probabilities[members].mean())
            error += members.sum() / labels.size * gap
    return float(error)


def threshold_at_false_alarm_rate(labels, scores, rate: float) -> float:
    """Return the lowest threshold (flag when score >= threshold) with a false-alarm rate at or under RATE."""
    labels, scores = _pair(labels, scores)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must lie in [0, 1]")
    negatives = np.sort(scores[labels == 0])[::-1]
    if negatives.size == 0:
        raise ValueError("no negative examples to set a false-alarm threshold on")
    allowed = math.floor(rate * negatives.size + 1e-9)
    if allowed >= negatives.size:
        return float(scores.min())
    # Flagging stops just above the first negative that would be one false alarm too many.
    return float(np.nextafter(negatives[allowed], np.inf))


def recall_at_false_alarm(
    calibration_labels, calibration_scores, test_labels, test_scores, rate: float
) -> dict[str, float | None]:
    """Set the threshold at false-alarm RATE on the calibration set; measure recall and false alarms on the test set."""
    threshold = threshold_at_false_alarm_rate(calibration_labels, calibration_scores, rate)
    return {"rate": rate, "threshold": threshold, **alarm_rates(test_labels, test_scores, threshold)}


def alarm_rates(labels, scores, threshold: float) -> dict[str, float | None]:
    """Return recall and false-alarm rate when flagging scores at or over THRESHOLD."""
    labels, scores = _pair(labels, scores)
    flagged = scores >= threshold
    return {
        "recall": _ratio(int((flagged & (labels == 1)).sum()), int((labels == 1).sum())),
        "false_alarm_rate": _ratio(int((flagged & (labels == 0)).sum()), int((labels == 0).sum())),
    }


def functionality_pass_rates(
    cases: Sequence[tuple[str, str, Mapping[str, int | None]]], predictions: Sequence[Mapping[str, int]]
) -> dict[str, dict[str, float | int]]:
    """Return cases, passed and pass rate per functionality; a case passes when every label it states is predicted."""
    if len(cases) != len(predictions):
        raise ValueError(f"{len(cases)} cases but {len(predictions)} predictions")
    totals: dict[str, list[int]] = {}
    for (functionality, _text, expected), predicted in zip(cases, predictions):
        # Only categories the case states (not None) and the model predicts are compared.
        compared = [name for name, label in expected.items() if label is not None and name in predicted]
        passed = all(int(predicted[name]) == int(expected[name]) for name in compared)
        counts = totals.setdefault(functionality, [0, 0])
        counts[0] += 1
        counts[1] += int(passed)
    return {
        name: {"cases": cases_, "passed": passed, "pass_rate": passed / cases_}
        for name, (cases_, passed) in sorted(totals.items())
    }


def stratified_k_fold(strata: Sequence, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split row indices into K (train, test) folds, each stratum spread evenly over them, shuffled by SEED."""
    if k < 2:
        raise ValueError("k must be at least 2")
    strata = np.asarray([str(value) for value in strata])
    if strata.size < k:
        raise ValueError(f"{strata.size} rows cannot make {k} folds")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(strata.size, dtype=int)
    offset = 0
    for stratum in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        # Continue the round-robin where the previous stratum stopped, so small strata do not all land in fold 0.
        fold_of[rows] = (np.arange(rows.size) + offset) % k
        offset = (offset + rows.size) % k
    everything = np.arange(strata.size)
    return [(everything[fold_of != fold], everything[fold_of == fold]) for fold in range(k)]


def best_macro_f1_threshold(labels, probabilities) -> float:
    """Return the threshold of F1_THRESHOLD_GRID at which flagging PROBABILITIES gives the highest macro-F1 (the lowest
    such threshold on a tie)."""
    labels, probabilities = _pair(labels, probabilities)
    return float(max(F1_THRESHOLD_GRID, key=lambda t: macro_f1(labels, (probabilities >= t).astype(np.int8)) or 0))


def label_array(labels: Sequence[int | None]) -> np.ndarray:
    """Return labels as floats with NaN where the label is unknown (None)."""
    return np.array([np.nan if label is None else float(label) for label in labels], dtype=float)


def category_report(
    labels: Sequence[int | None], scores: Sequence[float], threshold: float = 0.5, alarm_threshold: float | None = None
) -> dict:
    """Return every metric for one category, on the rows whose label is known."""
    known_labels = label_array(labels)
    scores = np.asarray(scores, dtype=float)
    if known_labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {known_labels.size} and {scores.size}")
    known = ~np.isnan(known_labels)
    y, p = known_labels[known].astype(np.int8), scores[known]
    predictions = (p >= threshold).astype(np.int8)
    report = {
        "rows": int(known.sum()),
        "masked": int((~known).sum()),
        "positives": int(y.sum()),
        "threshold": threshold,
        **precision_recall_f1(y, predictions),
        "macro_f1": macro_f1(y, predictions) if y.size else None,
        "average_precision": average_precision(y, p),
        "ece": expected_calibration_error(y, np.clip(p, 0.0, 1.0)),
        "confusion": confusion_matrix(y, predictions),
    }
    if alarm_threshold is not None:
        report["at_alarm_threshold"] = {"threshold": alarm_threshold, **alarm_rates(y, p, alarm_threshold)}
    return report


def scores_report(records, probabilities, categories, thresholds=None) -> dict:
    """Return category_report per category for RECORDS (LabelledText) with PROBABILITIES [rows, categories]; a category
    no record has a label for is left out."""
    thresholds = thresholds or {}
    out = {}
    for column, category in enumerate(categories):
        labels = [r.labels.get(category) for r in records]
        if all(label is None for label in labels):
            continue
        out[category] = category_report(labels, probabilities[:, column], thresholds.get(category, 0.5))
    return out


def evaluation_report(
    labels: Mapping[str, Sequence[int | None]],
    scores: Mapping[str, Sequence[float]],
    thresholds: Mapping[str, float] | None = None,
    alarm_thresholds: Mapping[str, float] | None = None,
) -> dict:
    """Return a JSON-ready report per category that has both labels and scores; categories without labels are listed."""
    thresholds = thresholds or {}
    alarm_thresholds = alarm_thresholds or {}
    categories = {}
    unlabelled = []
    for name in scores:
        if name not in labels or all(label is None for label in labels[name]):
            unlabelled.append(name)
            continue
        categories[name] = category_report(
            labels[name], scores[name], thresholds.get(name, 0.5), alarm_thresholds.get(name)
        )
    return {"categories": categories, "not_labelled": sorted(unlabelled)}


def evaluate_classifier(
    classifier,
    datasets: Mapping[str, Sequence],
    thresholds: Mapping[str, float],
    suite: Sequence | None = None,
    false_alarm_rate: float | None = 0.05,
    calibrate_on: str | None = None,
) -> dict:
    """Score every dataset (name -> LabelledText records) and the functional suite with CLASSIFIER; return the report.

    The false-alarm threshold per category is chosen on CALIBRATE_ON (default: the first dataset) and applied to
    every dataset, so the report shows how recall and false alarms hold up away from where the threshold was set.
    """
    from .datasets import label_balance

    categories = tuple(classifier.categories)
    scored = {}
    for name, records in datasets.items():
        texts = [record.text for record in records]
        rows = classifier.score(texts) if texts else []
        scored[name] = {category: [row[category] for row in rows] for category in categories}

    alarm_thresholds: dict[str, float] = {}
    chosen_on = None
    if false_alarm_rate is not None and datasets:
        chosen_on = calibrate_on or next(iter(datasets))
        if chosen_on not in datasets:
            raise ValueError(f"calibration set {chosen_on!r} is not among the datasets")
        for category in categories:
            labels = label_array([record.labels.get(category) for record in datasets[chosen_on]])
            known = ~np.isnan(labels)
            if (labels[known] == 0).any():
                scores = np.asarray(scored[chosen_on][category], dtype=float)[known]
                alarm_thresholds[category] = threshold_at_false_alarm_rate(
                    labels[known].astype(np.int8), scores, false_alarm_rate
                )

    report: dict = {
        "model": f"{classifier.name}@{classifier.version}",
        "categories": list(categories),
        "thresholds": {category: thresholds.get(category, 0.5) for category in categories},
        "false_alarm": {"rate": false_alarm_rate, "chosen_on": chosen_on, "thresholds": alarm_thresholds},
        "datasets": {},
    }
    for name, records in datasets.items():
        labels = {category: [record.labels.get(category) for record in records] for category in categories}
        languages: dict[str, int] = {}
        for record in records:
            languages[record.language] = languages.get(record.language, 0) + 1
        report["datasets"][name] = {
            "rows": len(records),
            "languages": languages,
            "label_balance": label_balance(records),
            **evaluation_report(labels, scored[name], thresholds, alarm_thresholds),
        }
    if suite is not None:
        texts = [case.text for case in suite]
        rows = classifier.score(texts) if texts else []
        predictions = [
            {category: int(row[category] >= thresholds.get(category, 0.5)) for category in categories} for row in rows
        ]
        cases = [(case.group or "unnamed", case.text, case.labels) for case in suite]
        per_functionality = functionality_pass_rates(cases, predictions)
        passed = sum(item["passed"] for item in per_functionality.values())
        report["suite"] = {
            "cases": len(cases),
            "pass_rate": _ratio(passed, len(cases)),
            "functionalities": per_functionality,
        }
    return report
