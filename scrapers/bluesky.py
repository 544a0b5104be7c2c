"""Bluesky through the atproto SDK: posts that mention consenting officials' accounts, normalised to mentions.

Per watched account: ``app.bsky.feed.searchPosts`` with ``mentions=<handle>``, newest first (``sort=latest``), from
the newest ``sortAt`` already seen (``since``, less an overlap). An official who authorised us and whose handle is the configured
``login_handle`` is read from ``app.bsky.notification.listNotifications`` (mentions and replies) instead. Logging in
uses an app password from ``WEERBAAR_BLUESKY_APP_PASSWORD``; without one the public AppView is searched anonymously.

Responses are read as raw JSON (the SDK's models would reject a whole page for one broken post), so one malformed
post is quarantined and the rest stored.

Settings ([sources.NAME] with ``type = "bluesky"``): ``login_handle``, ``page_size`` (100), ``base_url`` (default
bsky.social when logged in, else the public AppView), and the retry settings of scrapers.http.
Secret: ``WEERBAAR_BLUESKY_APP_PASSWORD``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils
from atproto import Client
from atproto_client import models
from atproto_client.exceptions import (
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.models.utils import get_or_create
from atproto_client.request import Request

from monitor.mentions import Mention, MentionError, make_mention
from monitor.settings import BlueskySourceSettings, Settings
from monitor.times import parse_stored, parse_timestamp, post_time

from .base import MALFORMED, Batch, Quarantined, SourceStopped, malformed_reason
from .http import RetryPolicy, rate_limited, reset_from_epoch
from .registry import (
    WatchedAccount,
    dump_cursor_map,
    mark_account,
    read_cursor_map,
    rename_account,
    store_platform_user_id,
    watched_accounts,
)

log = logging.getLogger(__name__)

PUBLIC_APPVIEW_URL = "https://public.api.bsky.app"
PDS_URL = "https://bsky.social"
PAGE_SIZE = 100
PROFILES_CHUNK = 25  # app.bsky.actor.getProfiles takes at most 25 actors
NOTIFICATION_REASONS = ["mention", "reply"]
INVALID_HANDLE = "handle.invalid"
# How far back each search reaches before the newest sortAt already stored. A post's sortAt can be older than posts
# already read when the AppView indexed it late; the pipeline skips the posts read twice.
SINCE_OVERLAP = dt.timedelta(minutes=30)


def is_transient(exc: BaseException) -> bool:
    """Return whether a Bluesky request failure is worth retrying: a 5xx, a dropped connection or a timeout."""
    if isinstance(exc, NetworkError):
        return True
    response = getattr(exc, "response", None)
    return isinstance(exc, RequestErrorBase) and response is not None and response.status_code >= 500


def quoted_text(post: dict) -> str | None:
    """Return the text of the post a post view quotes (a record embed, with or without media), if any."""
    embed = post.get("embed")
    if not isinstance(embed, dict):
        return None
    record = embed.get("record")
    if isinstance(record, dict) and str(embed.get("$type", "")).startswith("app.bsky.embed.recordWithMedia"):
        record = record.get("record")
    if not isinstance(record, dict):
        return None
    value = record.get("value")
    text = value.get("text") if isinstance(value, dict) else None
    return text if isinstance(text, str) and text.strip() else None


def post_to_mention(post: dict, target_handle: str | None, raw: object = None) -> Mention:
    """Normalise one post view, feed item ({post, reply}) or notification into a mention.

    This is the one converter of Bluesky posts: the collector and the research-tool importers (4CAT keeps post views
    with a ``4CAT_metadata`` block) both use it. A handle Bluesky cannot verify is served as "handle.invalid"; the
    author's DID stands in for it. Raise MentionError if the post is unusable.
    """
    if not isinstance(post, dict):
        raise MentionError("(post)", "not a JSON object")
    if "uri" not in post and isinstance(post.get("post"), dict):
        parent_author = (((post.get("reply") or {}).get("parent") or {}).get("author") or {}).get("handle")
        target_handle = target_handle or parent_author
        post = post["post"]
    author = post.get("author") or {}
    record = post.get("record") or {}
    uri = post.get("uri")
    did = author.get("did")
    handle = author.get("handle")
    if not handle or handle == INVALID_HANDLE:
        handle = did
    rkey = uri.rsplit("/", 1)[-1] if isinstance(uri, str) else None
    langs = record.get("langs") or []
    parent = ((record.get("reply") or {}).get("parent") or {}).get("uri")
    target_handle = target_handle or (post.get("4CAT_metadata") or {}).get("reply_to")
    return make_mention(
        platform="bluesky",
        post_id=uri,
        text=record.get("text"),
        created_at=record.get("createdAt") or record.get("created_at"),
        raw=post if raw is None else raw,
        target_handle=target_handle,
        author_handle=handle,
        author_id=did,
        url=f"https://bsky.app/profile/{handle}/post/{rkey}" if handle and rkey else None,
        in_reply_to=parent,
        lang=langs[0] if langs and isinstance(langs[0], str) else None,
        context_text=quoted_text(post),
    )


def sort_at(post: object) -> str | None:
    """Return a post's sortAt, the time searchPosts filters ``since`` on: the earlier of createdAt and indexedAt.

    A post written long before Bluesky indexed it sorts by its createdAt; one claiming a future createdAt sorts by
    when it was indexed. Returned as comparable UTC text; None when neither time is readable.
    """
    if not isinstance(post, dict):
        return None
    times = []
    for value in (post.get("indexedAt"), (post.get("record") or {}).get("createdAt")):
        try:
            times.append(parse_timestamp(value))
        except ValueError:
            continue
    return min(times) if times else None


def since_with_overlap(cursor: str | None) -> str | None:
    """Return the ``since`` to ask for: the cursor moved back by SINCE_OVERLAP, so late-indexed posts are read."""
    if not cursor:
        return None
    try:
        return post_time(parse_stored(cursor) - SINCE_OVERLAP)
    except ValueError:
        return None


def bluesky_source(name: str, config: BlueskySourceSettings, settings: Settings,
                   db: sqlite_utils.Database) -> BlueskySource:
    """Build a Bluesky source from its [sources.NAME] table (the entry of scrapers.source_types)."""
    return BlueskySource.from_settings(name, config, settings, db)


class BlueskySource:
    """Collect posts that mention the consenting officials' Bluesky accounts."""

    def __init__(
        self,
        name: str,
        db: sqlite_utils.Database,
        base_url: str = PUBLIC_APPVIEW_URL,
        login_handle: str | None = None,
        app_password: str | None = None,
        policy: RetryPolicy | None = None,
        page_size: int = PAGE_SIZE,
    ):
        self.name = name
        self.db = db
        self.base_url = base_url
        self.login_handle = login_handle.lower().lstrip("@") if login_handle else None
        self._app_password = app_password
        self.policy = policy or RetryPolicy()
        self.page_size = page_size

    @classmethod
    def from_settings(
        cls, name: str, config: BlueskySourceSettings, settings: Settings, db: sqlite_utils.Database
    ) -> BlueskySource:
        """Build the source from its [sources.NAME] table and the app password in the environment."""
        password = settings.bluesky_app_password.get_secret_value() if settings.bluesky_app_password else None
        login_handle = config.login_handle
        logged_in = bool(login_handle and password)
        return cls(
            name,
            db,
            base_url=config.base_url or (PDS_URL if logged_in else PUBLIC_APPVIEW_URL),
            login_handle=login_handle if logged_in else None,
            app_password=password if logged_in else None,
            policy=RetryPolicy.from_settings(config),
            page_size=config.page_size,
        )

    def fetch(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of mentions per watched account, each with the whole per-account cursor map."""
        accounts = watched_accounts(self.db, "bluesky")
        if not accounts:
            return
        cursors = read_cursor_map(cursor)
        client = Client(base_url=self.base_url, request=Request(timeout=self.policy.timeout_seconds))
        if self.login_handle:
            with self._platform_errors():
                self._call(client.login, self.login_handle, self._app_password, fetch_bsky_profile=False)
        self._resolve_accounts(client, accounts, cursors)
        for account in accounts:
            if account.state == "not_found":
                continue
            if account.authorised and account.handle == self.login_handle:
                yield from self._account_batches(client, account, cursors, "app.bsky.notification.listNotifications")
            else:
                yield from self._account_batches(client, account, cursors, "app.bsky.feed.searchPosts")

    def _call(self, fn, *args, **kwargs):
        return self.policy.call(is_transient, fn, *args, **kwargs)

    def _query(self, client: Client, nsid: str, params) -> dict:
        """Call an XRPC query with the SDK's parameter model and return the raw JSON body."""
        response = self._call(client.invoke_query, nsid, params=params, output_encoding="application/json")
        return response.content if isinstance(response.content, dict) else {}

    @contextmanager
    def _platform_errors(self) -> Iterator[None]:
        """Turn rate limits, rejected logins and lasting outages into a stopped source with an actionable message."""
        try:
            yield
        except RateLimitExceededError as exc:
            raise rate_limited("Bluesky", reset_from_epoch(exc.response.headers.get("ratelimit-reset"))) from None
        except UnauthorizedError as exc:
            status = exc.response.status_code if exc.response is not None else "401"
            raise SourceStopped(
                f"Bluesky rejected the session (HTTP {status}: {exc}): check login_handle and "
                "WEERBAAR_BLUESKY_APP_PASSWORD"
            ) from None
        except RequestErrorBase as exc:
            if is_transient(exc):
                raise SourceStopped(f"Bluesky unreachable after retries: {type(exc).__name__}: {exc}") from None
            raise

    def _resolve_accounts(self, client: Client, accounts: list[WatchedAccount], cursors: dict[str, str]) -> None:
        """Look up DIDs: store missing ones, follow renamed handles, and mark accounts Bluesky does not know."""
        for start in range(0, len(accounts), PROFILES_CHUNK):
            chunk = accounts[start:start + PROFILES_CHUNK]
            actors = [a.platform_user_id or a.handle for a in chunk]
            params = get_or_create({"actors": actors}, models.AppBskyActorGetProfiles.Params)
            with self._platform_errors():
                profiles = self._query(client, "app.bsky.actor.getProfiles", params).get("profiles") or []
            by_did = {p.get("did"): p for p in profiles if isinstance(p, dict)}
            by_handle = {str(p.get("handle", "")).lower(): p for p in profiles if isinstance(p, dict)}
            for account in chunk:
                profile = by_did.get(account.platform_user_id) or by_handle.get(account.handle)
                if profile is None:
                    mark_account(self.db, account, "not_found", "Bluesky returned no profile for this account")
                    continue
                store_platform_user_id(self.db, account, str(profile["did"]))
                handle = str(profile.get("handle", "")).lower()
                if handle and handle != account.handle and handle != "handle.invalid":
                    old_key = f"bluesky:{account.handle}"
                    if rename_account(self.db, account, handle) and old_key in cursors:
                        cursors[f"bluesky:{handle}"] = cursors.pop(old_key)
                mark_account(self.db, account, "ok")

    def _account_batches(self, client: Client, account: WatchedAccount, cursors: dict[str, str],
                         nsid: str) -> Iterator[Batch]:
        """Yield one batch per page of an account's mentions, newest first, back to the last one seen.

        The account's cursor (the newest sortAt seen) only moves once all its pages are stored, so a crash re-reads
        (and skips as duplicates) rather than losing the older pages. Each read reaches SINCE_OVERLAP further back.
        """
        key = f"bluesky:{account.handle}"
        newest = cursors.get(key)
        since = since_with_overlap(newest)
        page_cursor: str | None = None
        while True:
            if nsid == "app.bsky.feed.searchPosts":
                params = get_or_create(
                    {"q": f"mentions:{account.handle}", "mentions": account.platform_user_id or account.handle,
                     "sort": "latest", "since": since, "limit": self.page_size, "cursor": page_cursor},
                    models.AppBskyFeedSearchPosts.Params,
                )
                with self._platform_errors():
                    body = self._query(client, nsid, params)
                items = body.get("posts") or []
            else:
                params = get_or_create({"reasons": NOTIFICATION_REASONS, "limit": self.page_size,
                                        "cursor": page_cursor}, models.AppBskyNotificationListNotifications.Params)
                with self._platform_errors():
                    body = self._query(client, nsid, params)
                items = [n for n in body.get("notifications") or []
                         if not isinstance(n, dict) or n.get("reason") in NOTIFICATION_REASONS]
            # Older than the last one seen: already stored (the notification list has no `since`).
            fresh = [p for p in items if since is None or (sort_at(p) or since) >= since]
            for post in fresh:
                seen = sort_at(post)
                if seen and (newest is None or seen > newest):
                    newest = seen
            batch = self._normalise(fresh, account)
            page_cursor = body.get("cursor")
            if not items or not page_cursor or len(fresh) < len(items):
                if newest:
                    cursors[key] = newest
                batch.cursor = dump_cursor_map(cursors)
                yield batch
                return
            batch.cursor = dump_cursor_map(cursors)
            yield batch

    def _normalise(self, posts: list, account: WatchedAccount) -> Batch:
        """Turn posts into a batch: a mention per usable post, a quarantined record per broken one."""
        batch = Batch()
        for post in posts:
            try:
                batch.mentions.append(post_to_mention(post, account.handle))
            except MALFORMED as exc:
                uri = post.get("uri", "?") if isinstance(post, dict) else "?"
                batch.quarantined.append(Quarantined(f"bluesky:@{account.handle}: {uri}", malformed_reason(exc),
                                                     json.dumps(post, ensure_ascii=False, sort_keys=True)))
        return batch
