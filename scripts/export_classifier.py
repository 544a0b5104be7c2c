"""Export a fine-tuned checkpoint to the int8 ONNX artifact that the `weerbaar-onnx` backend scores with.

A thin wrapper over monitor/training/commands/export_classifier.py (examples and options: --help).
"""

import sys

from monitor.training.commands.export_classifier import main

if __name__ == "__main__":
    sys.exit(main())
