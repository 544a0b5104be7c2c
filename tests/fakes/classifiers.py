"""Stand-in classifiers for tests: transparent, instant, and never downloaded."""

from __future__ import annotations


class CalmClassifier:
    """A stand-in model that finds nothing."""

    name = "calm-fake"
    version = "1"
    categories = ("aggression", "threat")

    def score(self, texts):
        """Return low probabilities for every text."""
        return [{"aggression": 0.1, "threat": 0.0} for _ in texts]
