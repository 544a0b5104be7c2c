"""Train the e5-head classifier, report its cross-validated metrics and write the model artifact.

A thin wrapper over monitor/training/commands/train_head.py (examples and options: --help).
"""

import sys

from monitor.training.commands.train_head import main

if __name__ == "__main__":
    sys.exit(main())
