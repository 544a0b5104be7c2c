"""A fake Mastodon instance: mention notifications and hashtag timelines, shaped like the documented API.

Entities follow https://docs.joinmastodon.org/entities/ (Notification, Status with HTML ``content``, Account with
``acct``/``id``/``url``). Lists are newest first, at most ``limit`` long, with ``since_id``/``max_id``/``min_id``
honoured and a ``Link`` header whose ``next`` URL carries only ``max_id``, as Mastodon sends it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from werkzeug import Request, Response

from . import FakeServer, LazyPosts, first_after, first_at_or_after, json_response

EPOCH = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
FIRST_ID = 113_000_000_000_000_000


def account(username: str, domain: str, local_domain: str, account_id: str = "1") -> dict:
    """Return an Account entity as LOCAL_DOMAIN serves it (acct has no domain for its own users)."""
    return {
        "id": account_id,
        "username": username,
        "acct": username if domain == local_domain else f"{username}@{domain}",
        "display_name": username.title(),
        "url": f"https://{domain}/@{username}",
        "uri": f"https://{domain}/users/{username}",
        "locked": False,
        "bot": False,
        "created_at": "2023-01-01T00:00:00.000Z",
        "note": "",
        "avatar": "", "avatar_static": "", "header": "", "header_static": "",
        "followers_count": 0, "following_count": 0, "statuses_count": 1,
        "emojis": [], "fields": [],
    }


def status(status_id: int, html: str, author: dict, domain: str, *, minutes: int = 0,
           mentions: list[dict] | None = None, reply_to: str | None = None, edited: bool = False,
           spoiler: str = "") -> dict:
    """Return a Status entity with HTML content."""
    created = EPOCH + dt.timedelta(minutes=minutes)
    return {
        "id": str(status_id),
        "uri": f"https://{domain}/users/{author['username']}/statuses/{status_id}",
        "url": f"https://{domain}/@{author['username']}/{status_id}",
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "edited_at": (created + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z") if edited else None,
        "account": author,
        "content": html,
        "visibility": "public",
        "sensitive": bool(spoiler),
        "spoiler_text": spoiler,
        "in_reply_to_id": reply_to,
        "in_reply_to_account_id": None,
        "language": "nl",
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
        "reblog": None,
        "media_attachments": [],
        "mentions": mentions or [],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def mention_html(username: str, domain: str) -> str:
    """Return the h-card link Mastodon renders for an @mention."""
    return (f'<span class="h-card" translate="no"><a href="https://{domain}/@{username}" class="u-url mention">'
            f'@<span>{username}</span></a></span>')


def notification(notification_id: int, the_status: dict) -> tuple[int, dict]:
    """Return (sort key, Notification entity of type mention)."""
    return notification_id, {
        "id": str(notification_id),
        "type": "mention",
        "created_at": the_status["created_at"],
        "account": the_status["account"],
        "status": the_status,
    }


def generated_notifications(n: int, username: str, domain: str) -> LazyPosts:
    """Return N cheap mention notifications for USERNAME@DOMAIN, oldest first, built only when served."""
    def make(index: int) -> tuple[int, dict]:
        author = account(f"burger{index % 500}", "elders.example", domain, str(9000 + index % 500))
        html = f"<p>{mention_html(username, domain)} bericht nummer {index} &amp; meer</p>"
        return notification(FIRST_ID + index, status(FIRST_ID + index, html, author, "elders.example",
                                                     minutes=index % 10_000))

    return LazyPosts(n, make)


class FakeMastodon(FakeServer):
    """A Mastodon instance on loopback, with the token its one authorised user holds."""

    def __init__(self, token: str = "mastodon-test-token", domain: str = "social.example"):
        super().__init__()
        self.token = token
        self.domain = domain
        self.notifications: Sequence[tuple[int, dict]] = []
        self.hashtags: dict[str, list[tuple[int, dict]]] = {}
        self.statuses: dict[str, dict] = {}  # local id -> Status, for GET /api/v1/statuses/:id
        self.route("/api/v1/notifications", self._notifications)
        self.route(re.compile(r"^/api/v1/statuses/[^/]+$"), self._status)
        self.route(re.compile(r"^/api/v1/timelines/tag/[^/]+$"), self._hashtag)

    def _notifications(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response({"error": "The access token is invalid"}, 401)
        types = request.args.getlist("types[]")
        posts = self.notifications
        if types and types != ["mention"]:
            posts = []
        return self._list(request, posts, "/api/v1/notifications")

    def _status(self, request: Request) -> Response:
        found = self.statuses.get(request.path.rsplit("/", 1)[1])
        if found is None:
            return json_response({"error": "Record not found"}, 404)
        return json_response(found)

    def _hashtag(self, request: Request) -> Response:
        tag = request.path.rsplit("/", 1)[1].lower()
        return self._list(request, self.hashtags.get(tag, []), request.path)

    def _list(self, request: Request, posts: Sequence[tuple[int, dict]], path: str) -> Response:
        limit = min(int(request.args.get("limit", 20)), 40)
        since = request.args.get("since_id") or request.args.get("min_id")
        low = first_after(posts, int(since) if since else None)
        high = first_at_or_after(posts, int(request.args["max_id"])) if request.args.get("max_id") else len(posts)
        start = max(low, high - limit)
        page = [posts[i][1] for i in range(high - 1, start - 1, -1)]
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299",
                   "X-RateLimit-Reset": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5))
                   .strftime("%Y-%m-%dT%H:%M:%S.000000Z")}
        if page:
            links = [f'<{self.url}{path}?min_id={posts[high - 1][0]}>; rel="prev"']
            if len(page) == limit:
                links.insert(0, f'<{self.url}{path}?max_id={posts[start][0]}>; rel="next"')
            headers["Link"] = ", ".join(links)
        return json_response(page, 200, headers)
