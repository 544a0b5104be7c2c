"""The source interface every collector implements.

A source yields batches. Each batch carries the mentions it read, the records it had to quarantine, and the cursor to
store once that batch is committed. The pipeline commits a batch's mentions, scores and cursor in one transaction,
so a crash loses nothing and the next run repeats nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from monitor.mentions import Mention, MentionError

# What converting one malformed record can raise: a field the converter rejected (MentionError), or a field of the
# wrong JSON type deep in a payload. Either way that record is quarantined and the run goes on: a source must never
# fail forever on one record.
MALFORMED = (MentionError, AttributeError, TypeError, KeyError, ValueError, OverflowError)


@dataclass
class Quarantined:
    """A record that could not become a mention: where it was, why, and its raw payload."""

    location: str
    reason: str
    raw: str


def malformed_reason(exc: BaseException) -> str:
    """Return why a record could not become a mention, for its quarantine row."""
    return str(exc) if isinstance(exc, MentionError) else f"unexpected structure: {type(exc).__name__}: {exc}"


@dataclass
class Batch:
    """Mentions and quarantined records read since the last cursor, and the cursor after them."""

    mentions: list[Mention] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    cursor: str | None = None


class SourceStopped(Exception):
    """A source ended its run early (rate limit, auth failure, outage); the pipeline records why and moves on.

    RETRY_AFTER is an ISO 8601 UTC time before which the source should not be asked again, when the platform said so.
    """

    def __init__(self, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Source(Protocol):
    """A collector: yields batches of mentions read after CURSOR."""

    name: str

    def fetch(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches read after CURSOR, each with the cursor to store once it is committed."""
        ...
