"""The one retry policy for every platform client, and the translation of a rate limit into a stopped source.

Transient failures (5xx, connection errors, timeouts) are retried with exponential backoff and jitter, a few times,
then given up. A 429 is never retried: the platform said when to come back, so the source stops and the pipeline
records that time (``cursors.retry_after``) and skips the source until then.

Every platform source reads the same optional settings from its [sources.NAME] table: ``retry_attempts`` (4),
``retry_wait_seconds`` (1.0, the first backoff), ``retry_max_wait_seconds`` (30) and ``timeout_seconds`` (30).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from monitor.times import iso_from_epoch, iso_utc, now

from .base import SourceStopped

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ATTEMPTS = 4
DEFAULT_WAIT_SECONDS = 1.0
DEFAULT_MAX_WAIT_SECONDS = 30.0
# Seconds to wait for one HTTP response; a platform that hangs longer is treated as down (and retried).
DEFAULT_TIMEOUT_SECONDS = 30.0
# When a 429 carries no usable reset header, wait this long: the shortest rate-limit window of the three platforms.
FALLBACK_RATE_LIMIT_MINUTES = 15


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient HTTP failure is retried."""

    attempts: int = DEFAULT_ATTEMPTS
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, config: object) -> RetryPolicy:
        """Build the policy from a source's settings (retry_attempts, retry_wait_seconds, ...), else the defaults."""
        return cls(
            attempts=int(getattr(config, "retry_attempts", DEFAULT_ATTEMPTS)),
            wait_seconds=float(getattr(config, "retry_wait_seconds", DEFAULT_WAIT_SECONDS)),
            max_wait_seconds=float(getattr(config, "retry_max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS)),
            timeout_seconds=float(getattr(config, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        )

    def call(self, is_transient: Callable[[BaseException], bool], fn: Callable[..., T], *args, **kwargs) -> T:
        """Call FN, retrying the failures IS_TRANSIENT accepts; re-raise the last one when attempts run out."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.attempts)),
            wait=tenacity.wait_random_exponential(multiplier=self.wait_seconds, max=self.max_wait_seconds),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    # Only the exception's type and status line: a message may echo a request, never a secret header.
    log.warning(
        "transient failure (attempt %d): %s: %s; retrying in %.2fs",
        state.attempt_number,
        type(exc).__name__,
        str(exc).splitlines()[0][:200] if exc else "",
        state.next_action.sleep if state.next_action else 0,
    )


def reset_from_epoch(value: object) -> str | None:
    """Turn an epoch-seconds reset header (X, Bluesky) into an ISO UTC time, or None when unusable."""
    try:
        return iso_from_epoch(value)
    except ValueError:
        return None


def rate_limited(platform: str, retry_after: str | None) -> SourceStopped:
    """Return the SourceStopped that a 429 becomes, with a retry time (a fallback when the platform gave none)."""
    if retry_after is None:
        retry_after = iso_utc(now() + dt.timedelta(minutes=FALLBACK_RATE_LIMIT_MINUTES))
    return SourceStopped(f"{platform} rate limit reached (HTTP 429); not asking again before {retry_after}", retry_after)
