"""The weerbaar-onnx backend: export matches torch, pruning keeps tokens, the score contract, and no torch at scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Regex, Tokenizer, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from monitor.classifier import available_classifiers, load_classifier
from monitor.onnx_classifier import WINDOW_OVERLAP, OnnxArtifactError, read_onnx_classifier
from monitor.settings import ClassifierSettings, Settings
from monitor.training.base_model import characters_outside
from monitor.training.export import write_onnx_artifact
from monitor.training.finetune import FinetuneConfig, FinetunedModel, MultiLabelEncoder

REPO = Path(__file__).resolve().parent.parent
TEXTS = ["Ik weet waar je woont!", "Mooi werk wethouder", "dank", "Ææ 🤬 日本 zzz, wethouder?"]


@pytest.fixture(scope="module")
def tiny_model():
    """A tiny fine-tuned-model stand-in with a real Unigram tokenizer in the XLM-R layout, built here."""
    words = ["▁ik", "▁weet", "▁waar", "▁je", "▁woont", "▁mooi", "▁werk", "▁wethouder", "▁dank", "query", ":"]
    letters = sorted(set("".join(words).replace("▁", "")) | set("abcdefghijklmnopqrstuvwxyz!?.,é") | {"▁"})
    pieces = ["<s>", "<pad>", "</s>", "<unk>", *words, *letters]
    scores = [0.0] * 4 + [-5.0] * len(words) + [-10.0] * len(letters)
    backend = Tokenizer(Unigram(list(zip(pieces, scores)), unk_id=3))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(characters_outside(pieces)), behavior="isolated"),
    ])
    backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                           special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>")
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=len(pieces), hidden_size=16, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                                   pad_token_id=1), add_pooling_layer=False)
    config = FinetuneConfig(num_layers=None, max_length=32)
    module = MultiLabelEncoder.build(encoder, len(config.categories), 0.0).eval()
    return FinetunedModel(module, tokenizer, config, temperatures={"threat": 2.0}), pieces


@pytest.fixture(scope="module")
def int8_artifact(tiny_model, tmp_path_factory):
    """The tiny model exported as an int8 ONNX artifact."""
    model, _ = tiny_model
    out = tmp_path_factory.mktemp("onnx") / "int8"
    write_onnx_artifact(model, out, quantise=True, card={"version": "test"})
    return out


def test_backend_is_registered():
    assert "weerbaar-onnx" in available_classifiers()


def test_missing_artifact_names_the_path(tmp_path):
    with pytest.raises(OnnxArtifactError, match="model.json"):
        read_onnx_classifier(tmp_path)
    settings = Settings(db_path=tmp_path / "w.db")
    settings.classifier = ClassifierSettings(model="weerbaar-onnx", model_path=tmp_path / "missing")
    with pytest.raises(OnnxArtifactError, match="missing"):
        load_classifier(settings)


def test_export_then_onnx_scoring_matches_torch_logits(tiny_model, int8_artifact, tmp_path):
    model, pieces = tiny_model
    texts = TEXTS
    card = write_onnx_artifact(model, tmp_path / "fp32", vocabulary_texts=texts[:2], max_pieces=60, quantise=False,
                               card={"version": "test"})
    assert card["vocabulary_pieces"] <= len(pieces)
    exported = read_onnx_classifier(tmp_path / "fp32")
    # The first two texts use only kept pieces, so pruning leaves their tokens, and so their logits, unchanged.
    np.testing.assert_allclose(exported.logits(texts[:2]), model.logits(texts[:2]), atol=1e-4)
    scores = exported.score(texts)
    threat = 1 / (1 + np.exp(-model.logits(texts[:2])[:, 1] / 2.0))
    np.testing.assert_allclose([s["threat"] for s in scores[:2]], threat, atol=1e-4)
    assert all(0.0 <= p <= 1.0 for row in scores for p in row.values())

    quantised = read_onnx_classifier(int8_artifact)
    np.testing.assert_allclose(quantised.logits(texts), model.logits(texts), atol=0.1)
    assert json.loads((int8_artifact / "model.json").read_text())["quantised"].startswith("int8")


def test_artifact_keeps_the_score_contract(int8_artifact):
    classifier = read_onnx_classifier(int8_artifact)
    texts = TEXTS + ["", "🤬🤬🤬", "x" * 5000]
    scores = classifier.score(texts)
    assert len(scores) == len(texts)
    assert all(set(row) == set(classifier.categories) for row in scores)
    assert all(0.0 <= p <= 1.0 for row in scores for p in row.values())
    # Order is kept: scoring one text alone gives the numbers it gets in a batch of others.
    for index in (0, 2, len(texts) - 1):
        alone = classifier.score([texts[index]])[0]
        assert alone == pytest.approx(scores[index], abs=1e-4)
    assert classifier.score([]) == []


def test_scoring_path_imports_neither_torch_nor_transformers(int8_artifact):
    script = (
        "import sys; from monitor.onnx_classifier import read_onnx_classifier; "
        f"c = read_onnx_classifier({str(int8_artifact)!r}); c.score(['Ik weet waar je woont']); "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)


def test_int8_artifact_quantises_every_weight_and_each_input_row_on_its_own(int8_artifact):
    import onnx
    from onnx import helper

    graph = onnx.load(str(int8_artifact / "model.onnx")).graph
    weight_only = [node for node in graph.node if node.op_type == "MatMulNBits"]
    # Two layers of four attention and two feed-forward projections, plus the head.
    assert len(weight_only) >= 12
    assert all(helper.get_attribute_value(a) == 4 for node in weight_only for a in node.attribute
               if a.name == "accuracy_level")
    # No input is quantised per tensor: that is what made scores depend on the batch.
    assert not any(node.op_type in ("DynamicQuantizeLinear", "MatMulInteger") for node in graph.node)
    assert json.loads((int8_artifact / "model.json").read_text())["input_quantisation"] == "per-row"


def test_a_texts_score_does_not_depend_on_the_other_texts_of_its_batch(int8_artifact):
    classifier = read_onnx_classifier(int8_artifact, batch_size=32)
    texts = TEXTS + ["wethouder " * 40, "ik", "mooi werk " * 7, "x" * 300]
    together = classifier.logits(texts)
    for index, text in enumerate(texts):
        alone = classifier.logits([text])[0]
        mixed = classifier.logits([text, *reversed(texts)])[0]
        assert np.abs(alone - together[index]).max() <= 1e-4
        assert np.abs(mixed - together[index]).max() <= 1e-4


def test_an_artifact_quantised_per_batch_is_run_one_window_per_call(int8_artifact, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for path in int8_artifact.iterdir():
        (old / path.name).write_bytes(path.read_bytes())
    card = json.loads((old / "model.json").read_text())
    del card["input_quantisation"]
    (old / "model.json").write_text(json.dumps(card))
    assert read_onnx_classifier(old, batch_size=32).batch_size == 1
    assert read_onnx_classifier(int8_artifact, batch_size=32).batch_size == 32


def test_a_long_text_is_scored_over_overlapping_windows_that_cover_all_of_it(int8_artifact):
    classifier = read_onnx_classifier(int8_artifact)
    long_text = " ".join(["mooi", "werk", "wethouder", "dank"] * 30) + " ik weet waar je woont"
    pieces = classifier.tokenizer.encode(classifier.prefix + long_text).ids
    assert len(pieces) > classifier.max_length
    windows, owners = classifier.windows(["dank", long_text])
    assert owners[0] == 0 and set(owners[1:]) == {1} and len(windows) >= 3
    head = pieces[: 1 + classifier._prefix_pieces]
    body = pieces[len(head) : -1]
    covered = []
    for window in windows[1:]:
        assert len(window) <= classifier.max_length
        assert window[: len(head)] == head and window[-1] == pieces[-1]
        covered.append(window[len(head) : -1])
    assert covered[0] == body[: len(covered[0])] and covered[-1] == body[-len(covered[-1]) :]
    # Consecutive windows overlap, so no phrase is only ever seen cut in two.
    overlap = min(WINDOW_OVERLAP, len(covered[0]) // 4)
    assert overlap > 0 and all(a[-overlap:] == b[:overlap] for a, b in zip(covered, covered[1:]))
    # The text's logits are, per category, the highest of its windows'.
    np.testing.assert_allclose(classifier.logits([long_text])[0], classifier.window_logits(windows[1:]).max(axis=0),
                               atol=1e-5)


def test_a_dynamically_quantised_export_is_read_back_as_float_matmuls(tiny_model, tmp_path):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from monitor.training.export import dequantise_int8

    model, _ = tiny_model
    write_onnx_artifact(model, tmp_path / "fp32", quantise=False, card={"version": "test"})
    quantize_dynamic(str(tmp_path / "fp32" / "model.onnx"), str(tmp_path / "dynamic.onnx"),
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    dequantise_int8(tmp_path / "dynamic.onnx", tmp_path / "fp32" / "model.onnx")
    graph = onnx.load(str(tmp_path / "fp32" / "model.onnx")).graph
    assert not any(node.op_type in ("DynamicQuantizeLinear", "MatMulInteger") for node in graph.node)
    restored = read_onnx_classifier(tmp_path / "fp32")
    np.testing.assert_allclose(restored.logits(TEXTS), model.logits(TEXTS), atol=0.05)


def test_a_static_int8_export_keeps_scores_independent_of_the_batch_and_close_to_float(tiny_model, tmp_path):
    import onnx
    from onnx import numpy_helper

    model, _ = tiny_model
    card = write_onnx_artifact(model, tmp_path / "static", quantise=True, card={"version": "test"},
                               calibration_texts=TEXTS * 5)
    assert card["quantised"].startswith("int8, 7-bit weights: inputs at scales fixed on 20 texts")
    graph = onnx.load(str(tmp_path / "static" / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    # Two layers: attention fused, feed-forward outputs quantised per row, every other projection at fixed scales
    # with a float result (Q, K, V, attention output, feed-forward input: 5 a layer).
    assert ops.count("MultiHeadAttention") == 2 and ops.count("MatMulInteger") == 2
    assert ops.count("MatMulIntegerToFloat") == 10
    assert not {"QLinearMatMul", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulNBits", "Softmax"} & set(ops)
    # Weights within 7 bits, so CPUs without VNNI cannot saturate their 16-bit sums (the same scores everywhere).
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 12 and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    classifier = read_onnx_classifier(tmp_path / "static", batch_size=32)
    together = classifier.logits(TEXTS + ["wethouder " * 40])
    for index, text in enumerate(TEXTS):
        assert np.abs(classifier.logits([text])[0] - together[index]).max() <= 1e-4
    np.testing.assert_allclose(together[: len(TEXTS)], model.logits(TEXTS), atol=0.1)


def test_fused_attention_scores_as_the_spelled_out_graph(tiny_model, tmp_path):
    import onnx

    from monitor.training.export import fuse_attention

    model, _ = tiny_model
    write_onnx_artifact(model, tmp_path / "float", quantise=False, card={"version": "test"})
    spelled_out = read_onnx_classifier(tmp_path / "float", batch_size=32).logits(TEXTS + ["wethouder " * 40])
    fuse_attention(tmp_path / "float" / "model.onnx", tmp_path / "float" / "model.onnx")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "float" / "model.onnx")).graph.node]
    assert ops.count("MultiHeadAttention") == 2 and "Softmax" not in ops and "Transpose" not in ops
    # Padding is masked alike: the short texts share a batch with a long one.
    fused = read_onnx_classifier(tmp_path / "float", batch_size=32).logits(TEXTS + ["wethouder " * 40])
    np.testing.assert_allclose(fused, spelled_out, atol=1e-4)


def test_feed_forward_outputs_quantised_per_row_stay_close_to_float_and_apart(tiny_model, tmp_path):
    from monitor.training.export import quantise_feed_forward_per_row

    model, _ = tiny_model
    write_onnx_artifact(model, tmp_path / "float", quantise=False, card={"version": "test"})
    reference = model.logits(TEXTS)
    quantise_feed_forward_per_row(tmp_path / "float" / "model.onnx", tmp_path / "float" / "model.onnx")
    classifier = read_onnx_classifier(tmp_path / "float", batch_size=32)
    together = classifier.logits(TEXTS)
    np.testing.assert_allclose(together, reference, atol=0.05)
    # A row with values 100 times larger in the same batch does not coarsen the others' quantisation.
    loud = classifier.logits(["wethouder " * 30] + TEXTS)
    np.testing.assert_allclose(loud[1:], together, atol=1e-5)


def test_a_shipped_artifact_is_quantised_again_from_its_own_int8_weights(tiny_model, tmp_path):
    import onnx

    from monitor.training.export import requantise_artifact

    model, _ = tiny_model
    write_onnx_artifact(model, tmp_path / "old", quantise=True, card={"version": "2026.1.0",
                                                                      "thresholds": {"threat": 0.6}})
    old = read_onnx_classifier(tmp_path / "old")
    with pytest.raises(ValueError, match="another folder"):
        requantise_artifact(tmp_path / "old", tmp_path / "old", TEXTS * 5, "2026.1.1")
    card = requantise_artifact(tmp_path / "old", tmp_path / "new", TEXTS * 5, "2026.1.1")
    assert card["version"] == "2026.1.1" and card["requantised_from"] == "2026.1.0"
    assert card["thresholds"] == {"threat": 0.6} and card["temperatures"]["threat"] == 2.0
    ops = {node.op_type for node in onnx.load(str(tmp_path / "new" / "model.onnx")).graph.node}
    assert {"MatMulIntegerToFloat", "MatMulInteger", "MultiHeadAttention"} <= ops and "MatMulNBits" not in ops
    new = read_onnx_classifier(tmp_path / "new")
    assert new.version == "2026.1.1"
    assert (tmp_path / "new" / "tokenizer.json").read_bytes() == (tmp_path / "old" / "tokenizer.json").read_bytes()
    np.testing.assert_allclose(new.logits(TEXTS), old.logits(TEXTS), atol=0.1)
    # A static artifact (fused, per-row feed-forward outputs, float results) reads back too, and its 7-bit weights
    # come out on the same grid: quantised again, it scores as before.
    again = requantise_artifact(tmp_path / "new", tmp_path / "again", TEXTS * 5, "2026.1.2")
    assert again["requantised_from"] == "2026.1.1"
    np.testing.assert_allclose(read_onnx_classifier(tmp_path / "again").logits(TEXTS), new.logits(TEXTS), atol=0.02)
