"""Pseudonymisation for anything that leaves the building: keyed ids for people, and masked personal data in texts.

Researchers get authors, officials, reviewers and mentions as HMAC-SHA256 ids under a key that only the deployment
holds (`WEERBAAR_PSEUDONYM_KEY`): the same key gives the same ids in every export, so rounds can be joined, and
without the key nobody can test a guessed handle against an id. Texts lose every @handle, link, e-mail address, phone
number, street address with a house number and postcode, and every registered official's name (replaced by their
role): "No handle, name, URL, e-mail or phone number of the database may survive anywhere in an export".

Names are matched on a folded copy of the text, in which case, accents ("Ozturk" for "Öztürk", "Helene" for
"Hélène"), the Unicode form (an "e" and a combining acute for "é") and the kind of apostrophe or hyphen ("d’Hondt"
for "d'Hondt") do not count; each match is mapped back to the characters it came from, so only the name's own
characters are replaced. Spellings with other words ("van den Berg" for "van der Berg") are not matched.
"""

from __future__ import annotations

import hmac
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KEY_VARIABLE = "WEERBAAR_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 16
# Prefixes say what kind of person or thing an id stands for; the kind is also part of the HMAC message, so an
# author and a reviewer with the same name get unrelated ids.
KINDS = {"author": "a", "official": "o", "reviewer": "r", "annotator": "r", "mention": "m"}


class PseudonymKeyError(ValueError):
    """No usable pseudonymisation key in the environment."""


def key_from_environment(environ: Mapping[str, str] = os.environ) -> bytes:
    """Return the pseudonymisation key from WEERBAAR_PSEUDONYM_KEY; refuse a missing or short one."""
    value = environ.get(KEY_VARIABLE, "")
    if not value:
        raise PseudonymKeyError(
            f"{KEY_VARIABLE} is not set; exports are always pseudonymised with a secret key "
            f"(e.g. export {KEY_VARIABLE}=$(python3 -c 'import secrets; print(secrets.token_hex(32))')); "
            "nothing was written"
        )
    if len(value) < MIN_KEY_LENGTH:
        raise PseudonymKeyError(
            f"{KEY_VARIABLE} is {len(value)} characters; use at least {MIN_KEY_LENGTH} (a short key lets anyone "
            "test guessed handles against the ids); nothing was written"
        )
    return value.encode("utf-8")


class Pseudonymiser:
    """Keyed ids for one key: `pseudonym("author", "x:12345")` is stable for the key and unguessable without it."""

    def __init__(self, key: bytes):
        self._key = key
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def key_id(self) -> str:
        """Return a short fingerprint of the key, so two exports can be seen to share one without showing it."""
        return hmac.digest(self._key, b"weerbaar-key-id", "sha256").hex()[:12]

    def pseudonym(self, kind: str, value: object) -> str:
        """Return the keyed id of VALUE as a KIND (author, official, reviewer, annotator, mention)."""
        cache_key = (kind, str(value))
        found = self._cache.get(cache_key)
        if found is None:
            digest = hmac.digest(self._key, f"{kind}:{value}".encode(), "sha256").hex()[:20]
            found = f"{KINDS[kind]}-{digest}"
            if kind != "mention":  # a million mention ids are each asked once; caching them only costs memory
                self._cache[cache_key] = found
        return found


