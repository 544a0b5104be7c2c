"""The one place that renders templates. HTML is autoescaped: every mention is text from a possibly hostile stranger."""

from __future__ import annotations

import re
import unicodedata

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
QUOTE_MARK = "    | "
# C0 and C1 control characters (bar tab and newline) and the bidirectional overrides that can make a text read
# differently from what it is: hostile text must not steer a terminal, a mail reader or a plain-text digest.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: str | None) -> str:
    """Return TEXT without control and bidirectional-override characters, safe for plain text and terminals."""
    return _UNSAFE_CHARACTERS.sub("", text or "")


# Characters that draw nothing yet change what is shown: bidi overrides and isolates, zero-width joiners, controls.
HIDDEN_CATEGORIES = ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp")


def is_hidden(char: str) -> bool:
    """Return whether CHAR is invisible or reorders text (a bidi override, a zero-width space, a control)."""
    return char not in "\n\t" and unicodedata.category(char) in HIDDEN_CATEGORIES


def char_name(char: str) -> str:
    """Return '[UNICODE NAME]' for CHAR, or '[U+XXXX]' when it has no name."""
    return f"[{unicodedata.name(char, f'U+{ord(char):04X}')}]"


def reveal_hidden(text: object) -> str:
    """Return TEXT with every hidden character written as [ITS NAME], so a post cannot reorder or hide what staff read."""
    if text is None:
        return ""
    return "".join(char_name(c) if is_hidden(c) else c for c in str(text))


_ENV = Environment(
    loader=PackageLoader("monitor", "templates"),
    autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["plain"] = plain


def one_line(value: object) -> str:
    """Return VALUE as a single line: a name or handle must not start a line of its own in plain text."""
    return _LINE_BREAKS.sub(" ", str(value)).strip()


def quoted(value: object) -> str:
    """Return VALUE with every line behind a quote mark, so a post's own lines cannot pass for digest structure."""
    return "\n".join(QUOTE_MARK + line for line in _LINE_BREAKS.split(str(value)))


_ENV.filters["one_line"] = one_line
_ENV.filters["quoted"] = quoted
_ENV.filters["reveal"] = reveal_hidden


def render(template: str, **context: object) -> str:
    """Render a template from monitor/templates with CONTEXT."""
    return _ENV.get_template(template).render(**context)
