"""Train and measure the e5 heads (frozen embeddings, a small head per category): an embedding cache, head fitting,
cross-validation and the artifact.

Needs scikit-learn (the `train` extra). Data comes from monitor/training/datasets.py as LabelledText records, turned
into columns here (records_as_labelled); the metrics are monitor/training/evaluation.py's.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..e5_head import CARD_FILE, HEAD_FILE, embed_in_length_order
from .datasets import LabelledText
from .evaluation import alarm_rates, average_precision, best_macro_f1_threshold, category_report

HEAD_CATEGORIES = ("aggression", "threat")
THREAT_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
DEFAULT_C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
DEFAULT_ALPHA_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
MASKED = -1  # label value of a row whose dataset does not decide the category: left out of that head's loss


@dataclass
class LabelledTexts:
    """Texts with a 0/1 label per category, a group per text (rows of one group stay in one fold) and a source."""

    texts: list[str]
    labels: dict[str, np.ndarray]
    groups: list[str]
    source: str
    strata: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, mask: np.ndarray) -> LabelledTexts:
        """Return the rows where MASK is true."""
        keep = np.flatnonzero(mask)
        return LabelledTexts(
            texts=[self.texts[i] for i in keep],
            labels={name: values[keep] for name, values in self.labels.items()},
            groups=[self.groups[i] for i in keep],
            source=self.source,
            strata=[self.strata[i] for i in keep] if self.strata else [],
        )


def records_as_labelled(
    records: Sequence[LabelledText], source: str, categories: Sequence[str] = HEAD_CATEGORIES
) -> LabelledTexts:
    """Turn datasets' LabelledText records into the heads' LabelledTexts; a None (unknown) label becomes MASKED.

    A record without a group is its own group; the records' strata (IMSyPP's type) stratify the cross-validation.
    """
    return LabelledTexts(
        texts=[record.text for record in records],
        labels={
            category: np.array(
                [MASKED if record.labels[category] is None else record.labels[category] for record in records],
                dtype=np.int8,
            )
            for category in categories
        },
        groups=[record.group or f"{source}:{index}" for index, record in enumerate(records)],
        source=source,
        strata=[record.stratum or "" for record in records] if any(r.stratum for r in records) else [],
    )


def sample_records(records: Sequence, category: str, limit: int | None, seed: int) -> list:
    """Return the records whose CATEGORY is decided, at most LIMIT of them drawn with SEED (all if LIMIT is None)."""
    decided = [record for record in records if record.labels[category] is not None]
    if limit is None or limit >= len(decided):
        return decided
    return random.Random(seed).sample(decided, limit)


class EmbeddingCache:
    """Embeddings keyed by text, kept in one .npz per model and prefix so reruns embed only new texts."""

    def __init__(self, cache_dir: Path, embed: Callable[[list[str]], np.ndarray], key: str, batch_size: int = 32):
        self.path = Path(cache_dir) / f"embeddings-{key}.npz"
        self.embed = embed
        self.batch_size = batch_size
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as stored:
                self.vectors = dict(zip(stored["keys"].tolist(), stored["vectors"]))

    @staticmethod
    def text_key(text: str) -> str:
        """Return the cache key of TEXT."""
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def __call__(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Return the embeddings of TEXTS, embedding and saving the ones not cached yet."""
        keys = [self.text_key(text) for text in texts]
        missing = sorted({key: text for key, text in zip(keys, texts) if key not in self.vectors}.items())
        chunk = 20 * self.batch_size
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            vectors = embed_in_length_order(self.embed, [text for _, text in part], self.batch_size)
            self.vectors.update(zip((key for key, _ in part), vectors))
            self.save()
            if progress is not None:
                progress(min(start + chunk, len(missing)), len(missing))
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack([self.vectors[key] for key in keys]).astype(np.float32)

    def save(self) -> None:
        """Write the cache to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        temporary = self.path.with_suffix(".tmp.npz")
        np.savez(temporary, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        temporary.replace(self.path)


@dataclass
class LogisticHead:
    """One category's logistic head on raw embeddings: p = sigmoid(x . weights + bias)."""

    weights: np.ndarray
    bias: float
    C: float

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Return the probability for each row of VECTORS."""
        return 1.0 / (1.0 + np.exp(-np.clip(vectors @ self.weights + self.bias, -50.0, 50.0)))


@dataclass
class MLPHead:
    """One category's head with one ReLU hidden layer: p = sigmoid(relu(x . hidden_weights + hidden_bias) . weights + bias)."""

    hidden_weights: np.ndarray
    hidden_bias: np.ndarray
    weights: np.ndarray
    bias: float
    C: float  # 1 / alpha, the L2 penalty, so that reports read the same for both kinds of head

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Return the probability for each row of VECTORS."""
        hidden = np.maximum(vectors @ self.hidden_weights + self.hidden_bias, 0.0)
        return 1.0 / (1.0 + np.exp(-np.clip(hidden @ self.weights + self.bias, -50.0, 50.0)))


def balanced_weights(labels: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Return per-row weights that give both classes the same total weight, times SAMPLE_WEIGHT."""
    labels = np.asarray(labels)
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    balanced = np.empty(len(labels))
    for value in (0, 1):
        rows = labels == value
        balanced[rows] = weight.sum() / (2.0 * max(weight[rows].sum(), 1e-12))
    return weight * balanced


