"""The classifier interface: score(texts) -> one probability per category per text.

Backends register a factory under a name (like llm's model plugins); settings pick one by name. Tests register
their own backends instead of loading a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .settings import ClassifierSettings, Settings

CATEGORIES = ("aggression", "threat")


class Classifier(Protocol):
    """A model that gives each text a probability per category."""

    name: str
    version: str
    categories: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Return, in input order, a dict of category -> probability for each text."""
        ...


@dataclass
class Verdict:
    """What the model said about one text, with the labels the thresholds give."""

    scores: dict[str, float]
    labels: list[str]
    flagged: bool
    model: str


_BACKENDS: dict[str, Callable[[ClassifierSettings, Settings], Classifier]] = {}


def register_classifier(name: str, factory: Callable[[ClassifierSettings, Settings], Classifier]) -> None:
    """Make a classifier backend available under NAME."""
    _BACKENDS[name] = factory


def available_classifiers() -> list[str]:
    """Return the names of the registered backends."""
    _register_builtin()
    return sorted(_BACKENDS)


def load_classifier(settings: Settings) -> Classifier:
    """Load the classifier that the settings name."""
    _register_builtin()
    name = settings.classifier.model
    if name not in _BACKENDS:
        raise ValueError(f"unknown classifier {name!r}; available: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[name](settings.classifier, settings)


def model_label(classifier: Classifier) -> str:
    """Return 'name@version', the model tag written next to every score."""
    return f"{classifier.name}@{classifier.version}"


def judge(classifier: Classifier, texts: Sequence[str], thresholds: dict[str, float]) -> list[Verdict]:
    """Score TEXTS and apply the per-category THRESHOLDS."""
    tag = model_label(classifier)
    verdicts = []
    for scores in classifier.score(texts):
        labels = [c for c, p in scores.items() if p >= thresholds.get(c, 0.5)]
        verdicts.append(Verdict(scores=scores, labels=labels, flagged=bool(labels), model=tag))
    return verdicts


def band(probability: float, bands: dict[str, float]) -> str:
    """Return the name of the highest band whose floor PROBABILITY reaches."""
    for name, floor in sorted(bands.items(), key=lambda item: item[1], reverse=True):
        if probability >= floor:
            return name
    return "low"


def _register_builtin() -> None:
    if "e5-head" not in _BACKENDS:
        from .e5_head import load_e5_head

        register_classifier("e5-head", load_e5_head)
    if "weerbaar-onnx" not in _BACKENDS:
        # Scoring with it needs onnxruntime and tokenizers (imported when a model loads), never torch or transformers.
        from .onnx_classifier import load_onnx_classifier

        register_classifier("weerbaar-onnx", load_onnx_classifier)
