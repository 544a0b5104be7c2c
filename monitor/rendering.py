"""The one place that renders templates. HTML is autoescaped: every mention is text from a possibly hostile stranger."""

from __future__ import annotations

import unicodedata

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

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
_ENV.filters["reveal"] = reveal_hidden


def render(template: str, **context: object) -> str:
    """Render a template from monitor/templates with CONTEXT."""
    return _ENV.get_template(template).render(**context)