def _select_by_inner_cv(
    fit: Callable, score: Callable, grid: Sequence[float], standardised, labels, groups, inner_folds: int, seed: int
) -> float:
    """Return the value of GRID whose grouped inner cross-validation gives the highest PR-AUC."""
    from sklearn.model_selection import StratifiedGroupKFold

    if len(grid) == 1:
        return grid[0]
    folds = min(inner_folds, int(np.bincount(labels).min()))
    splitter = StratifiedGroupKFold(n_splits=max(folds, 2), shuffle=True, random_state=seed)
    held_out = np.zeros((len(grid), len(labels)))
    for train_rows, test_rows in splitter.split(standardised, labels, groups):
        for index, value in enumerate(grid):
            held_out[index, test_rows] = score(fit(value, train_rows), standardised[test_rows])
    return grid[int(np.argmax([average_precision(labels, scores) for scores in held_out]))]


def fit_logistic_head(
    vectors: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str] | None = None,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    inner_folds: int = 4,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
) -> LogisticHead:
    """Fit a class-weighted logistic regression, picking C by grouped inner cross-validation on PR-AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    groups = np.asarray(groups if groups is not None else np.arange(len(labels)).astype(str))
    scaler = StandardScaler().fit(vectors)
    standardised = scaler.transform(vectors)

    def fit(C: float, rows: np.ndarray):
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
        weight = None if sample_weight is None else np.asarray(sample_weight)[rows]
        return model.fit(standardised[rows], labels[rows], sample_weight=weight)

    best_C = _select_by_inner_cv(
        fit, lambda model, x: model.decision_function(x), c_grid, standardised, labels, groups, inner_folds, seed
    )
    model = fit(best_C, np.arange(len(labels)))
    # Fold the standardisation into the weights so that scoring is one matrix product on the raw embedding.
    weights = model.coef_[0] / scaler.scale_
    bias = float(model.intercept_[0] - np.dot(weights, scaler.mean_))
    return LogisticHead(weights=weights.astype(np.float32), bias=bias, C=float(best_C))


def fit_mlp_head(
    vectors: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str] | None = None,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    hidden: int = 64,
    inner_folds: int = 4,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
) -> MLPHead:
    """Fit a class-balanced one-hidden-layer ReLU network (L-BFGS), picking the L2 penalty by grouped inner CV."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    groups = np.asarray(groups if groups is not None else np.arange(len(labels)).astype(str))
    scaler = StandardScaler().fit(vectors)
    standardised = scaler.transform(vectors)
    weight = balanced_weights(labels, sample_weight)

    def fit(alpha: float, rows: np.ndarray):
        # L-BFGS on a few thousand rows is deterministic for a seed and needs no learning-rate schedule.
        model = MLPClassifier((hidden,), alpha=alpha, solver="lbfgs", max_iter=300, random_state=seed)
        return model.fit(standardised[rows], labels[rows], sample_weight=weight[rows] / weight[rows].mean())

    best_alpha = _select_by_inner_cv(
        fit, lambda model, x: model.predict_proba(x)[:, 1], alpha_grid, standardised, labels, groups, inner_folds, seed
    )
    model = fit(best_alpha, np.arange(len(labels)))
    hidden_weights = model.coefs_[0] / scaler.scale_[:, None]
    hidden_bias = model.intercepts_[0] - scaler.mean_ @ hidden_weights
    return MLPHead(
        hidden_weights=hidden_weights.astype(np.float32),
        hidden_bias=hidden_bias.astype(np.float32),
        weights=model.coefs_[1][:, 0].astype(np.float32),
        bias=float(model.intercepts_[1][0]),
        C=round(1.0 / float(best_alpha), 6),
    )


