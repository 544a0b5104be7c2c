"""Run the `weerbaar` CLI with a stand-in model registered first; tests start this file as a real process.

FAKE_MODEL_NAME is the name the test's config gives as classifier.model; FAKE_MODEL_SECONDS is how long scoring a
batch takes, so a test can signal the process while a batch is in flight. The real model is never loaded.
"""

import os
import sys
import time

from monitor.classifier import register_classifier
from monitor.cli import main


class StandInClassifier:
    """A model that finds nothing, after a configurable pause per batch."""

    version = "1"
    categories = ("aggression", "threat")

    def __init__(self, name: str, seconds: float):
        self.name = name
        self.seconds = seconds

    def score(self, texts):
        """Return low probabilities for every text."""
        time.sleep(self.seconds)
        return [{"aggression": 0.1, "threat": 0.0} for _ in texts]


if __name__ == "__main__":
    name = os.environ["FAKE_MODEL_NAME"]
    seconds = float(os.environ.get("FAKE_MODEL_SECONDS", "0"))
    register_classifier(name, lambda classifier_settings, settings: StandInClassifier(name, seconds))
    sys.argv = ["weerbaar", *sys.argv[1:]]
    main()
