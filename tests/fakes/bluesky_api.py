"""A fake Bluesky (PDS and AppView in one): sessions, profiles, post search and notifications over XRPC.

Shapes follow the lexicons: ``com.atproto.server.createSession`` -> ``{did, handle, accessJwt, refreshJwt}``,
``app.bsky.feed.searchPosts`` -> ``{"posts": [postView...], "cursor"}`` (newest first, ``since`` inclusive),
``app.bsky.notification.listNotifications`` -> ``{"notifications": [...], "cursor"}``, and XRPC errors as
``{"error", "message"}`` with ``ratelimit-*`` headers on a 429.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Sequence

from werkzeug import Request, Response

from . import FakeServer, LazyPosts, json_response

EPOCH = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)


def _jwt(payload: dict) -> str:
    """Return an unsigned JWT-shaped token (the client only reads its payload, to know when to refresh)."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(payload)}.c2lnbmF0dXJl"


def post(index: int, text: str, author_handle: str, *, minutes: int = 0, reply_to: str | None = None,
         author_did: str | None = None) -> tuple[int, dict]:
    """Return (sort key, postView) for a post by AUTHOR_HANDLE."""
    did = author_did or f"did:plc:{author_handle.split('.')[0]}"
    created = EPOCH + dt.timedelta(minutes=minutes)
    record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "langs": ["nl"]}
    if reply_to:
        record["reply"] = {"root": {"uri": reply_to, "cid": "bafyroot"}, "parent": {"uri": reply_to, "cid": "bafyp"}}
    return index, {
        "uri": f"at://{did}/app.bsky.feed.post/3l{index:011d}",
        "cid": f"bafyreih{index:020d}",
        "author": {"did": did, "handle": author_handle, "displayName": author_handle.split(".")[0].title(),
                   "labels": [], "createdAt": "2023-05-01T00:00:00.000Z"},
        "record": record,
        "replyCount": 0, "repostCount": 0, "likeCount": 0, "quoteCount": 0,
        "indexedAt": (created + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "labels": [],
    }


def generated_posts(n: int, mentioned_handle: str) -> LazyPosts:
    """Return N cheap posts mentioning MENTIONED_HANDLE, oldest first, built only when served."""
    def make(index: int) -> tuple[int, dict]:
        return post(index, f"@{mentioned_handle} bericht nummer {index}", f"burger{index % 500}.bsky.social",
                    minutes=index // 10)

    return LazyPosts(n, make)


class FakeBluesky(FakeServer):
    """Bluesky XRPC on loopback: profiles, posts mentioning each handle (oldest first) and one login."""

    def __init__(self, login: str = "weerbaar.bsky.social", password: str = "app-pass-test"):
        super().__init__()
        self.login = login
        self.password = password
        self.profiles: dict[str, dict] = {}  # did -> profile
        self.posts: dict[str, Sequence[tuple[int, dict]]] = {}  # mentioned handle -> posts, oldest first
        self.notifications: list[dict] = []  # newest last, like posts
        self.issued_tokens: set[str] = set()
        self.route("/xrpc/com.atproto.server.createSession", self._create_session, method="POST")
        self.route("/xrpc/app.bsky.actor.getProfiles", self._get_profiles)
        self.route("/xrpc/app.bsky.feed.searchPosts", self._search_posts)
        self.route("/xrpc/app.bsky.notification.listNotifications", self._list_notifications)

    def add_profile(self, did: str, handle: str) -> None:
        """Create an account."""
        self.profiles[did] = {"did": did, "handle": handle, "displayName": handle.split(".")[0].title(),
                              "followersCount": 0, "followsCount": 0, "postsCount": 0, "labels": []}

    def _create_session(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        if body.get("identifier") != self.login or body.get("password") != self.password:
            return json_response({"error": "AuthenticationRequired", "message": "Invalid identifier or password"}, 401)
        now = int(time.time())
        access = _jwt({"scope": "com.atproto.appPass", "sub": "did:plc:weerbaar", "iat": now, "exp": now + 7200,
                       "aud": "did:web:bsky.social"})
        self.issued_tokens.add(access)
        return json_response({"did": "did:plc:weerbaar", "handle": self.login, "email": "ops@weerbaar.example",
                              "accessJwt": access, "refreshJwt": _jwt({"scope": "com.atproto.refresh",
                                                                      "sub": "did:plc:weerbaar", "exp": now + 86400,
                                                                      "jti": "r1"}),
                              "active": True})

    def _get_profiles(self, request: Request) -> Response:
        found = []
        for actor in request.args.getlist("actors"):
            profile = self.profiles.get(actor) or next(
                (p for p in self.profiles.values() if p["handle"] == actor.lower()), None)
            if profile:
                found.append(profile)
        return json_response({"profiles": found})

    def _handle_of(self, actor: str) -> str:
        profile = self.profiles.get(actor)
        return profile["handle"] if profile else actor.lower()

    def _search_posts(self, request: Request) -> Response:
        if "q" not in request.args:
            return json_response({"error": "InvalidRequest", "message": 'Error: Params must have the property "q"'},
                                 400)
        handle = self._handle_of(request.args.get("mentions", ""))
        posts = self.posts.get(handle, [])
        since = request.args.get("since")
        limit = int(request.args.get("limit", 25))
        high = int(request.args["cursor"]) if request.args.get("cursor") else len(posts)
        page = []
        index = high - 1
        while index >= 0 and len(page) < limit:
            item = posts[index][1]
            # Like the real AppView: since filters on sortAt, the earlier of createdAt and indexedAt.
            if since and min(item.get("indexedAt", ""), item.get("record", {}).get("createdAt", "")) < since:
                index -= 1
                continue
            page.append(item)
            index -= 1
        body: dict = {"posts": page}
        if index >= 0:
            body["cursor"] = str(index + 1)
        return json_response(body)

    def _list_notifications(self, request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.issued_tokens:
            return json_response({"error": "ExpiredToken", "message": "Token has expired"}, 401)
        reasons = request.args.getlist("reasons")
        items = [n for n in reversed(self.notifications) if not reasons or n.get("reason") in reasons]
        limit = int(request.args.get("limit", 50))
        start = int(request.args.get("cursor") or 0)
        body: dict = {"notifications": items[start:start + limit]}
        if start + limit < len(items):
            body["cursor"] = str(start + limit)
        return json_response(body)


def as_notification(post_view: dict, reason: str = "mention") -> dict:
    """Return the notification a post view becomes for the account it mentions."""
    return {key: post_view[key] for key in ("uri", "cid", "author", "record", "indexedAt")} | {
        "reason": reason, "isRead": False, "labels": []}
