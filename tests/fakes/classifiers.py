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


class KeywordClassifier:
    """A transparent test backend: flags texts by keyword so tests can predict every label."""

    name = "test-keywords"
    version = "1"
    categories = ("aggression", "threat")
    # Words that make a text clearly aggressive (0.9), and words that make it only a little so (0.3).
    strong_words: tuple[str, ...] = ("idioot", "kut", "clown")
    mild_words: tuple[str, ...] = ()

    def score(self, texts):
        """Return fixed probabilities from keywords."""
        out = []
        for text in texts:
            lower = text.lower()
            threat = 0.95 if ("weten waar je woont" in lower or "maak je af" in lower) else 0.02
            strong = any(word in lower for word in self.strong_words)
            mild = any(word in lower for word in self.mild_words)
            aggression = max(threat, 0.9 if strong else 0.3 if mild else 0.05)
            out.append({"aggression": aggression, "threat": threat})
        return out


class RetrainedKeywordClassifier(KeywordClassifier):
    """A stand-in for version 2 of the keyword test model: 'clown' no longer counts, 'volksverrader' now does."""

    version = "2"
    strong_words = ("idioot", "kut", "volksverrader")
    mild_words = ("clown",)
