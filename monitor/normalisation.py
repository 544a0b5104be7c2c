"""Undo the spelling tricks that hide abuse from a model: spaced or dotted letters, digits for letters, lookalikes.

"i k  m a a k  j e  a f", "ik m44k j3 @f", "k.a.n.k.e.r" and "𝐤𝐚𝐧𝐤𝐞𝐫" all mean what they spell, and a person reads
them at once; a tokenizer does not. The classifier scores the normalised text, in training and in scoring alike (the
model card names the normaliser it was trained with). The stored mention, the digest and the evidence keep the text
exactly as it was posted: this is a view for the model only.

Every rule is conservative: ordinary Dutch, numbers, times, road names (A28), handles and links stay as they are.
"""

from __future__ import annotations

import re
import unicodedata

VERSION = "obfuscation-v1"

# Zero-width characters and bidirectional controls: invisible, and used to split words ("kan\u200bker").
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Three or more combining marks on one letter ("Zalgo" text).
_STACKED_MARKS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]{2,}")
# Single characters separated by one or two spaces, at least three of them: "k a n k e r", "i k  m a a k".
_SPACED = re.compile(r"(?<!\S)(?:[^\s](?: {1,2}|\t)){2,}[^\s](?!\S)")
# Single letters joined by one repeated separator, at least three: "k.a.n.k.e.r", "k-u-t", "k*u*t".
_JOINED = re.compile(r"(?<![\w.\-*_/|])(?:[^\W\d_]([.\-*_/|]))(?:[^\W\d_]\1){1,}[^\W\d_](?![\w*_/|])")
# Characters that stand for letters inside a word.
_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "€": "e", "1": "i", "!": "i", "|": "i", "0": "o", "5": "s",
                       "$": "s", "7": "t"})
_WORDLIKE = re.compile(r"[\w@€$!|]+")
# Weapon and death emoji stand for words: the model should read "mes" in "🔪 binnenkort".
_EMOJI_WORDS = {
    "🔪": " mes ", "🗡": " mes ", "⚔": " zwaarden ", "🔫": " pistool ", "💣": " bom ", "🧨": " explosief ",
    "🪓": " bijl ", "⚰": " doodskist ", "🪦": " graf ", "🩸": " bloed ", "🪢": " strop ", "☠": " doodshoofd ",
}
_EMOJI = re.compile("(?:" + "|".join(map(re.escape, _EMOJI_WORDS)) + ")\ufe0f?")
_REPEATS = re.compile(r"([^\W\d_])\1{2,}")
# Links, e-mail addresses and handles are left exactly as they are.
_PROTECTED = re.compile(r"https?://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|(?<!\w)@[\w.]{3,}(?:@[\w.-]+)?")
_SPACES = re.compile(r"[ \t]{2,}")


def normalise_for_model(text: str) -> str:
    """Return TEXT as the classifier should read it: hidden spellings undone, everything else unchanged."""
    text = unicodedata.normalize("NFKC", text)  # fullwidth and mathematical letters, ligatures
    text = _INVISIBLE.sub("", text)
    text = _STACKED_MARKS.sub("", text)
    text = _EMOJI.sub(lambda match: _EMOJI_WORDS[match.group(0).rstrip("\ufe0f")], text)
    pieces, last = [], 0
    for match in _PROTECTED.finditer(text):
        pieces += [_normalise_words(text[last : match.start()]), match.group(0)]
        last = match.end()
    pieces.append(_normalise_words(text[last:]))
    return _SPACES.sub(" ", "".join(pieces)).strip()


def _normalise_words(text: str) -> str:
    text = _SPACED.sub(_join_spaced, text)
    text = _JOINED.sub(lambda match: match.group(0).replace(match.group(1), ""), text)
    text = _WORDLIKE.sub(_unleet, text)
    return _REPEATS.sub(r"\1\1", text)


def _join_spaced(match: re.Match) -> str:
    """Join spaced-out letters; two spaces (or a tab) between letters mark where one word ends."""
    words = re.split(r" {2,}|\t", match.group(0))
    return " ".join(word.replace(" ", "") for word in words)


def _unleet(match: re.Match) -> str:
    """Read digits and symbols as letters inside a word ("m44k" -> "maak"), and leave real numbers alone."""
    token = match.group(0)
    # "!" and "|" stand for i only inside a word: "eens!!!" keeps its exclamation marks.
    core = token.strip("!|")
    if core != token:
        start = token.index(core[0]) if core else len(token)
        return token[:start] + (_unleet_core(core) if core else "") + token[start + len(core):]
    return _unleet_core(token)


def _unleet_core(token: str) -> str:
    letters = sum(ch.isalpha() for ch in token)
    stand_ins = sum(ch in "4@3€10!|5$7" for ch in token)
    if not letters or not stand_ins:
        return token
    if token.startswith("@") and len(token) > 3:
        return token  # a handle
    if re.fullmatch(r"[A-Z]\d+|\d+[a-z]{1,3}|\d+[.,:]?\d*|[A-Z]{1,4}\d+[A-Z]?", token):
        return token  # A28, N34, 2e, 10e, 3x, 12u, GS4
    if re.fullmatch(r"\d+", token.strip("@$!|€")):
        return token  # €50, 100!, $5
    if letters == 1 and not re.fullmatch(r"[a-z][3401]|@[a-z]|[a-z]@", token):
        return token  # one letter with numbers: a code, not a word (except j3, @f, m@)
    return token.translate(_LEET)
