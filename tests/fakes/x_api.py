"""A fake X API v2: user lookup, user mention timelines and recent search, shaped like the documented responses.

Responses follow https://docs.x.com/x-api: ``{"data": [...], "includes": {"users": [...], "tweets": [...]},
"meta": {"newest_id", "oldest_id", "result_count", "next_token"}}``, newest first, with ``since_id``,
``pagination_token``/``next_token`` and ``max_results`` (5-100 for mentions, 10-100 for search) honoured.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from werkzeug import Request, Response

from . import FakeServer, LazyPosts, first_after, json_response

EPOCH = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
FIRST_ID = 1_890_000_000_000_000_000
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}


def tweet(tweet_id: int, text: str, author_id: str, *, minutes: int = 0, reply_to: int | None = None,
          lang: str = "nl") -> tuple[int, dict]:
    """Return (sort key, tweet object) as the API serves it with the fields Weerbaar asks for."""
    body = {
        "id": str(tweet_id),
        "text": text,
        "author_id": author_id,
        "created_at": (EPOCH + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conversation_id": str(reply_to or tweet_id),
        "lang": lang,
        "edit_history_tweet_ids": [str(tweet_id)],
    }
    if reply_to:
        body["referenced_tweets"] = [{"type": "replied_to", "id": str(reply_to)}]
        body["in_reply_to_user_id"] = "1001"
    return tweet_id, body


def replay_page(fake: "FakeX", username: str, page: dict) -> None:
    """Serve a recorded search or mentions page again: its tweets for @USERNAME, its users and referenced tweets."""
    fake.mentions[username] = sorted((int(t["id"]), t) for t in page["data"])
    for user in page.get("includes", {}).get("users", []):
        fake.users.setdefault(user["id"], user)
    for referenced in page.get("includes", {}).get("tweets", []):
        fake.known_tweets[referenced["id"]] = referenced


def generated_tweets(n: int, handle: str) -> LazyPosts:
    """Return N cheap tweets mentioning @HANDLE, oldest first, built only when served."""

    def make(index: int) -> tuple[int, dict]:
        return tweet(FIRST_ID + index, f"@{handle} bericht nummer {index}", str(5000 + index % 500),
                     minutes=index % 10_000)

    return LazyPosts(n, make)


class FakeX(FakeServer):
    """X API v2 on loopback: accounts, their mentions (oldest first) and the bearer token it accepts."""

    def __init__(self, token: str = "x-test-token"):
        super().__init__()
        self.token = token
        self.users: dict[str, dict] = {}  # id -> user object
        self.suspended: set[str] = set()  # user ids
        self.mentions: dict[str, Sequence[tuple[int, dict]]] = {}  # username -> tweets, oldest first
        self.known_tweets: dict[str, dict] = {}  # id -> tweet, served in includes.tweets when referenced
        self.route("/2/users/by", self._users_by_username)
        self.route("/2/users", self._users_by_id)
        self.route(re.compile(r"^/2/users/[^/]+/mentions$"), self._user_mentions)
        self.route("/2/tweets/search/recent", self._search_recent)

    def add_user(self, user_id: str, username: str) -> None:
        """Create an account."""
        self.users[user_id] = {"id": user_id, "name": username.title(), "username": username}

    def rename(self, user_id: str, new_username: str) -> None:
        """Rename an account; its mentions move with it, as on X."""
        old = self.users[user_id]["username"]
        self.users[user_id]["username"] = new_username
        if old in self.mentions:
            self.mentions[new_username] = self.mentions.pop(old)

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _lookup(self, request: Request, values: list[str], by: str) -> Response:
        data, errors = [], []
        for value in values:
            user = next((u for u in self.users.values()
                         if (u["username"].lower() == value.lower() if by == "username" else u["id"] == value)), None)
            if user and user["id"] in self.suspended:
                errors.append({"value": value, "detail": f"User has been suspended: [{value}].", "title": "Forbidden",
                               "resource_type": "user", "parameter": f"{by}s", "resource_id": value,
                               "type": "https://api.twitter.com/2/problems/resource-not-found"})
            elif user:
                data.append(dict(user))
            else:
                errors.append({"value": value, "detail": f"Could not find user with {by}s: [{value}].",
                               "title": "Not Found Error", "resource_type": "user", "parameter": f"{by}s",
                               "resource_id": value, "type": "https://api.twitter.com/2/problems/resource-not-found"})
        body: dict = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return json_response(body)

    def _users_by_username(self, request: Request) -> Response:
        if not self._authorised(request):
            return json_response(UNAUTHORIZED, 401)
        return self._lookup(request, request.args.get("usernames", "").split(","), "username")

    def _users_by_id(self, request: Request) -> Response:
        if not self._authorised(request):
            return json_response(UNAUTHORIZED, 401)
        return self._lookup(request, request.args.get("ids", "").split(","), "id")

    def _user_mentions(self, request: Request) -> Response:
        if not self._authorised(request):
            return json_response(UNAUTHORIZED, 401)
        user_id = request.path.split("/")[3]
        user = self.users.get(user_id)
        if user is None or user_id in self.suspended:
            return json_response({"errors": [{"value": user_id, "detail": f"Could not find user with id: [{user_id}].",
                                              "title": "Not Found Error", "resource_type": "user",
                                              "type": "https://api.twitter.com/2/problems/resource-not-found"}]})
        return self._page(request, self.mentions.get(user["username"], []), "pagination_token", minimum=5)

    def _search_recent(self, request: Request) -> Response:
        if not self._authorised(request):
            return json_response(UNAUTHORIZED, 401)
        found = re.search(r"@(\w+)", request.args.get("query", ""))
        username = found.group(1) if found else ""
        posts = next((p for name, p in self.mentions.items() if name.lower() == username.lower()), [])
        return self._page(request, posts, "next_token", minimum=10)

    def _page(self, request: Request, posts: Sequence[tuple[int, dict]], token_param: str, minimum: int) -> Response:
        max_results = int(request.args.get("max_results", 10))
        if not minimum <= max_results <= 100:
            return json_response({"errors": [{"parameters": {"max_results": [str(max_results)]},
                                              "message": f"The `max_results` query parameter value [{max_results}] "
                                                         f"is not between {minimum} and 100"}],
                                  "title": "Invalid Request", "detail": "One or more parameters to your request "
                                  "was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}, 400)
        since = request.args.get("since_id")
        low = first_after(posts, int(since) if since else None)
        high = int(request.args[token_param]) if request.args.get(token_param) else len(posts)
        start = max(low, high - max_results)
        page = [posts[i][1] for i in range(high - 1, start - 1, -1)]
        if not page:
            return json_response({"meta": {"result_count": 0}})
        authors = {t.get("author_id") for t in page if isinstance(t, dict)}
        users = [self.users.get(a) or {"id": a, "name": f"Gebruiker {a}", "username": f"gebruiker{a}"}
                 for a in sorted(a for a in authors if a)]
        referenced = [self.known_tweets.get(ref["id"]) or {"id": ref["id"], "text": "(eerder bericht)",
                                                           "author_id": "1001"}
                      for t in page if isinstance(t, dict) for ref in t.get("referenced_tweets") or []]
        ids = [t["id"] for t in page if isinstance(t, dict) and "id" in t]
        meta = {"newest_id": ids[0] if ids else None, "oldest_id": ids[-1] if ids else None,
                "result_count": len(page)}
        if start > low:
            meta["next_token"] = str(start)
        includes: dict = {"users": users}
        if referenced:
            includes["tweets"] = referenced
        return json_response({"data": page, "includes": includes, "meta": meta})
