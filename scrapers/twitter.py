"""X (Twitter) API v2 through tweepy: mentions of consenting officials' accounts, normalised to mentions.

Per watched account: the user mention timeline (``GET /2/users/:id/mentions``) when the official authorised us,
otherwise recent search for ``@handle``. Each account keeps its own ``since_id``. Posts read are counted per calendar
month in ``api_usage`` and the configured ``monthly_read_budget`` is never exceeded: X bills (and caps) reads.
The budget counts the posts returned as ``data``; referenced posts in ``includes`` are not counted.

Settings ([sources.NAME] with ``type = "x"``): ``monthly_read_budget`` (10000), ``page_size`` (100), ``base_url``
(the real API; tests and proxies point it elsewhere), and the retry settings of scrapers.http.
Secret: ``WEERBAAR_X_BEARER_TOKEN``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import sqlite_utils
import tweepy
from tweepy.errors import Forbidden, TooManyRequests, TwitterServerError, Unauthorized

from monitor.db import write_transaction
from monitor.mentions import Mention, MentionError, make_mention
from monitor.settings import Settings, XSourceSettings
from monitor.times import iso_from_x_legacy, month_of, start_of_next_month

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

X_API_URL = "https://api.twitter.com"
EXPANSIONS = ["author_id", "referenced_tweets.id", "in_reply_to_user_id"]
USER_FIELDS = ["username"]
# note_tweet carries the whole text of a post over 280 characters (text is cut there); entities lists who it names.
TWEET_FIELDS = ["created_at", "conversation_id", "referenced_tweets", "lang", "author_id", "edit_history_tweet_ids",
                "note_tweet", "entities", "in_reply_to_user_id"]
PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
# The smallest max_results each endpoint accepts; a budget with less left than this cannot be used without overrun.
MIN_PAGE_SIZE = {"mentions": 5, "search": 10}
# Users per lookup request (GET /2/users and /2/users/by accept at most 100).
LOOKUP_CHUNK = 100
DEFAULT_MONTHLY_READ_BUDGET = 10_000


def is_transient(exc: BaseException) -> bool:
    """Return whether an X request failure is worth retrying: a 5xx, a dropped connection or a timeout."""
    return isinstance(exc, (TwitterServerError, requests.ConnectionError, requests.Timeout))


class XClient(tweepy.Client):
    """tweepy's API v2 client with a configurable host, a timeout, our retry policy, and no header logging."""

    def __init__(self, bearer_token: str, base_url: str = X_API_URL, policy: RetryPolicy | None = None):
        super().__init__(bearer_token=bearer_token, return_type=dict)
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()

    def request(self, method, route, params=None, json=None, user_auth=False):
        """Send one API request, retrying transient failures; raise tweepy's errors for the rest."""
        return self.policy.call(is_transient, self._request_once, method, route, params, json)

    def _request_once(self, method, route, params, json):
        # tweepy.Client.request hard-codes https://api.twitter.com and logs the request headers (the bearer token)
        # at debug level, so the request is sent here; the status handling mirrors tweepy's.
        headers = {"User-Agent": self.user_agent, "Authorization": f"Bearer {self.bearer_token}"}
        with self.session.request(
            method, self.base_url + route, params=params, json=json, headers=headers,
            timeout=self.policy.timeout_seconds,
        ) as response:
            status = response.status_code
            if status == 400:
                raise tweepy.BadRequest(response)
            if status == 401:
                raise Unauthorized(response)
            if status == 403:
                raise Forbidden(response)
            if status == 404:
                raise tweepy.NotFound(response)
            if status == 429:
                reset = response.headers.get("x-rate-limit-reset")
                raise TooManyRequests(response, reset_time=int(reset) if reset and reset.isdigit() else None)
            if status >= 500:
                raise TwitterServerError(response)
            if not 200 <= status < 300:
                raise tweepy.HTTPException(response)
            return response