# -- masking texts --------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Links with a scheme or www., and bare host names with a path ("nieuws.nl/artikel/1").
_URL = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)\S+|\b(?:[a-z0-9-]+\.)+[a-z]{2,24}/\S*", re.IGNORECASE
)
# @handle, @user@instance (Mastodon) and @name.bsky.social (Bluesky).
_HANDLE = re.compile(r"(?<![\w@])@\w(?:[\w.-]*\w)?(?:@[\w-]+(?:\.[\w-]+)+)?")
# Phone numbers: + or 00 and a country code, or a leading 0, then digits with single spaces, dots, dashes or a
# bracketed area code between them; a match must hold 9 to 15 digits (years, amounts and dates hold fewer).
_PHONE = re.compile(r"(?<![\w+])(?:\+|00|\(0|0)[\d() .\-/]{7,22}\d(?!\w)")
_STREET_SUFFIXES = tuple(
    "straat weg laan plein gracht kade singel dijk steeg hof pad dreef baan markt ring wal park erf hoek zijde oord "
    "veld dam burgwal haven plantsoen allee boulevard kwartier berg brink werf poort hage horst akker weide gaarde "
    "bosch bos".split()
)
# A house number after a word ("Kerkstraat 12", "Dorpsweg 3-2", "Goghstraat 3a"): found from the number, then masked
# with the word before it when that word ends like a Dutch street name. Anchoring on numbers is far cheaper than a
# pattern that tries every word as a street name.
_HOUSE_NUMBER = re.compile(r"(?<=\s)\d{1,5}(?:\s?[a-zA-Z](?!\w)|[-/]\d{1,4}|\s+bis\b)?(?![\d\w])")
_DIGIT = re.compile(r"\d")
# Characters that draw nothing: a zero-width space inside a name or handle must not hide it from the patterns.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# A bare Bluesky handle ("boze.bsky.social") and a bare site name without a path ("boze-burger.nl").
_BARE_BLUESKY = re.compile(r"(?<![\w@.])[\w-]+(?:\.[\w-]+)*\.bsky\.social\b", re.IGNORECASE)
_BARE_SITE = re.compile(r"(?<![\w@.])(?:[a-z0-9-]+\.)+(?:nl|be|com|org|net|eu|info|io|social|online|app)\b",
                        re.IGNORECASE)
_POSTCODE = re.compile(r"\b[1-9]\d{3}\s?(?!SA|SD|SS)[A-Z]{2}\b")
# Apostrophes and hyphens that keyboards and phones write for the plain ones ("d’Hondt", "Dekker‐Bos").
_APOSTROPHES = "\u2018\u2019\u02bc\u2032"
_HYPHENS = "\u2010\u2011\u2012\u2013\u2014\u2212"
# Letters that Unicode does not decompose into a plain letter and a mark ("Sørensen", "Yıldız", "Łukasz").
_PLAIN_LETTERS = {"ø": "o", "ł": "l", "đ": "d", "ı": "i", "æ": "ae", "œ": "oe", "ß": "ss"}


def _fold_character(char: str) -> str:
    """Return CHAR as names are matched: lower case, without accents or other marks, plain apostrophe and hyphen."""
    if char in _APOSTROPHES:
        return "'"
    if char in _HYPHENS:
        return "-"
    plain = "".join(c for c in unicodedata.normalize("NFD", char.lower()) if unicodedata.category(c) != "Mn")
    return "".join(_PLAIN_LETTERS.get(c, c) for c in plain)


class _Folds(dict):
    """A str.translate table of every character met so far and its fold, filled as texts bring new characters.

    UNEVEN holds the characters whose fold is not one character long (a combining mark folds to none, "ß" to two):
    only a text holding one of them needs a map from the folded copy back to its own offsets.
    """

    def __init__(self):
        super().__init__()
        self.uneven: set[str] = set()

    def __missing__(self, code: int) -> str:
        folded = self[code] = _fold_character(chr(code))
        if len(folded) != 1:
            self.uneven.add(chr(code))
        return folded


_FOLDS = _Folds()


def fold_name(text: str) -> str:
    """Return TEXT folded as names are matched: NFKC, no invisible characters, lower case, no accents."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(_FOLDS)


@dataclass
class OfficialNames:
    """The names and handles of every registered official, for masking texts: who each is, by role."""

    names: dict[str, str] = field(default_factory=dict)  # folded full name (fold_name) -> role
    handles: dict[str, int] = field(default_factory=dict)  # lower-cased handle without @ -> official id
    _pattern: re.Pattern | None = None

    def add(self, official_id: int, name: str, role: str, handles: Iterable[str]) -> None:
        """Register one official's name (masked as their role) and handles."""
        if name and name.strip():
            words = fold_name(name).split()
            self.names[" ".join(words)] = role
            # A surname alone ("Halsema, je gaat eraan") names the official as well as the full name does.
            if len(words) > 1 and len(words[-1]) >= 4:
                self.names.setdefault(words[-1], role)
        for handle in handles:
            self.handles[handle.lower().lstrip("@")] = official_id
        self._pattern = None

    @property
    def pattern(self) -> re.Pattern | None:
        """Return one regular expression matching every folded name and bare handle (a trie: 500 names stay fast)."""
        if self._pattern is None:
            words = list(self.names) + [h for h in self.handles if len(h) >= 3]
            if words:
                self._pattern = re.compile(r"(?<![\w@])" + _trie(words) + r"(?![\w])", re.IGNORECASE)
        return self._pattern


