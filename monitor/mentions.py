"""The one normalised shape of a mention, whatever platform or file it came from."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

from .times import parse_timestamp

PLATFORMS = ("x", "mastodon", "bluesky")
# Longer texts are cut: no platform allows more, and a 20,000-character rant must not slow scoring or bloat evidence.
MAX_TEXT_CHARS = 10_000
MAX_HANDLE_CHARS = 320
# C0 controls (bar tab and newline), DEL and C1 controls: they can hide text or drive a terminal (ANSI escapes).
# Bidirectional embeddings, overrides and isolates reorder how text is shown ("Trojan Source"): a post could make
# its author or a link read as something else. Zero-width spaces, word joiners and BOMs hide words from readers and
# from the classifier ("id\u200bioot"). Zero-width (non-)joiners and the directional marks stay: scripts and
# emoji sequences need them, and they cannot reorder text.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff]")
# A handle is one word: no whitespace, no format characters of any kind (joiners, marks, the Arabic letter mark).
_HANDLE_JUNK = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


class MentionError(ValueError):
    """A record that cannot become a mention; FIELD names what was wrong."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"field '{field_name}': {message}")
        self.field = field_name


@dataclass
class Mention:
    """A public post that mentions a registered official, normalised across platforms."""

    platform: str
    post_id: str
    text: str
    created_at: str
    target_handle: str | None = None
    author_handle: str | None = None
    author_id: str | None = None
    url: str | None = None
    in_reply_to: str | None = None
    lang: str | None = None
    raw_sha256: str = ""
    # The text of a post this one quotes: shown beside the mention, never scored or matched as its own words.
    context_text: str | None = None
    # Handles the platform itself says the post addresses (X entities, Mastodon's mentions list), in the form the
    # accounts table stores; the pipeline links the post to each consenting official among them.
    addressed: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def as_row(self) -> dict:
        """Return the columns stored in the mentions table.

        EXTRA is not stored, and neither are TARGET_HANDLE and ADDRESSED: who a post addresses lives in
        mention_targets, one row per consenting official, so that erasing one official leaves no trace of them on a
        post kept for others.
        """
        row = asdict(self)
        for name in ("extra", "target_handle", "addressed"):
            row.pop(name)
        return row


def clean_handle(handle: str) -> str:
    """Remove whitespace, control and invisible format characters from a handle or author name."""
    return _HANDLE_JUNK.sub("", handle)[:MAX_HANDLE_CHARS]


def clean_text(text: str) -> str:
    """Remove control characters, bidirectional overrides and hidden spaces, and cut text to MAX_TEXT_CHARS."""
    text = _CONTROL_CHARS.sub("", text)
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + " […]"
    return text


def payload_hash(raw: object) -> str:
    """Return the SHA-256 of a raw payload, so evidence can be matched to what the platform served."""
    if isinstance(raw, bytes):
        data = raw
    elif isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def make_mention(
    *,
    platform: str,
    post_id: object,
    text: object,
    created_at: object,
    raw: object,
    target_handle: str | None = None,
    author_handle: str | None = None,
    author_id: object = None,
    url: str | None = None,
    in_reply_to: object = None,
    lang: str | None = None,
    context_text: object = None,
    addressed: list[str] | None = None,
) -> Mention:
    """Validate and normalise one mention; raise MentionError naming the bad field."""
    if platform not in PLATFORMS:
        raise MentionError("platform", f"unknown platform {platform!r} (expected one of {', '.join(PLATFORMS)})")
    if post_id is None or str(post_id).strip() == "":
        raise MentionError("id", "missing post id")
    if not isinstance(post_id, (str, int)) or isinstance(post_id, bool):
        raise MentionError("id", f"expected text or a number, got {type(post_id).__name__}")
    if not isinstance(text, str) or not text.strip():
        raise MentionError("text", "missing or empty text")
    try:
        created = parse_timestamp(created_at)
    except ValueError as exc:
        raise MentionError("created_at", str(exc) if "out of range" in str(exc)
                           else f"not an ISO 8601 timestamp: {created_at!r}") from None
    return Mention(
        platform=platform,
        post_id=str(post_id).strip(),
        text=clean_text(text),
        created_at=created,
        author_handle=_optional_handle("author", author_handle),
        author_id=str(author_id) if author_id is not None else None,
        url=_optional_text("url", url),
        in_reply_to=str(in_reply_to) if in_reply_to is not None else None,
        lang=_optional_text("lang", lang),
        raw_sha256=payload_hash(raw),
        context_text=clean_text(context_text) if isinstance(context_text, str) and context_text.strip() else None,
        addressed=[clean_handle(h) for h in (addressed or []) if isinstance(h, str) and h],
        target_handle=_optional_handle("target", target_handle),
    )


def _optional_text(field_name: str, value: object) -> str | None:
    """Return an optional text field cleaned, or None; raise MentionError when it is not text."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MentionError(field_name, f"expected text, got {type(value).__name__}")
    return clean_text(value).strip() or None


def _optional_handle(field_name: str, value: object) -> str | None:
    """Return an optional handle cleaned of invisible characters, or None; raise MentionError when not text."""
    text = _optional_text(field_name, value)
    return clean_handle(text) or None if text else None


def normalise_handle(platform: str, handle: str) -> str:
    """Return the comparable form of a handle: lower case, no leading @ (Mastodon keeps user@instance)."""
    handle = handle.strip().lower()
    return handle[1:] if handle.startswith("@") else handle
