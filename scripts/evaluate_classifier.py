"""Evaluate a trained Weerbaar classifier, as it is, on labelled datasets and a functional test suite.

A thin wrapper over monitor/training/commands/evaluate_classifier.py (examples and options: --help).
"""

import sys

from monitor.training.commands.evaluate_classifier import main

if __name__ == "__main__":
    sys.exit(main())
