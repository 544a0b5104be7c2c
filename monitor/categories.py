"""The categories every score and every human label is given in (definitions: models/GUIDELINES.md)."""

CATEGORIES = ("aggression", "threat", "insult", "identity_attack")