def unescape_x_text(text: object) -> object:
    """Undo the HTML escaping X applies to post text (only &amp;, &lt; and &gt;); leave anything else unchanged."""
    if not isinstance(text, str):
        return text
    # &amp; last, so that a literal "&amp;lt;" typed by the author stays "&lt;".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def is_retweet(tweet: object) -> bool:
    """Return whether an API v2 or GraphQL tweet is a retweet: someone else's words, found on their own."""
    if not isinstance(tweet, dict):
        return False
    if any(isinstance(ref, dict) and ref.get("type") == "retweeted" for ref in tweet.get("referenced_tweets") or []):
        return True
    return bool((tweet.get("legacy") or {}).get("retweeted_status_result"))


def _full_text(tweet: dict) -> object:
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"].strip():
        return unescape_x_text(note["text"])
    return unescape_x_text(tweet.get("text"))


def tweet_to_mention(tweet: dict, users_by_id: dict[str, dict], target_handle: str | None,
                     tweets_by_id: dict[str, dict] | None = None, raw: object = None) -> Mention:
    """Normalise one API v2 tweet object (with the expanded users and tweets) into a mention.

    USERS_BY_ID and TWEETS_BY_ID are the response's ``includes``; a quoted post's text becomes the mention's
    context. 4CAT's NDJSON carries the same objects with the author under ``author_user`` and the referenced posts
    inlined in ``referenced_tweets``; both shapes are read here. Raise MentionError if the tweet is unusable.
    """
    if not isinstance(tweet, dict):
        raise MentionError("(tweet)", "not a JSON object")
    users_by_id = dict(users_by_id)
    for key in ("author_user", "in_reply_to_user"):
        if isinstance(tweet.get(key), dict) and tweet[key].get("id"):
            users_by_id.setdefault(str(tweet[key]["id"]), tweet[key])
    post_id = tweet.get("id")
    author_id = tweet.get("author_id")
    username = (users_by_id.get(str(author_id)) or {}).get("username")
    url = f"https://x.com/{username}/status/{post_id}" if username else f"https://x.com/i/web/status/{post_id}"
    references = [ref for ref in tweet.get("referenced_tweets") or [] if isinstance(ref, dict)]
    replied_to = next((ref.get("id") for ref in references if ref.get("type") == "replied_to"), None)
    quoted = next((ref for ref in references if ref.get("type") == "quoted"), None)
    context = None
    if quoted is not None:
        quoted = (tweets_by_id or {}).get(str(quoted.get("id"))) or quoted
        context = _full_text(quoted) if quoted.get("text") else None
    replied_user = (users_by_id.get(str(tweet.get("in_reply_to_user_id"))) or {}).get("username")
    named = [m.get("username") for m in (tweet.get("entities") or {}).get("mentions") or [] if isinstance(m, dict)]
    return make_mention(
        platform="x",
        post_id=post_id,
        text=_full_text(tweet),
        created_at=tweet.get("created_at"),
        raw=tweet if raw is None else raw,
        target_handle=target_handle,
        author_handle=username,
        author_id=author_id,
        url=url,
        in_reply_to=replied_to,
        lang=tweet.get("lang"),
        context_text=context,
        addressed=[h for h in [replied_user, *named] if isinstance(h, str)],
    )


def _x_time(value: object) -> object:
    """Return X's legacy created_at ("Wed Oct 10 20:19:24 +0000 2018") as ISO 8601, else the value unchanged."""
    if not isinstance(value, str):
        return value
    try:
        return iso_from_x_legacy(value)
    except ValueError:
        return value


def _graphql_core(tweet: dict) -> dict:
    if "legacy" not in tweet and isinstance(tweet.get("tweet"), dict):
        return tweet["tweet"]  # TweetWithVisibilityResults wraps the tweet one level deeper
    return tweet


def _graphql_text(tweet: dict) -> object:
    legacy = tweet.get("legacy") or {}
    # Posts over 280 characters keep their full text in note_tweet; legacy.full_text is cut short.
    note = (((tweet.get("note_tweet") or {}).get("note_tweet_results") or {}).get("result") or {}).get("text")
    return unescape_x_text(note or legacy.get("full_text"))


