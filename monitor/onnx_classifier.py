"""The fine-tuned classifier on CPU: an int8 ONNX encoder run by ONNX Runtime, tokenised by `tokenizers`.

Scoring imports neither torch nor transformers: the artifact folder holds model.onnx (logits per category),
tokenizer.json (a pruned Unigram vocabulary) and model.json (version, categories, prefix, maximum length and one
temperature per category). scripts/export_classifier.py writes the folder from a fine-tuned checkpoint.
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


class OnnxArtifactError(FileNotFoundError):
    """The model folder or one of its files is missing or unreadable; the message names the path."""


class OnnxClassifier:
    """Score texts with an ONNX encoder and a temperature-scaled sigmoid per category."""

    name = "weerbaar-onnx"

    def __init__(self, session, tokenizer, card: dict, batch_size: int = 32) -> None:
        self.session = session
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
            out[batch] = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
        return out

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Return, in input order, a dict of category -> calibrated probability for each text."""
        if len(texts) == 0:
            return []
        scaled = np.clip(self.logits(texts) / self.temperatures, -50.0, 50.0)
        probabilities = 1.0 / (1.0 + np.exp(-scaled))
        return [dict(zip(self.categories, map(float, row))) for row in probabilities]


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
        return OnnxClassifier(session, tokenizer, card, batch_size=batch_size)
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise OnnxArtifactError(f"{model_dir}: model artifact cannot be read: {exc}") from exc


def load_onnx_classifier(classifier_settings: ClassifierSettings, settings: Settings) -> OnnxClassifier:
    """Load the weerbaar-onnx classifier from the folder the settings name."""
    return read_onnx_classifier(settings.resolve(classifier_settings.model_path), classifier_settings.batch_size)
