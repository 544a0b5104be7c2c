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


class RetrainedKeywordClassifier:
    """A stand-in for version 2 of the keyword test model: 'clown' no longer counts, 'volksverrader' now does."""

    name = "test-keywords"
    version = "2"
    categories = ("aggression", "threat")

    def score(self, texts):
        """Return fixed probabilities from keywords."""
        out = []
        for text in texts:
            lower = text.lower()
            threat = 0.95 if ("weten waar je woont" in lower or "maak je af" in lower) else 0.02
            words = ("idioot", "kut", "volksverrader")
            aggression = max(threat, 0.9 if any(w in lower for w in words) else 0.3 if "clown" in lower else 0.05)
            out.append({"aggression": aggression, "threat": threat})
        return out
