"""Fake platform servers on loopback, serving payloads shaped like the documented X, Mastodon and Bluesky APIs.

Each fake is a real HTTP server (pytest-httpserver, on 127.0.0.1 and a free port) holding a list of posts, oldest
first. Posts can be a plain list or a ``LazyPosts`` that builds each post from its index, so a benchmark can serve
100,000 posts without building them up front. Every fake records the requests it answered (``fake.calls``) and can be
told to fail the next matching requests (``fake.fail_next``) with 429s, 500s or 401s.

``serve_fake_posts(platform, n)`` starts a fake with N posts aimed at one official and returns what a run needs.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


class LazyPosts(Sequence):
    """N posts built on demand by MAKE(index), oldest first: a large feed without a large list."""

    def __init__(self, n: int, make: Callable[[int], tuple[int, dict]]):
        self.n = n
        self.make = make

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.n))]
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.make(index)


def first_after(posts: Sequence[tuple[int, dict]], key: int | None) -> int:
    """Return the index of the first post whose sort key is greater than KEY (0 when KEY is None)."""
    if key is None:
        return 0
    return bisect.bisect_right(posts, key, key=lambda entry: entry[0])


def first_at_or_after(posts: Sequence[tuple[int, dict]], key: int) -> int:
    """Return the index of the first post whose sort key is at least KEY."""
    return bisect.bisect_left(posts, key, key=lambda entry: entry[0])


@dataclass
class Fault:
    """A canned failure served instead of the real answer to the next request whose path matches."""

    path: re.Pattern
    status: int
    body: object
    headers: dict = field(default_factory=dict)


class FakeServer:
    """A loopback HTTP server with recorded calls and injectable faults; subclasses add the platform's routes."""

    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.calls: list[tuple[str, dict]] = []
        self.faults: list[Fault] = []

    @property
    def url(self) -> str:
        """Return the base URL of the running server, without a trailing slash."""
        return self.server.url_for("/").rstrip("/")

    def start(self) -> FakeServer:
        """Start serving on a free loopback port."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server.is_running():
            self.server.stop()

    def route(self, path: str | re.Pattern, handler: Callable[[Request], Response], method: str = "GET") -> None:
        """Answer requests for PATH with HANDLER, after recording them and serving any pending fault."""

        def answer(request: Request) -> Response:
            self.calls.append((request.path, {k: request.args.getlist(k) if len(request.args.getlist(k)) > 1
                                              else request.args[k] for k in request.args}))
            for fault in self.faults:
                if fault.path.search(request.path):
                    self.faults.remove(fault)
                    return json_response(fault.body, fault.status, fault.headers)
            return handler(request)

        self.server.expect_request(path, method=method).respond_with_handler(answer)

    def fail_next(self, path: str, status: int, body: object = None, headers: dict | None = None,
                  times: int = 1) -> None:
        """Serve STATUS (with BODY and HEADERS) to the next TIMES requests whose path matches the regex PATH."""
        for _ in range(times):
            self.faults.append(Fault(re.compile(path), status, body if body is not None else {}, headers or {}))

    def calls_to(self, pattern: str) -> list[dict]:
        """Return the query arguments of the recorded requests whose path matches the regex PATTERN."""
        return [args for path, args in self.calls if re.search(pattern, path)]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def json_response(body: object, status: int = 200, headers: dict | None = None) -> Response:
    """Return a JSON response."""
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


@dataclass
class FakeFeed:
    """What a benchmark needs to run against a fake: its base URL, the official's handle and a source table."""

    platform: str
    base_url: str
    handle: str
    source: dict
    environment: dict
    fake: FakeServer


@contextmanager
def serve_fake_posts(platform: str, n: int) -> Iterator[FakeFeed]:
    """Serve N generated posts mentioning one official on a fake PLATFORM server ('x', 'mastodon' or 'bluesky').

    The yielded FakeFeed names the official's handle (register it with consent for PLATFORM), the [sources.NAME]
    settings to run (``Settings(sources={platform: feed.source})``) and the environment variables holding the
    fake's credentials (set them before loading settings).
    """
    if platform == "x":
        from .x_api import FakeX, generated_tweets

        fake = FakeX(token="bench-token")
        fake.add_user("1001", "raadslid_bench")
        fake.mentions["raadslid_bench"] = generated_tweets(n, "raadslid_bench")
        with fake:
            yield FakeFeed("x", fake.url, "raadslid_bench",
                           {"type": "x", "base_url": fake.url, "monthly_read_budget": n + 1000},
                           {"WEERBAAR_X_BEARER_TOKEN": "bench-token"}, fake)
    elif platform == "mastodon":
        from .mastodon_api import FakeMastodon, generated_notifications

        fake = FakeMastodon(token="bench-token", domain="bench.example")
        fake.notifications = generated_notifications(n, "raadslid", "bench.example")
        with fake:
            yield FakeFeed("mastodon", fake.url, "raadslid@bench.example",
                           {"type": "mastodon", "base_url": fake.url},
                           {"WEERBAAR_MASTODON_ACCESS_TOKEN": "bench-token"}, fake)
    elif platform == "bluesky":
        from .bluesky_api import FakeBluesky, generated_posts

        fake = FakeBluesky()
        fake.add_profile("did:plc:bench", "raadslid.bsky.social")
        fake.posts["raadslid.bsky.social"] = generated_posts(n, "raadslid.bsky.social")
        with fake:
            yield FakeFeed("bluesky", fake.url, "raadslid.bsky.social",
                           {"type": "bluesky", "base_url": fake.url}, {}, fake)
    else:
        raise ValueError(f"unknown platform {platform!r} (expected x, mastodon or bluesky)")