def _trie(words: Iterable[str]) -> str:
    """Return a regular expression matching any of WORDS, sharing prefixes (whitespace inside matches any run)."""
    root: dict = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        ends = "" in node
        branches = [(char, build(child)) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        parts = [(r"\s+" if char == " " else re.escape(char)) + rest for char, rest in branches]
        body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        return f"(?:{body})?" if ends else body

    return build(root)


def _mask_addresses(text: str) -> str:
    """Return TEXT with every street name and house number after it replaced by ADDRESS."""
    pieces, done = [], 0
    for number in _HOUSE_NUMBER.finditer(text):
        before = text[done:number.start()].rstrip()
        word = before.rsplit(None, 1)[-1] if before else ""
        name = word.lstrip("([\"'").lower()
        # "Kerkstraat 12" is an address, "de weg 5 km" is not: the suffix must end a longer name.
        if not name.endswith(_STREET_SUFFIXES) or name in _STREET_SUFFIXES or not name[:1].isalpha():
            continue
        pieces += [text[done:done + len(before) - len(name)], "ADDRESS"]
        done = number.end()
    return "".join(pieces) + text[done:] if pieces else text


def _mask_names(text: str, officials: OfficialNames) -> str:
    """Return TEXT with every official's name replaced by their role in brackets, a bare handle by OFFICIAL.

    The pattern runs on the folded copy of TEXT; each match replaces the characters of TEXT it was folded from,
    and nothing else of TEXT changes.
    """
    def mask(found: str) -> str:
        role = officials.names.get(" ".join(found.lower().split()))
        return f"[{role}]" if role else "OFFICIAL"

    if text.isascii():  # folding ASCII only lowers its case, which the pattern ignores
        return officials.pattern.sub(lambda match: mask(match.group(0)), text)
    matches = list(officials.pattern.finditer(text.translate(_FOLDS)))
    if not matches:
        return text
    # origins[i] is where in TEXT the character folded[i] comes from; without uneven characters, the same place.
    origins = None
    if not _FOLDS.uneven.isdisjoint(text):
        origins = [i for i, char in enumerate(text) for _ in range(len(_FOLDS[ord(char)]))] + [len(text)]
    pieces, done = [], 0
    for match in matches:
        start, end = match.span()
        if origins is not None:
            # The end is where the next folded character starts, so marks that fold to nothing go with the name.
            start, end = origins[start], origins[end]
        pieces += [text[done:start], mask(match.group(0))]
        done = end
    return "".join(pieces) + text[done:]


def _phone(match: re.Match) -> str:
    digits = sum(char.isdigit() for char in match.group(0))
    return "PHONE" if 9 <= digits <= 15 else match.group(0)


def mask_text(text: str, officials: OfficialNames, addressed: Iterable[int] = ()) -> str:
    """Return TEXT with handles, links, e-mail addresses, phone numbers, addresses and officials' names masked.

    The handles of ADDRESSED officials (those the mention is linked to) become @OFFICIAL, every other @handle @USER;
    an official's name becomes their role in brackets, a bare handle of an official OFFICIAL.
    """
    addressed = set(addressed)
    # Full-width and other look-alike letters and digits read as plain ones ("＠boze_burger"), invisible ones go.
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))

    def handle(match: re.Match) -> str:
        return "@OFFICIAL" if officials.handles.get(match.group(0)[1:].lower()) in addressed else "@USER"

    # Handles first: a Mastodon handle (@user@instance) looks like an e-mail address to the pattern after it.
    if "@" in text:
        text = _HANDLE.sub(handle, text)
        if text.count("@") > text.count("@USER") + text.count("@OFFICIAL"):
            text = _EMAIL.sub("EMAIL", text)
    if "/" in text or "www" in text or "WWW" in text:
        text = _URL.sub("URL", text)
    if "." in text:
        text = _BARE_BLUESKY.sub("@USER", text)
        text = _BARE_SITE.sub("URL", text)
    if officials.pattern is not None:
        text = _mask_names(text, officials)
    if _DIGIT.search(text) is None:
        return text
    text = _mask_addresses(text)
    text = _POSTCODE.sub("POSTCODE", text)
    return _PHONE.sub(_phone, text)