def as_hidden_layer(head: LogisticHead | MLPHead, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Return HEAD as (hidden_weights d x WIDTH, hidden_bias, weights, bias) of a ReLU network, zero-padded to WIDTH."""
    if isinstance(head, MLPHead):
        hidden_weights, hidden_bias, weights, bias = head.hidden_weights, head.hidden_bias, head.weights, head.bias
    else:
        # relu(z) - relu(-z) = z: a logistic head is exactly a two-unit ReLU network.
        hidden_weights = np.stack([head.weights, -head.weights], axis=1)
        hidden_bias = np.array([head.bias, -head.bias])
        weights, bias = np.array([1.0, -1.0]), 0.0
    padding = width - hidden_weights.shape[1]
    return (
        np.pad(hidden_weights, ((0, 0), (0, padding))),
        np.pad(hidden_bias, (0, padding)),
        np.pad(weights, (0, padding)),
        float(bias),
    )


def write_artifact(out_dir: Path, heads: dict[str, LogisticHead | MLPHead], card: dict) -> None:
    """Write head.npz and model.json for HEADS (in the order of card['categories']) into OUT_DIR.

    All-logistic heads keep the original format (weights, bias). If any head has a hidden layer, every head is
    written as a ReLU network of one common width (hidden_weights, hidden_bias, weights, bias), logistic ones exactly.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    categories = card["categories"]
    if all(isinstance(heads[c], LogisticHead) for c in categories):
        arrays = {
            "weights": np.stack([heads[c].weights for c in categories]).astype(np.float32),
            "bias": np.array([heads[c].bias for c in categories], dtype=np.float32),
        }
    else:
        width = max(heads[c].hidden_bias.shape[0] if isinstance(heads[c], MLPHead) else 2 for c in categories)
        layers = [as_hidden_layer(heads[c], width) for c in categories]
        arrays = {
            "hidden_weights": np.stack([layer[0] for layer in layers]).astype(np.float32),
            "hidden_bias": np.stack([layer[1] for layer in layers]).astype(np.float32),
            "weights": np.stack([layer[2] for layer in layers]).astype(np.float32),
            "bias": np.array([layer[3] for layer in layers], dtype=np.float32),
        }
    np.savez_compressed(out_dir / HEAD_FILE, **arrays)
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def templates_as_labelled(templates: Sequence) -> LabelledTexts:
    """Turn generated TemplateText rows into LabelledTexts; a threat is also aggression, and a family is one group."""
    threat = np.array([t.threat for t in templates], dtype=np.int8)
    return LabelledTexts(
        texts=[t.text for t in templates],
        labels={"aggression": threat.copy(), "threat": threat},
        groups=[f"template:{t.family}" for t in templates],
        source="threat-templates",
        strata=[t.family for t in templates],
    )


def imsypp_folds(strata: Sequence[str], folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the (train, test) row indices of the heads' cross-validation: stratified by STRATA, shuffled by SEED.

    scripts/train_classifier.py --cv-split head reuses them, so that a fine-tuned model compares fold by fold."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(strata), 1)), strata))


@dataclass
class TrainingRun:
    """The heads fitted on all training data, and the report of how they did on data they did not see."""

    heads: dict[str, LogisticHead | MLPHead]
    report: dict


def _stack(
    parts: Sequence[tuple[np.ndarray, LabelledTexts, float]], category: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Stack the parts' vectors, labels, sample weights and groups for CATEGORY, leaving out rows masked for it."""
    vectors = np.concatenate([v for v, _, _ in parts])
    labels = np.concatenate([d.labels[category] for _, d, _ in parts])
    weights = np.concatenate([np.full(len(d), w, dtype=float) for _, d, w in parts])
    groups = np.array([g for _, d, _ in parts for g in d.groups])
    keep = labels != MASKED
    return vectors[keep], labels[keep], weights[keep], groups[keep].tolist()


def train_and_evaluate(
    imsypp: LabelledTexts,
    templates: Sequence,
    extra_threat: Sequence[LabelledTexts],
    embed: Callable[[Sequence[str]], np.ndarray],
    folds: int = 5,
    seed: int = 0,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    aggression_from_templates: bool = False,
    max_false_alarms: float = 0.05,
    log: Callable[[str], None] = lambda message: None,
    extra_aggression: Sequence[tuple[LabelledTexts, float]] = (),
    head_kind: dict[str, str] | None = None,
    hidden: int = 64,
    threat_positive_weight: float = 1.0,
    threat_threshold_from_templates: bool = False,
) -> TrainingRun:
    """Cross-validate the aggression and threat heads on IMSyPP, test threat on held-out template families, fit all.

    Aggression learns from IMSyPP (plus the training template families if AGGRESSION_FROM_TEMPLATES). Threat learns
    from IMSyPP, the training template families and EXTRA_THREAT sets. The evaluation template families are never
    trained on: they measure recall and false alarms on phrasings the heads have not seen. The recommended threat
    threshold is the lowest that flags at most MAX_FALSE_ALARMS of IMSyPP's non-violent rows under cross-validation
    (and, with THREAT_THRESHOLD_FROM_TEMPLATES, of the training families' hard negatives scored by heads fitted
    without their family).

    EXTRA_AGGRESSION: (data, sample weight) pairs added to the aggression head's training part of every fold only;
    rows whose aggression label is MASKED are left out. HEAD_KIND maps a category to "logistic" (default) or "mlp"
    (one ReLU layer of HIDDEN units). THREAT_POSITIVE_WEIGHT multiplies the weight of threat positives on top of
    the class balancing.
    """
    train_templates = templates_as_labelled([t for t in templates if t.split == "train"])
    eval_templates = templates_as_labelled([t for t in templates if t.split == "eval"])
    log(f"embedding {len(imsypp)} IMSyPP rows")
    imsypp_vectors = embed(imsypp.texts)
    log(f"embedding {len(train_templates)} training and {len(eval_templates)} evaluation template texts")
    train_template_vectors = embed(train_templates.texts)
    eval_template_vectors = embed(eval_templates.texts)
    extras = []
    for extra in extra_threat:
        log(f"embedding {len(extra)} rows of {extra.source}")
        extras.append((embed(extra.texts), extra, 1.0))
    aggression_extras = []
    for extra, weight in extra_aggression:
        log(f"embedding {len(extra)} rows of {extra.source} (aggression, weight {weight})")
        aggression_extras.append((embed(extra.texts), extra, weight))
    head_kind = {"aggression": "logistic", "threat": "logistic", **(head_kind or {})}

    def fit_head(category: str, parts: list, fixed_C: float | None = None) -> LogisticHead | MLPHead:
        vectors, labels, weights, groups = _stack(parts, category)
        if category == "threat":
            weights = np.where(labels == 1, weights * threat_positive_weight, weights)
        uniform = bool(np.all(weights == 1.0))
        if head_kind[category] == "mlp":
            grid = DEFAULT_ALPHA_GRID if fixed_C is None else (1.0 / fixed_C,)
            return fit_mlp_head(
                vectors,
                labels,
                groups,
                alpha_grid=grid,
                hidden=hidden,
                seed=seed,
                sample_weight=None if uniform else weights,
            )
        grid = c_grid if fixed_C is None else (fixed_C,)
        return fit_logistic_head(
            vectors, labels, groups, c_grid=grid, seed=seed, sample_weight=None if uniform else weights
        )

    def parts_for(rows: np.ndarray, template_part: tuple | None = None) -> dict[str, list]:
        imsypp_part = (imsypp_vectors[rows], imsypp.subset(np.isin(np.arange(len(imsypp)), rows)), 1.0)
        template_part = template_part or (train_template_vectors, train_templates, 1.0)
        aggression_parts = [imsypp_part, template_part] if aggression_from_templates else [imsypp_part]
        return {"aggression": [*aggression_parts, *aggression_extras], "threat": [imsypp_part, template_part, *extras]}

    def fit_heads(rows: np.ndarray) -> dict[str, LogisticHead | MLPHead]:
        return {category: fit_head(category, parts) for category, parts in parts_for(rows).items()}

    held_out = {category: np.zeros(len(imsypp)) for category in ("aggression", "threat")}
    fold_reports = []
    for fold, (train_rows, test_rows) in enumerate(imsypp_folds(imsypp.strata, folds, seed), start=1):
        heads = fit_heads(train_rows)
        for category, head in heads.items():
            held_out[category][test_rows] = head.predict(imsypp_vectors[test_rows])
        aggression = category_report(imsypp.labels["aggression"][test_rows], held_out["aggression"][test_rows])
        fold_threat = heads["threat"].predict(eval_template_vectors)
        templates_threat = alarm_rates(eval_templates.labels["threat"], fold_threat, 0.5)
        fold_reports.append(
            {
                "fold": fold,
                "aggression": aggression,
                "aggression_C": heads["aggression"].C,
                "threat_C": heads["threat"].C,
                "threat_eval_templates": templates_threat,
            }
        )
        log(
            f"fold {fold}: aggression macro-F1 {aggression['macro_f1']:.3f} (C={heads['aggression'].C}), "
            f"threat recall on held-out families {templates_threat['recall']:.3f}, "
            f"false alarms {templates_threat['false_alarm_rate']:.3f} (C={heads['threat'].C})"
        )

    log("fitting the final heads on all training data")
    heads = fit_heads(np.arange(len(imsypp)))
    non_violent = imsypp.labels["threat"] == 0
    template_families = np.array(train_templates.strata)
    out_of_family = None
    if threat_threshold_from_templates:
        # Score each training family with a threat head fitted without it (C fixed to the final head's), so the
        # threshold can be chosen on hard negatives the head has not seen, without touching the evaluation families.
        log("scoring each training template family with a threat head fitted without it")
        out_of_family = np.zeros(len(train_templates))
        for family in dict.fromkeys(train_templates.strata):
            rows = template_families == family
            kept = (train_template_vectors[~rows], train_templates.subset(~rows), 1.0)
            head = fit_head("threat", parts_for(np.arange(len(imsypp)), kept)["threat"], fixed_C=heads["threat"].C)
            out_of_family[rows] = head.predict(train_template_vectors[rows])
    eval_threat = heads["threat"].predict(eval_template_vectors)
    threat_by_threshold = {
        str(threshold): {
            "imsypp_cv": alarm_rates(imsypp.labels["threat"], held_out["threat"], threshold),
            "eval_templates": alarm_rates(eval_templates.labels["threat"], eval_threat, threshold),
            **(
                {
                    "train_templates_out_of_family": alarm_rates(
                        train_templates.labels["threat"], out_of_family, threshold
                    )
                }
                if out_of_family is not None
                else {}
            ),
        }
        for threshold in THREAT_THRESHOLDS
    }
    # The threshold is chosen on training-side scores only (IMSyPP's cross-validated scores and, if asked, the
    # training families scored out of family), so the held-out template families stay unseen.
    recommended_threat = next(
        (
            t
            for t in THREAT_THRESHOLDS
            if all(
                rates["false_alarm_rate"] <= max_false_alarms
                for key, rates in threat_by_threshold[str(t)].items()
                if key != "eval_templates"
            )
        ),
        THREAT_THRESHOLDS[-1],
    )
    report = {
        "folds": fold_reports,
        "aggression_cv": {
            "macro_f1_per_fold": [f["aggression"]["macro_f1"] for f in fold_reports],
            "macro_f1_mean": round(float(np.mean([f["aggression"]["macro_f1"] for f in fold_reports])), 4),
            "macro_f1_std": round(float(np.std([f["aggression"]["macro_f1"] for f in fold_reports])), 4),
            "pooled": category_report(imsypp.labels["aggression"], held_out["aggression"]),
        },
        "threat_cv_imsypp": {
            "pooled": category_report(imsypp.labels["threat"], held_out["threat"]),
            "violent_recall": alarm_rates(imsypp.labels["threat"], held_out["threat"], 0.5)["recall"],
            "false_alarm_rate_non_violent": round(float((held_out["threat"][non_violent] >= 0.5).mean()), 4),
            "false_alarm_rate_offensive": round(
                float((held_out["threat"][np.array(imsypp.strata) == "2. offensive"] >= 0.5).mean()), 4
            ),
        },
        "threat_eval_templates": _template_report(eval_templates, eval_template_vectors, heads),
        "threat_by_threshold": threat_by_threshold,
        "threat_eval_templates_per_fold_mean": {
            key: round(float(np.mean([f["threat_eval_templates"][key] for f in fold_reports])), 4)
            for key in ("recall", "false_alarm_rate")
        },
        "training_rows": {
            "imsypp": len(imsypp),
            "templates_train": len(train_templates),
            "templates_eval": len(eval_templates),
            **{extra.source: len(extra) for _, extra, _ in extras},
            **{
                f"{extra.source} (aggression)": int((extra.labels["aggression"] != MASKED).sum())
                for _, extra, _ in aggression_extras
            },
        },
        "C": {category: head.C for category, head in heads.items()},
        "head_kind": head_kind,
        "recommended_thresholds": {
            "aggression": best_macro_f1_threshold(imsypp.labels["aggression"], held_out["aggression"]),
            "threat": recommended_threat,
        },
    }
    return TrainingRun(heads=heads, report=report)


def _template_report(eval_templates: LabelledTexts, vectors: np.ndarray, heads: dict) -> dict:
    threat = heads["threat"].predict(vectors)
    aggression = heads["aggression"].predict(vectors)
    families = np.array(eval_templates.strata)
    per_family = {}
    for family in dict.fromkeys(eval_templates.strata):
        rows = families == family
        per_family[family] = {
            "threat": bool(eval_templates.labels["threat"][rows][0]),
            "rows": int(rows.sum()),
            "flagged_threat": round(float((threat[rows] >= 0.5).mean()), 4),
            "flagged_aggression": round(float((aggression[rows] >= 0.5).mean()), 4),
            "mean_threat_probability": round(float(threat[rows].mean()), 4),
        }
    return {
        **alarm_rates(eval_templates.labels["threat"], threat, 0.5),
        "positives": int(eval_templates.labels["threat"].sum()),
        "negatives": int((eval_templates.labels["threat"] == 0).sum()),
        "average_precision": average_precision(eval_templates.labels["threat"], threat),
        "per_family": per_family,
    }
