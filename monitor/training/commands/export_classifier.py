"""Export a fine-tuned checkpoint to the int8 ONNX artifact that the `weerbaar-onnx` backend scores with.

Example:

    python scripts/export_classifier.py --checkpoint var/checkpoints/e5-ft --out models/weerbaar-e5-ft \\
        --vocab-data imsypp:/work/shared/data/imsypp-nl/train.csv \\
        --vocab-data rtp-lx:/work/shared/data/rtp-lx-nl/RTP_LX_NL.json \\
        --vocab-data olid:/work/shared/data/xling/olid/olivia.tsv

The vocabulary is pruned to the pieces that the --vocab-data texts (plus the training template families and the
bundled sample mentions) use, up to --max-pieces: every single-character piece (so any text still tokenises), then
every piece the Dutch texts use, then the most frequent pieces of the other languages. Dutch comes first because a
Dutch text whose pieces were all kept tokenises exactly as before, and so scores exactly as the checkpoint does. Only
piece statistics leave the datasets, never their text. The script then checks the artifact: size, load time, and
agreement with the checkpoint's torch logits on held-out texts. With --refit-thresholds the thresholds are fitted
again on the int8 artifact's own scores of the training run's calibration rows (threat at the run's false-alarm
budget), since int8 moves scores a little; model.json then holds those, and the output shows both. With
--from-artifact, --run names the training run record (its arguments rebuild the rows; only IMSyPP, the threat data,
the calibration fraction and the seed decide them).

Example (quantise a shipped artifact again, the current way, when its float checkpoint is gone; the check then
compares with the source artifact):

    python scripts/export_classifier.py --from-artifact models/weerbaar-e5-ft --out var/e5-ft-requantised \
        --static-calibration corpus:train --version 2026.12.3
    (add --refit-thresholds --run RUN_JSON to fit the thresholds on the requantised artifact's own scores)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from monitor.onnx_classifier import read_onnx_classifier
from monitor.settings import PROJECT_ROOT
from monitor.training.calibration import refit_artifact_thresholds
from monitor.training.commands.train_classifier import held_out_rows
from monitor.training.datasets import READERS, read_dataset
from monitor.training.export import write_onnx_artifact
from monitor.training.finetune import load_checkpoint
from monitor.training.threat_templates import EVALUATION, TRAIN, generate_templates

SAMPLE = PROJECT_ROOT / "config" / "samples" / "mentions.jsonl"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="folder written by train_classifier.py --out")
    source.add_argument("--from-artifact", type=Path, metavar="DIR",
                        help="an exported artifact folder to quantise again (needs --static-calibration)")
    parser.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    parser.add_argument("--vocab-data", action="append", default=[], metavar="FORMAT:PATH",
                        help=f"texts whose pieces the vocabulary keeps (repeatable); formats: {', '.join(READERS)}")
    parser.add_argument("--max-pieces", type=int, default=30000, help="vocabulary size after pruning (default 30000); 0 keeps the base model's "
                             "vocabulary unpruned (needed for tokenizers other than a Unigram one, e.g. BERTje's)")
    parser.add_argument("--no-quantise", action="store_true", help="keep float32 weights")
    parser.add_argument("--static-calibration", metavar="FORMAT:PATH",
                        help="quantise with input scales fixed on every 30th text of this set, up to 240 (faster "
                             "scoring at the same scores; e.g. corpus:train); default: inputs quantised per row")
    parser.add_argument("--version", default="2026.12.0", help="model version written next to every score")
    parser.add_argument("--refit-thresholds", action="store_true",
                        help="fit the thresholds again on the artifact's own scores of the rows the training run "
                             "calibrated on (rebuilt from its run record; its data files must be there)")
    parser.add_argument("--run", type=Path, metavar="RUN_JSON",
                        help="the training run record --refit-thresholds rebuilds the rows from (default: the "
                             "checkpoint's run.json; needed with --from-artifact)")
    return parser.parse_args(argv)


def refit(arguments, run: dict | None, before: dict) -> dict:
    """Refit the thresholds of the artifact in --out when asked (--refit-thresholds); return what main prints of it."""
    if not arguments.refit_thresholds:
        return {}
    try:
        if arguments.run:  # else RUN, the checkpoint's (requantise makes sure --from-artifact has --run)
            run = json.loads(arguments.run.read_text(encoding="utf-8"))
        held_out = held_out_rows(run["arguments"])
        refitted = refit_artifact_thresholds(arguments.out, held_out,
                                             float(run["arguments"].get("false_alarm_rate", 0.05)))
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"error: --refit-thresholds: {exc}") from None
    return {"thresholds": {"before": before, "refitted": refitted, "rows": len(held_out)}}


def sample_texts() -> list[str]:
    """Return the texts of the bundled sample mentions."""
    texts = []
    for raw in SAMPLE.read_bytes().splitlines():
        try:
            item = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            texts.append(item["text"])
    return texts


def calibration_texts(spec: str) -> list[str]:
    """Return the texts static quantisation fixes its scales on: every 30th text of the set SPEC, up to 240."""
    return [r.text for r in read_dataset(spec)][::30][:240]


def agreement_report(out: Path, reference: np.ndarray, exported: np.ndarray, categories, load_seconds: float,
                     check_texts: int, **extra) -> dict:
    """Return what main prints: the artifact's files and size, and how its logits agree with the REFERENCE ones."""
    difference = np.abs(reference - exported)
    return {
        "out": str(out),
        "files": {path.name: path.stat().st_size for path in sorted(out.iterdir())},
        "total_bytes": sum(path.stat().st_size for path in out.iterdir() if path.is_file()),
        **extra,
        "load_seconds": round(load_seconds, 2),
        "check_texts": check_texts,
        "max_abs_logit_difference": round(float(difference.max()), 4),
        "mean_abs_logit_difference": round(float(difference.mean()), 4),
        "sign_agreement": {category: float(np.mean((reference[:, i] > 0) == (exported[:, i] > 0)))
                           for i, category in enumerate(categories)},
    }


