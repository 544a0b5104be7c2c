"""Mastodon through Mastodon.py: mentions of consenting officials' accounts, normalised to mentions.

Two ways in, per account, kept deliberately simple:

* an official who authorised us (``accounts.authorised = 1``): their mention notifications
  (``GET /api/v1/notifications?types[]=mention``) on their own instance, with the access token from
  ``WEERBAAR_MASTODON_ACCESS_TOKEN`` (the token of that official's account);
* everyone else: Mastodon has no public "mentions of X" search, so the source reads the public timelines of the
  hashtags in its ``hashtags`` setting on its ``instance`` and keeps the statuses that mention a watched account.

Status ``content`` is HTML and hostile; it is reduced to plain text with the standard library's parser. A status
edited after it was stored keeps its stored version (the pipeline skips a post it already has); a deleted status
simply stops appearing, and what was stored stays as evidence.

Settings ([sources.NAME] with ``type = "mastodon"``): ``instance`` and ``hashtags`` (for accounts that did not
authorise), ``base_url`` (overrides every instance's URL: tests, proxies), and the retry settings of scrapers.http.
Secret: ``WEERBAAR_MASTODON_ACCESS_TOKEN``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser

import sqlite_utils
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from monitor.mentions import Mention, MentionError, make_mention
from monitor.settings import MastodonSourceSettings, Settings

from .base import MALFORMED, Batch, Quarantined, SourceStopped, malformed_reason
from .http import RetryPolicy, rate_limited, reset_from_epoch
from .registry import (
    WatchedAccount,
    dump_cursor_map,
    mark_account,
    read_cursor_map,
    watched_accounts,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 40  # Mastodon's maximum for notifications and timelines


def is_transient(exc: BaseException) -> bool:
    """Return whether a Mastodon request failure is worth retrying: a 5xx, a dropped connection or a timeout."""
    return isinstance(exc, (MastodonServerError, MastodonNetworkError))


_VOID_TAGS = frozenset({"br", "img", "hr", "wbr", "input", "meta", "link", "source"})


class _PlainText(HTMLParser):
    """Collect the text of a status's HTML: paragraphs and <br> become line breaks, scripts and styles vanish."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        # Depth inside a <p class="quote-inline">: the "RE: <link>" line Mastodon adds for clients without quote
        # support, which clients that show the quote are meant to hide. The quote itself is kept as context.
        self._quote_inline = 0

    def handle_starttag(self, tag, attrs):
        if self._quote_inline:
            self._quote_inline += tag not in _VOID_TAGS
            return
        if "quote-inline" in (dict(attrs).get("class") or "").split():
            self._quote_inline = 1
            return
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in ("p", "li", "blockquote") and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if self._quote_inline:
            self._quote_inline -= 1
            return
        if tag in ("script", "style"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in ("p", "blockquote"):
            self.parts.append("\n\n")
        elif tag == "li":
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping and not self._quote_inline:
            self.parts.append(data)


def html_to_text(html: object) -> str:
    """Return the plain text of a status's HTML content, entities unescaped and line breaks kept."""
    if not isinstance(html, str):
        return ""
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    lines = "".join(parser.parts).split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _full_acct(acct: str, instance: str) -> str:
    """Return user@instance for an acct that Mastodon shows without its domain when the user is local."""
    acct = acct.lower().lstrip("@")
    return acct if "@" in acct else f"{acct}@{instance}"


def quoted_status(status: dict) -> dict | None:
    """Return the status a status quotes, if any: Mastodon 4.5's ``quote.quoted_status``, or a bare ``quote``."""
    quote = status.get("quote")
    if not isinstance(quote, dict):
        return None
    if "quoted_status" in quote:
        # Only an accepted quote is shown by Mastodon; a pending, rejected or revoked one has no status to show.
        inner = quote.get("quoted_status")
        return inner if isinstance(inner, dict) else None
    return quote if "content" in quote else None


def status_to_mention(status: dict, instance: str, target_handle: str | None,
                      in_reply_to_uri: str | None = None) -> Mention:
    """Normalise one Mastodon status, as served by INSTANCE, into a mention; raise MentionError if unusable.

    The post id is the status's ActivityPub URI, the same on every instance. Mastodon gives the parent only as an
    id local to INSTANCE, so the caller passes the parent's URI (IN_REPLY_TO_URI) for replies to be joined. Who the
    post addresses comes from its ``mentions`` list, as full user@instance handles: the rendered text shows only
    the local @name, which would match an official of the same name on another instance.
    """
    if not isinstance(status, dict):
        raise MentionError("(status)", "not a JSON object")
    account = status.get("account") or {}
    acct = account.get("acct")
    text = html_to_text(status.get("content"))
    if status.get("spoiler_text"):
        # A content warning is written by the author too, and can carry the insult itself.
        text = f"{status['spoiler_text']}\n\n{text}"
    quoted = quoted_status(status)
    addressed = [_full_acct(m["acct"], instance) for m in status.get("mentions") or []
                 if isinstance(m, dict) and isinstance(m.get("acct"), str) and m["acct"]]
    mention = make_mention(
        platform="mastodon",
        post_id=status.get("uri") or None,
        text=text,
        # Mastodon.py has already parsed it into a datetime; monitor.times takes either.
        created_at=status.get("created_at"),
        raw=json.dumps(status, sort_keys=True, default=str),
        target_handle=target_handle,
        author_handle=_full_acct(acct, instance) if isinstance(acct, str) and acct else None,
        author_id=account.get("url") or account.get("id"),
        url=status.get("url") or status.get("uri"),
        in_reply_to=in_reply_to_uri,
        lang=status.get("language"),
        context_text=html_to_text(quoted.get("content")) if quoted else None,
        addressed=addressed,
    )
    if status.get("edited_at"):
        mention.extra["edited_at"] = str(status["edited_at"])
    return mention


def _id_key(value: object) -> tuple[int, str]:
    """Order Mastodon ids (numeric strings of varying length) without assuming they fit an int."""
    text = str(value)
    return len(text), text


def _is_newer(item_id: object, since_id: str | None) -> bool:
    return since_id is None or _id_key(item_id) > _id_key(since_id)


def mastodon_source(name: str, config: MastodonSourceSettings, settings: Settings,
                    db: sqlite_utils.Database) -> MastodonSource:
    """Build a Mastodon source from its [sources.NAME] table (the entry of scrapers.source_types)."""
    return MastodonSource.from_settings(name, config, settings, db)


class MastodonSource:
    """Collect mentions of the consenting officials' Mastodon accounts."""

    def __init__(
        self,
        name: str,
        db: sqlite_utils.Database,
        access_token: str | None = None,
        base_url: str | None = None,
        instance: str | None = None,
        hashtags: list[str] | None = None,
        policy: RetryPolicy | None = None,
    ):
        self.name = name
        self.db = db
        self._access_token = access_token
        self.base_url = base_url.rstrip("/") if base_url else None
        self.instance = instance
        self.hashtags = [t.lstrip("#") for t in hashtags or []]
        self.policy = policy or RetryPolicy()
        self._clients: dict[tuple[str, bool], Mastodon] = {}
        self._parent_uris: dict[tuple[str, str], str | None] = {}

    @classmethod
    def from_settings(
        cls, name: str, config: MastodonSourceSettings, settings: Settings, db: sqlite_utils.Database
    ) -> MastodonSource:
        """Build the source from its [sources.NAME] table and the access token in the environment."""
        token = settings.mastodon_access_token.get_secret_value() if settings.mastodon_access_token else None
        return cls(
            name,
            db,
            access_token=token,
            base_url=config.base_url,
            instance=config.instance,
            hashtags=list(config.hashtags),
            policy=RetryPolicy.from_settings(config),
        )

    def client(self, instance: str, with_token: bool) -> Mastodon:
        """Return the Mastodon.py client for INSTANCE (or the base_url override), with or without the token."""
        key = (instance, with_token)
        if key not in self._clients:
            self._clients[key] = Mastodon(
                access_token=self._access_token if with_token else None,
                api_base_url=self.base_url or f"https://{instance}",
                # 429s become a stopped source, not a sleep inside the library; no server version probe.
                ratelimit_method="throw",
                version_check_mode="none",
                request_timeout=self.policy.timeout_seconds,
            )
        return self._clients[key]

    def fetch(self, cursor: str | None) -> Iterator[Batch]:
        """Yield batches of mentions per authorised account and per hashtag, each with the whole cursor map."""
        accounts = watched_accounts(self.db, "mastodon")
        if not accounts:
            return
        cursors = read_cursor_map(cursor)
        authorised = [a for a in accounts if a.authorised]
        if authorised and not self._access_token:
            raise SourceStopped("no Mastodon access token: set WEERBAAR_MASTODON_ACCESS_TOKEN in the environment")
        for account in authorised:
            instance = account.handle.split("@", 1)[1]
            api = self.client(instance, with_token=True)
            yield from self._pages(
                api, instance, f"mastodon:{account.handle}", cursors,
                lambda since: api.notifications(types=["mention"], since_id=since, limit=PAGE_SIZE),
                unwrap=lambda notification: notification.get("status"),
                target=lambda status, account=account: account.handle,
                account=account,
            )
        others = {a.handle for a in accounts if not a.authorised}
        if not others:
            return
        if not self.hashtags or not self.instance:
            log.info("%s: %d Mastodon account(s) not authorised and no hashtags/instance configured; "
                     "nothing to read for them", self.name, len(others))
            return
        api = self.client(self.instance, with_token=False)
        for tag in self.hashtags:
            yield from self._pages(
                api, self.instance, f"mastodon:#{tag}@{self.instance}", cursors,
                lambda since, tag=tag: api.timeline_hashtag(tag, since_id=since, limit=PAGE_SIZE),
                unwrap=lambda status: status,
                target=lambda status: self._watched_target(status, others),
            )

    def _watched_target(self, status: dict, watched: set[str]) -> str | None:
        """Return the first watched account a hashtag status mentions, or None."""
        for mentioned in status.get("mentions") or []:
            acct = mentioned.get("acct") if isinstance(mentioned, dict) else None
            if acct and _full_acct(acct, self.instance) in watched:
                return _full_acct(acct, self.instance)
        return None

    @contextmanager
    def _platform_errors(self, instance: str, api: Mastodon) -> Iterator[None]:
        """Turn rate limits, rejected tokens and lasting outages into a stopped source with an actionable message."""
        try:
            yield
        except MastodonRatelimitError:
            # Mastodon.py has already read X-RateLimit-Reset (ISO time) into ratelimit_reset, as epoch seconds.
            raise rate_limited(f"Mastodon ({instance})", reset_from_epoch(api.ratelimit_reset)) from None
        except MastodonUnauthorizedError:
            raise SourceStopped(
                f"Mastodon ({instance}) rejected the access token (HTTP 401 Unauthorized): "
                "set a valid WEERBAAR_MASTODON_ACCESS_TOKEN"
            ) from None
        except (MastodonServerError, MastodonNetworkError) as exc:
            raise SourceStopped(f"Mastodon ({instance}) unreachable after retries: {type(exc).__name__}") from None
        except MastodonAPIError as exc:
            status = exc.args[1] if len(exc.args) > 1 else "?"
            if status == 403:
                raise SourceStopped(f"Mastodon ({instance}) refused access (HTTP 403 Forbidden)") from None
            raise

    def _pages(self, api, instance, key, cursors, first_page, unwrap, target, account: WatchedAccount | None = None):
        """Yield one batch per page from newest back to the stored since_id, then move the since_id.

        Mastodon.py drops since_id when it follows the Link header to older pages, so paging stops here at the first
        item at or below the since_id. The since_id only moves once every page is stored, so a crash loses nothing.
        """
        since_id = cursors.get(key)
        with self._platform_errors(instance, api):
            page = self.policy.call(is_transient, first_page, since_id)
        newest: str | None = None
        while page:
            fresh = [item for item in page if isinstance(item, dict) and _is_newer(item.get("id"), since_id)]
            for item in fresh:
                if newest is None or _id_key(item["id"]) > _id_key(newest):
                    newest = str(item["id"])
            batch = self._normalise(api, fresh, instance, key, unwrap, target)
            if len(fresh) < len(page):
                break
            batch.cursor = dump_cursor_map(cursors)
            yield batch
            with self._platform_errors(instance, api):
                page = self.policy.call(is_transient, api.fetch_next, page)
        else:
            batch = Batch()
        if newest:
            cursors[key] = newest
        batch.cursor = dump_cursor_map(cursors)
        yield batch
        if account is not None:
            mark_account(self.db, account, "ok")

    def _parent_uri(self, api: Mastodon, instance: str, status: dict) -> str | None:
        """Return the ActivityPub URI of the status STATUS replies to, looked up once per run on INSTANCE."""
        parent_id = status.get("in_reply_to_id")
        if parent_id is None:
            return None
        key = (instance, str(parent_id))
        if key not in self._parent_uris:
            try:
                parent = self.policy.call(is_transient, api.status, parent_id)
                uri = parent.get("uri") if isinstance(parent, dict) else None
            except (MastodonAPIError, MastodonNetworkError) as exc:
                # Deleted, private or unreachable: the reply is kept, without the link to its parent.
                log.info("%s: parent %s of a reply not found on %s: %s", self.name, parent_id, instance,
                         type(exc).__name__)
                uri = None
            self._parent_uris[key] = uri if isinstance(uri, str) else None
        return self._parent_uris[key]

    def _normalise(self, api: Mastodon, items: list[dict], instance: str, key: str, unwrap, target) -> Batch:
        """Turn notifications or statuses (UNWRAP finds the status) into mentions and quarantined records."""
        batch = Batch()
        for item in items:
            status = unwrap(item)
            if isinstance(status, dict) and status.get("reblog"):
                continue  # a boost repeats someone else's status, which is found on its own
            try:
                if not isinstance(status, dict):
                    raise MentionError("status", "missing status")
                mention = status_to_mention(status, instance, target(status), self._parent_uri(api, instance, status))
            except MALFORMED as exc:
                batch.quarantined.append(
                    Quarantined(f"{key}: {'notification' if status is not item else 'status'} {item.get('id', '?')}",
                                malformed_reason(exc), json.dumps(item, sort_keys=True, default=str, ensure_ascii=False))
                )
                continue
            if "edited_at" in mention.extra:
                log.debug("%s: status %s was edited at %s; a stored copy keeps its first version",
                          self.name, mention.post_id, mention.extra["edited_at"])
            batch.mentions.append(mention)
        return batch
