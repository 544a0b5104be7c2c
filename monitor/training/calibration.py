"""Calibrate a fine-tuned model: one temperature per category, and the thresholds its scores are flagged at."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .datasets import LabelledText
from .evaluation import best_macro_f1_threshold, scores_report, threshold_at_false_alarm_rate
from .finetune import encode_labels, imsypp_strata, sigmoid

TEMPERATURE_GRID = np.exp(np.linspace(math.log(0.05), math.log(20.0), 400))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Return the temperature T minimising the log loss of sigmoid(LOGITS / T) on binary LABELS (grid search)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if logits.size == 0 or labels.min() == labels.max():
        return 1.0

    def log_loss(temperature: float) -> float:
        scaled = logits / temperature
        # log(1 + exp(-|x|)) + max(x, 0) - y x: the stable form of binary cross-entropy on logits.
        return float(np.mean(np.logaddexp(0.0, scaled) - labels * scaled))

    return float(min(TEMPERATURE_GRID, key=log_loss))


def fit_temperatures(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, categories: Sequence[str]) -> dict:
    """Return a temperature per category, each fitted on the rows whose label is known."""
    temperatures = {}
    for column, category in enumerate(categories):
        known = mask[:, column] > 0
        temperatures[category] = round(fit_temperature(logits[known, column], labels[known, column]), 4)
    return temperatures


def stratified_share(strata: Sequence[str], fraction: float, rng: np.random.Generator, at_least: int = 0) -> np.ndarray:
    """Return a mask over STRATA that picks, at random from RNG, a share FRACTION (rounded, at least AT_LEAST) of the
    positions of every stratum."""
    strata = np.asarray(strata)
    chosen = np.zeros(len(strata), dtype=bool)
    for stratum in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        chosen[rows[: max(at_least, round(len(rows) * fraction))]] = True
    return chosen


def calibration_split(imsypp: list[LabelledText], threat: list[LabelledText], extra: list[LabelledText],
                      fraction: float, seed: int) -> tuple[list[LabelledText], list[LabelledText], list[LabelledText]]:
    """Split into training rows and the rows that calibrate: a stratified share of IMSyPP and a share of the threat
    data (EXTRA rows all train). Returns the training rows, the held-out IMSyPP rows and the held-out threat rows.
    The same seed and rows give the same split (a teacher's run record relies on it)."""
    rng = np.random.default_rng(seed)
    calibration = stratified_share(imsypp_strata(imsypp), fraction, rng)
    threat_order = rng.permutation(len(threat))
    threat_calibration = set(threat_order[: int(len(threat) * fraction)].tolist())
    train = ([r for r, c in zip(imsypp, calibration) if not c]
             + [r for i, r in enumerate(threat) if i not in threat_calibration] + extra)
    return (train, [r for r, c in zip(imsypp, calibration) if c],
            [r for i, r in enumerate(threat) if i in threat_calibration])


def calibrate(model, held_out: list[LabelledText], categories: tuple[str, ...],
              false_alarm_rate: float) -> tuple[dict, np.ndarray, dict[str, float]]:
    """Fit the model's temperatures and the thresholds on held-out rows, as the bundled model's were: threat at the
    false-alarm budget on held-out non-threats, the others at their best macro-F1 on a 0.05 grid. Returns the report
    before scaling, the calibrated probabilities and the thresholds."""
    logits = model.logits([r.text for r in held_out])
    labels, mask = encode_labels(held_out, categories)
    raw = scores_report(held_out, sigmoid(logits), categories)
    model.temperatures = fit_temperatures(logits, labels, mask, categories)
    calibrated = model.scaled(logits)
    return raw, calibrated, fit_thresholds(calibrated, labels, mask, categories, false_alarm_rate)


def fit_thresholds(probabilities: np.ndarray, labels: np.ndarray, mask: np.ndarray, categories: Sequence[str],
                   false_alarm_rate: float) -> dict[str, float]:
    """Return the threshold of each category on held-out PROBABILITIES where LABELS are known (MASK): threat at the
    false-alarm budget on its non-threats, the others at their best macro-F1 on a 0.05 grid."""
    thresholds = {}
    for column, category in enumerate(categories):
        known = mask[:, column] > 0
        if category == "threat":
            # Rounded up to 4 decimals: rounded to nearest, a threshold just above a non-threat fell below it.
            thresholds[category] = math.ceil(threshold_at_false_alarm_rate(
                labels[known, column].astype(np.int8), probabilities[known, column], false_alarm_rate) * 1e4) / 1e4
        else:
            thresholds[category] = best_macro_f1_threshold(labels[known, column], probabilities[known, column])
    return thresholds


def refit_artifact_thresholds(model_dir, held_out: list[LabelledText], false_alarm_rate: float) -> dict[str, float]:
    """Fit the thresholds of the ONNX artifact in MODEL_DIR on its own scores of HELD_OUT, write them into its
    model.json, and return them.

    The training run fits them on the float model's scores; int8 moves scores a little, and a threat threshold fitted
    on other scores no longer holds its false-alarm budget (2026.12.3: 5.65% false alarms on these rows at the
    threshold fitted for 5%).
    """
    import json
    from pathlib import Path

    from ..onnx_classifier import CARD_FILE, read_onnx_classifier
    from .export import write_card

    classifier = read_onnx_classifier(model_dir)
    scores = classifier.score([r.text for r in held_out])
    categories = classifier.categories
    probabilities = np.array([[row[c] for c in categories] for row in scores], dtype=np.float32)
    labels, mask = encode_labels(held_out, categories)
    thresholds = fit_thresholds(probabilities, labels, mask, categories, false_alarm_rate)
    card = json.loads((Path(model_dir) / CARD_FILE).read_text(encoding="utf-8"))
    card["thresholds"] = thresholds
    card["thresholds_fitted_on"] = f"this artifact's scores of {len(held_out)} held-out calibration rows"
    write_card(model_dir, card)
    return thresholds