def check_texts() -> list[str]:
    """Return the texts the artifact is checked on: evaluation template families and bundled sample mentions."""
    return [t.text for t in generate_templates(1, 10, EVALUATION)] + sample_texts()[:200]


def timed_load(out: Path):
    """Return the artifact in OUT read as the scorer reads it, and the seconds that took up to its first score."""
    started = time.perf_counter()
    classifier = read_onnx_classifier(out)
    classifier.score(["opwarmen"])
    return classifier, time.perf_counter() - started


def requantise(arguments) -> int:
    """Quantise the artifact --from-artifact again into --out and compare the two."""
    from monitor.training.export import requantise_artifact

    if not arguments.static_calibration:
        raise SystemExit("--from-artifact needs --static-calibration FORMAT:PATH (the texts that fix the scales)")
    if arguments.refit_thresholds and not arguments.run:
        raise SystemExit("error: --refit-thresholds: --from-artifact needs --run RUN_JSON: an artifact does not "
                         "record its calibration rows")
    try:
        card = requantise_artifact(arguments.from_artifact, arguments.out,
                                   calibration_texts(arguments.static_calibration), arguments.version)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    source = read_onnx_classifier(arguments.from_artifact)
    refitted = refit(arguments, None, dict(card.get("thresholds", {})))
    classifier, load_seconds = timed_load(arguments.out)
    texts = check_texts()
    print(json.dumps(agreement_report(arguments.out, source.logits(texts), classifier.logits(texts),
                                      classifier.categories, load_seconds, len(texts),
                                      compared_with=str(arguments.from_artifact), **refitted), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Export, then check the artifact against the checkpoint."""
    arguments = parse_arguments(argv)
    if arguments.from_artifact:
        return requantise(arguments)
    import torch

    torch.set_num_threads(2)
    model = load_checkpoint(arguments.checkpoint)
    run = json.loads((arguments.checkpoint / "run.json").read_text(encoding="utf-8"))
    dutch_texts = [t.text for t in generate_templates(0, 60, TRAIN)] + sample_texts()
    other_texts = []
    for spec in arguments.vocab_data:
        for record in read_dataset(spec):
            (dutch_texts if record.language == "nl" else other_texts).append(record.text)
    card = {
        "name": "weerbaar-onnx",
        "version": arguments.version,
        "base_model": model.config.base_model,
        "layers": model.config.num_layers,
        "thresholds": run.get("thresholds", {}),
        "vocabulary_from": [spec.split(":", 1)[0] for spec in arguments.vocab_data] + ["threat-templates", "sample"],
    }
    written = write_onnx_artifact(model, arguments.out, dutch_texts if arguments.max_pieces else None,
                                  arguments.max_pieces,
                                  quantise=not arguments.no_quantise, card=card, other_texts=other_texts,
                                  calibration_texts=calibration_texts(arguments.static_calibration)
                                  if arguments.static_calibration else None)
    refitted = refit(arguments, run, card["thresholds"])
    classifier, load_seconds = timed_load(arguments.out)
    texts = check_texts()
    print(json.dumps(agreement_report(arguments.out, model.logits(texts), classifier.logits(texts),
                                      model.config.categories, load_seconds, len(texts),
                                      vocabulary_pieces=written["vocabulary_pieces"], **refitted), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