def graphql_tweet_to_mention(tweet: dict, raw: object) -> Mention:
    """Normalise an X web-client (GraphQL) tweet result, as Zeeschuimer captures it, into a mention."""
    tweet = _graphql_core(tweet)
    legacy = tweet.get("legacy") or {}
    user = ((tweet.get("core") or {}).get("user_results") or {}).get("result") or {}
    # X moved screen_name from user.legacy to user.core in 2025; exports from either era exist.
    screen_name = (user.get("legacy") or {}).get("screen_name") or (user.get("core") or {}).get("screen_name")
    post_id = tweet.get("rest_id") or legacy.get("id_str")
    replied = legacy.get("in_reply_to_screen_name")
    quoted = (tweet.get("quoted_status_result") or {}).get("result")
    named = [m.get("screen_name") for m in (legacy.get("entities") or {}).get("user_mentions") or []
             if isinstance(m, dict)]
    return make_mention(
        platform="x",
        post_id=post_id,
        text=_graphql_text(tweet),
        created_at=_x_time(legacy.get("created_at")),
        raw=raw,
        target_handle=f"@{replied}" if replied else None,
        author_handle=f"@{screen_name}" if screen_name else None,
        author_id=legacy.get("user_id_str") or user.get("rest_id"),
        url=f"https://x.com/{screen_name}/status/{post_id}" if screen_name and post_id else None,
        in_reply_to=legacy.get("in_reply_to_status_id_str"),
        lang=legacy.get("lang"),
        context_text=_graphql_text(_graphql_core(quoted)) if isinstance(quoted, dict) else None,
        addressed=[h for h in named if isinstance(h, str)],
    )


def _account_problem(error: dict) -> tuple[str, str]:
    """Return the account state ('suspended' or 'not_found') and detail that an X lookup error means."""
    detail = str(error.get("detail") or error.get("title") or "unknown error")
    if "suspended" in detail.lower() or error.get("title") == "Forbidden":
        return "suspended", detail
    return "not_found", detail


def x_source(name: str, config: XSourceSettings, settings: Settings, db: sqlite_utils.Database) -> XSource:
    """Build an X source from its [sources.NAME] table (the entry of scrapers.source_types)."""
    return XSource.from_settings(name, config, settings, db)


