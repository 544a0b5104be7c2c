"""Fine-tune an encoder for Weerbaar's categories: cross-validate on IMSyPP-NL, or train, calibrate and save one.

A thin wrapper over monitor/training/commands/train_classifier.py (examples and options: --help).
"""

import sys

from monitor.training.commands.train_classifier import main

if __name__ == "__main__":
    sys.exit(main())