class XSource:
    """Collect mentions of the consenting officials' X accounts, within a monthly read budget."""

    def __init__(
        self,
        name: str,
        db: sqlite_utils.Database,
        client: XClient | None,
        monthly_read_budget: int = DEFAULT_MONTHLY_READ_BUDGET,
        page_size: int = PAGE_SIZE,
    ):
        self.name = name
        self.db = db
        self.client = client
        self.monthly_read_budget = monthly_read_budget
        self.page_size = page_size
        self.reads_this_run = 0

    @classmethod
    def from_settings(cls, name: str, config: XSourceSettings, settings: Settings,
                      db: sqlite_utils.Database) -> XSource:
        """Build the source from its [sources.NAME] table and the bearer token in the environment."""
        token = settings.x_bearer_token.get_secret_value() if settings.x_bearer_token else None
        policy = RetryPolicy.from_settings(config)
        client = XClient(token, config.base_url or X_API_URL, policy) if token else None
        return cls(name, db, client, monthly_read_budget=config.monthly_read_budget, page_size=config.page_size)

    def fetch(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of mentions per watched account, each with the whole per-account cursor map."""
        accounts = watched_accounts(self.db, "x")
        if not accounts:
            return
        if self.client is None:
            raise SourceStopped("no X bearer token: set WEERBAAR_X_BEARER_TOKEN in the environment")
        cursors = read_cursor_map(cursor)
        self.reads_this_run = 0
        try:
            self._resolve_accounts(accounts, cursors)
            for account in accounts:
                if account.state in ("suspended", "not_found"):
                    continue
                yield from self._account_batches(account, cursors)
        finally:
            log.info("%s: read %d posts this run; %d of %d read in %s", self.name, self.reads_this_run,
                     self.reads_in_month(), self.monthly_read_budget, month_of())

    def reads_in_month(self, month: str | None = None) -> int:
        """Return the posts this source read from X in MONTH (YYYY-MM, default this month)."""
        row = self.db.execute(
            "SELECT reads FROM api_usage WHERE source = ? AND month = ?", [self.name, month or month_of()]
        ).fetchone()
        return row[0] if row else 0

    def _count_reads(self, reads: int) -> None:
        # Counted and committed as soon as X answered: the read is billed even if storing the batch fails later.
        self.reads_this_run += reads
        with write_transaction(self.db):
            self.db.execute(
                "INSERT INTO api_usage (source, month, reads) VALUES (?, ?, ?) "
                "ON CONFLICT(source, month) DO UPDATE SET reads = reads + excluded.reads",
                [self.name, month_of(), reads],
            )

    def _page_size_within_budget(self, endpoint: str) -> int | None:
        """Return the max_results for the next request so the budget cannot be overrun, or None when it is spent."""
        left = self.monthly_read_budget - self.reads_in_month()
        if left < MIN_PAGE_SIZE[endpoint]:
            return None
        # A page_size under the endpoint's minimum is raised to it: a small page must not read as a spent budget.
        wanted = max(MIN_PAGE_SIZE[endpoint], min(self.page_size, MAX_PAGE_SIZE))
        return min(wanted, left)

    @contextmanager
    def _platform_errors(self) -> Iterator[None]:
        """Turn X's rate limits and authorisation failures into a stopped source with a message a person can act on."""
        try:
            yield
        except TooManyRequests as exc:
            raise rate_limited("X", reset_from_epoch(exc.response.headers.get("x-rate-limit-reset"))) from None
        except Unauthorized:
            raise SourceStopped(
                "X rejected the bearer token (HTTP 401 Unauthorized): set a valid WEERBAAR_X_BEARER_TOKEN"
            ) from None
        except Forbidden as exc:
            reason = "; ".join(exc.api_messages) or "no reason given"
            raise SourceStopped(f"X refused access (HTTP 403 Forbidden): {reason}") from None
        except (TwitterServerError, requests.ConnectionError, requests.Timeout) as exc:
            raise SourceStopped(f"X unreachable after retries: {type(exc).__name__}: {exc}") from None

    def _resolve_accounts(self, accounts: list[WatchedAccount], cursors: dict[str, str]) -> None:
        """Look up X user ids: store missing ones, follow renamed accounts, and mark suspended or unknown ones."""
        without_id = [a for a in accounts if not a.platform_user_id]
        with_id = [a for a in accounts if a.platform_user_id]
        for start in range(0, len(without_id), LOOKUP_CHUNK):
            chunk = without_id[start:start + LOOKUP_CHUNK]
            with self._platform_errors():
                response = self.client.get_users(usernames=[a.handle for a in chunk], user_fields=USER_FIELDS)
            found = {str(u.get("username", "")).lower(): u for u in response.get("data") or []}
            problems = {str(e.get("value") or e.get("resource_id") or "").lower(): e
                        for e in response.get("errors") or []}
            for account in chunk:
                user = found.get(account.handle)
                if user:
                    store_platform_user_id(self.db, account, str(user["id"]))
                    mark_account(self.db, account, "ok")
                elif account.handle in problems:
                    mark_account(self.db, account, *_account_problem(problems[account.handle]))
        for start in range(0, len(with_id), LOOKUP_CHUNK):
            chunk = with_id[start:start + LOOKUP_CHUNK]
            with self._platform_errors():
                response = self.client.get_users(ids=[a.platform_user_id for a in chunk], user_fields=USER_FIELDS)
            found = {str(u.get("id")): u for u in response.get("data") or []}
            problems = {str(e.get("value") or e.get("resource_id") or ""): e for e in response.get("errors") or []}
            for account in chunk:
                user = found.get(str(account.platform_user_id))
                if user:
                    username = str(user.get("username", "")).lower()
                    if username and username != account.handle:
                        old_key = f"x:{account.handle}"
                        if rename_account(self.db, account, username) and old_key in cursors:
                            cursors[f"x:{username}"] = cursors.pop(old_key)
                    mark_account(self.db, account, "ok")
                elif str(account.platform_user_id) in problems:
                    mark_account(self.db, account, *_account_problem(problems[str(account.platform_user_id)]))

    def _account_batches(self, account: WatchedAccount, cursors: dict[str, str]) -> Iterator[Batch]:
        """Yield one batch per page of an account's mentions since its since_id, newest page first.

        The account's since_id only moves once all its pages are stored, because X pages run from newest to oldest:
        a crash halfway re-reads (and skips as duplicates) rather than losing the older pages.
        """
        key = f"x:{account.handle}"
        since_id = cursors.get(key)
        endpoint = "mentions" if account.authorised and account.platform_user_id else "search"
        newest: str | None = None
        page_token: str | None = None
        while True:
            max_results = self._page_size_within_budget(endpoint)
            if max_results is None:
                if newest:
                    # Newest posts matter most for safety: skip the unread older backlog rather than re-read it.
                    log.warning("%s: @%s: older mentions since %s left unread because the budget ran out",
                                self.name, account.handle, since_id)
                    cursors[key] = newest
                    yield Batch(cursor=dump_cursor_map(cursors))
                log.warning("%s: monthly read budget spent (%d of %d posts read in %s); no more X reads this month",
                            self.name, self.reads_in_month(), self.monthly_read_budget, month_of())
                raise SourceStopped(
                    f"X monthly read budget of {self.monthly_read_budget} posts spent for {month_of()}",
                    start_of_next_month(),
                )
            params = {
                "expansions": EXPANSIONS,
                "user_fields": USER_FIELDS,
                "tweet_fields": TWEET_FIELDS,
                "max_results": max_results,
            }
            if since_id:
                params["since_id"] = since_id
            with self._platform_errors():
                if endpoint == "mentions":
                    page = self.client.get_users_mentions(account.platform_user_id, pagination_token=page_token,
                                                          **params)
                else:
                    # Retweets repeat someone else's text; the original is found on its own.
                    page = self.client.search_recent_tweets(f"@{account.handle} -is:retweet", next_token=page_token,
                                                            **params)
            tweets = page.get("data") or []
            self._count_reads(len(tweets))
            if not tweets and page.get("errors") and endpoint == "mentions":
                mark_account(self.db, account, *_account_problem(page["errors"][0]))
                return
            meta = page.get("meta") or {}
            if newest is None and meta.get("newest_id"):
                newest = str(meta["newest_id"])
            batch = self._normalise_page(page, account)
            page_token = meta.get("next_token")
            if not page_token:
                if newest:
                    cursors[key] = newest
                batch.cursor = dump_cursor_map(cursors)
                yield batch
                return
            batch.cursor = dump_cursor_map(cursors)
            yield batch

    def _normalise_page(self, page: dict, account: WatchedAccount) -> Batch:
        """Turn one API page into a batch: a mention per usable tweet, a quarantined record per broken one."""
        includes = page.get("includes") or {}
        users_by_id = {str(u.get("id")): u for u in includes.get("users") or [] if isinstance(u, dict)}
        tweets_by_id = {str(t.get("id")): t for t in includes.get("tweets") or [] if isinstance(t, dict)}
        batch = Batch()
        for tweet in page.get("data") or []:
            if is_retweet(tweet):
                continue
            try:
                batch.mentions.append(tweet_to_mention(tweet, users_by_id, account.handle, tweets_by_id))
            except MALFORMED as exc:
                tweet_id = tweet.get("id", "?") if isinstance(tweet, dict) else "?"
                batch.quarantined.append(
                    Quarantined(f"x:@{account.handle}: tweet {tweet_id}", malformed_reason(exc),
                                json.dumps(tweet, ensure_ascii=False, sort_keys=True))
                )
        return batch
