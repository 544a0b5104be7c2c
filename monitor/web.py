"""The review desk: a small web app where staff work the queue, record human labels and make evidence packs.

Server-rendered (Jinja2, autoescaped) FastAPI pages; the core flow works without JavaScript, and the one script
(keyboard shortcuts) is a file of our own, so the Content-Security-Policy allows no inline script and nothing from
elsewhere. Sessions are signed cookies (HttpOnly, SameSite=Lax, Secure behind HTTPS) that name the user; every
request reads the user again, so a disabled user or a changed password ends a session at once. Every POST carries
the session's CSRF token. A mention the user may not see answers 404, the same as one that does not exist.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import sqlite_utils
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from . import __version__
from .categories import CATEGORIES
from .db import audit, open_db, write_transaction
from .evidence import EvidenceError, build_evidence_pack
from .rendering import render
from .reviews import (
    NO_LABEL,
    OPEN_STATUSES,
    STATUS_NAMES,
    STATUSES,
    QueueFilter,
    ReviewError,
    can_see_mention,
    can_see_official,
    log_view,
    mention_record,
    official_overview,
    queue,
    record_review,
    visible_officials,
)
from .settings import Settings
from .users import (
    User,
    UserError,
    add_user,
    assign_officials,
    authenticate,
    disable_user,
    get_user,
    list_users,
    claim_login_attempt,
    finish_login_attempt,
    sign_out,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PLATFORMS = ("x", "mastodon", "bluesky")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class NeedsLogin(Exception):
    """The request has no valid session; the browser is sent to the login page."""


class Forbidden(Exception):
    """The user is logged in but their role may not do this."""


class Desk:
    """What every request needs: settings, the configured model, and one database connection per thread."""

    def __init__(self, settings: Settings, current_model: tuple[str, str] | None):
        self.settings = settings
        self.current_model = current_model
        self.db_path = settings.db_path
        open_db(self.db_path).close()  # create or migrate once, before the first request
        self._local = threading.local()

    @property
    def db(self) -> sqlite_utils.Database:
        """Return this thread's connection (SQLite connections must stay on the thread that made them)."""
        connection = getattr(self._local, "db", None)
        if connection is None:
            connection = self._local.db = open_db(self.db_path, migrate=False)
        return connection


def _csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf(request: Request, form) -> None:
    expected = request.session.get("csrf")
    given = form.get("csrf_token")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise StarletteHTTPException(
            403, "Het formulier is verlopen of komt niet van deze site (CSRF). Laad de pagina opnieuw.")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(
    settings: Settings, current_model: tuple[str, str] | None = None, secret: str | None = None
) -> FastAPI:
    """Build the review desk app over SETTINGS' database; SECRET signs session cookies (else WEERBAAR_WEB_SECRET)."""
    if secret is None and settings.web_secret is not None:
        secret = settings.web_secret.get_secret_value()
    if not secret:
        # Sessions then last only as long as this process; fine for a trial, not for a deployment.
        log.warning("WEERBAAR_WEB_SECRET is not set; using a random key, so sessions end when the app restarts")
        secret = secrets.token_urlsafe(32)
    web = settings.web
    secure = web.cookies_secure()
    desk = Desk(settings, current_model)
    app = FastAPI(title="Weerbaar", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.desk = desk
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        user = context.pop("user", None)
        html = render(f"web/{template}", user=user, csrf_token=_csrf_token(request), status_names=STATUS_NAMES,
                      version=__version__, **context)
        return HTMLResponse(html, status_code=status_code)

    def current_user(request: Request) -> User | None:
        user_id = request.session.get("uid")
        if user_id is None:
            return None
        user = get_user(desk.db, user_id)
        expired = time.time() > request.session.get("exp", 0)
        issued = request.session.get("iat", 0)
        if (user is None or user.disabled or expired or request.session.get("pwd") != user.password_changed_at
                or issued <= user.signed_out_at):
            request.session.clear()
            return None
        return user

    def staff(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise NeedsLogin()
        if not user.works_queue:
            raise Forbidden()
        return user

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    # Added after the header middleware, so it runs first and the handlers above see request.session.
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="weerbaar_session",
        max_age=int(web.session_hours * 3600),
        same_site="lax",
        https_only=secure,
    )

    @app.exception_handler(NeedsLogin)
    async def needs_login(request: Request, exc: NeedsLogin):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden):
        user = await run_in_threadpool(current_user, request)
        return page(request, "error.html", 403, user=user, title="Geen toegang",
                    message="Uw rol geeft geen toegang tot de wachtrij, berichten of bewijspakketten.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        titles = {404: "Niet gevonden", 403: "Geen toegang", 429: "Te veel pogingen", 400: "Ongeldig verzoek"}
        message = exc.detail
        if exc.status_code == 404:
            message = "Deze pagina of dit bericht bestaat niet, of u mag het niet zien."
        return page(request, "error.html", exc.status_code, user=None,
                    title=titles.get(exc.status_code, "Fout"), message=message)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        user = current_user(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/queue" if user.works_queue else "/exports", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/"):
        return page(request, "login.html", next=_safe_next(next), error=None)

    def _login(request: Request, username: str, password: str) -> User | str:
        client = _client(request)
        attempt = claim_login_attempt(desk.db, username, client, web.login_attempts, web.login_window_minutes)
        if attempt is None:
            return "blocked"
        user = authenticate(desk.db, username, password)
        finish_login_attempt(desk.db, attempt, username, client, user is not None)
        return user or "wrong"

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        form = await request.form()
        _check_csrf(request, form)
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        target = _safe_next(str(form.get("next") or "/"))
        result = await run_in_threadpool(_login, request, username, password)
        if result == "blocked":
            minutes = f"{web.login_window_minutes:g}"
            return page(request, "login.html", 429, next=target,
                        error=f"Te veel mislukte pogingen. Probeer het over {minutes} minuten opnieuw.")
        if result == "wrong":
            return page(request, "login.html", 401, next=target, error="Onbekende naam of verkeerd wachtwoord.")
        request.session.clear()
        request.session.update({"uid": result.id, "pwd": result.password_changed_at, "iat": time.time(),
                                "exp": time.time() + web.session_hours * 3600,
                                "csrf": secrets.token_urlsafe(32)})
        if not result.works_queue and target in ("/", "/queue"):
            target = "/exports"
        return RedirectResponse(target, status_code=303)

    @app.post("/logout")
    async def logout(request: Request):
        form = await request.form()
        _check_csrf(request, form)
        user = current_user(request)
        if user is not None:
            sign_out(desk.db, user.id, time.time())
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(request: Request):
        user = staff(request)
        params = request.query_params
        filters, problems = _queue_filter(params)
        if filters.official is not None and not can_see_official(desk.db, user, filters.official):
            # Filtering on an official one may not see would tell which of one's posts also address them.
            filters.official = None
            problems.append("onbekende volksvertegenwoordiger")
        # A page number past any real queue would overflow SQLite's integers.
        page_number = min(max(1, _int(params.get("page")) or 1), 1_000_000)
        size = web.queue_page_size
        items = queue(desk.db, user, filters, desk.settings.timezone, desk.current_model,
                      limit=size + 1, offset=(page_number - 1) * size)
        base = [(k, v) for k, v in params.multi_items() if k != "page"]
        # The queue shows authors and the start of texts: who saw which mentions is in the audit log (ids only).
        with write_transaction(desk.db):
            audit(desk.db, "queue.viewed", f"user:{user.id}",
                  {"mentions": [item.mention_id for item in items[:size]], "page": page_number}, user.username)
        return page(request, "queue.html", user=user, items=items[:size], filters=filters, problems=problems,
                    officials=visible_officials(desk.db, user), categories=CATEGORIES, platforms=PLATFORMS,
                    statuses=STATUSES, page_number=page_number,
                    next_url="/queue?" + urlencode(base + [("page", page_number + 1)]) if len(items) > size else None,
                    previous_url="/queue?" + urlencode(base + [("page", page_number - 1)]) if page_number > 1 else None)

    def _visible_record(user: User, mention_id: int) -> dict:
        if not can_see_mention(desk.db, user, mention_id):
            raise StarletteHTTPException(404)
        record = mention_record(desk.db, mention_id, desk.settings.timezone, desk.current_model, user)
        if record is None:
            raise StarletteHTTPException(404)
        return record

    def _mention_page(request: Request, user: User, mention_id: int, error: str | None = None,
                      status_code: int = 200, saved: bool = False) -> HTMLResponse:
        record = _visible_record(user, mention_id)
        log_view(desk.db, user, mention_id)
        counting = next((s for s in record["scores"] if s["counts"]), None)
        latest = next((r for r in reversed(record["reviews"]) if r["status"] != "in_review"), None)
        checked = latest["labels"] if latest else [c for c in (counting or {}).get("labels", []) if c in CATEGORIES]
        return page(request, "mention.html", status_code, user=user, m=record, counting=counting, checked=checked,
                    categories=CATEGORIES, error=error, saved=saved,
                    today=dt.date.today().isoformat())

    @app.get("/mentions/{mention_id}", response_class=HTMLResponse)
    def mention_page(request: Request, mention_id: int, saved: int = 0):
        user = staff(request)
        return _mention_page(request, user, mention_id, saved=bool(saved))

    def _review(request: Request, mention_id: int, form) -> Response:
        user = staff(request)
        _visible_record(user, mention_id)
        status = str(form.get("status") or "") or None
        labels = [str(v) for v in form.getlist("labels")]
        if status == "dismissed":
            labels = [NO_LABEL]
        try:
            record_review(desk.db, user, mention_id, labels, str(form.get("note") or ""), status,
                          str(form.get("reported_on") or "") or None)
        except ReviewError as exc:
            return _mention_page(request, user, mention_id, error=str(exc), status_code=400)
        return RedirectResponse(f"/mentions/{mention_id}?saved=1", status_code=303)

    @app.post("/mentions/{mention_id}/review")
    async def review(request: Request, mention_id: int):
        form = await request.form()
        _check_csrf(request, form)
        return await run_in_threadpool(_review, request, mention_id, form)

    @app.get("/mentions/{mention_id}/evidence")
    def evidence(request: Request, mention_id: int):
        user = staff(request)
        _visible_record(user, mention_id)
        try:
            pack = build_evidence_pack(desk.db, [mention_id], user.username, desk.settings, desk.current_model,
                                       user)
        except EvidenceError as exc:
            raise StarletteHTTPException(404, str(exc)) from None
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        return Response(pack, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="weerbaar-bewijs-{mention_id}-{stamp}.zip"'})

    @app.get("/officials", response_class=HTMLResponse)
    def officials_page(request: Request):
        user = staff(request)
        return page(request, "officials.html", user=user, officials=visible_officials(desk.db, user))

    @app.get("/officials/{official_id}", response_class=HTMLResponse)
    def official_page(request: Request, official_id: int):
        user = staff(request)
        if not can_see_official(desk.db, user, official_id):
            raise StarletteHTTPException(404)
        official = next(o for o in visible_officials(desk.db, user) if o["id"] == official_id)
        overview = official_overview(desk.db, official_id, desk.settings.timezone, desk.current_model)
        with write_transaction(desk.db):
            audit(desk.db, "official.viewed", f"official:{official_id}", {}, user.username)
        return page(request, "official.html", user=user, official=official, overview=overview,
                    chart=_chart(overview["days"]))

    @app.get("/exports", response_class=HTMLResponse)
    def exports_page(request: Request):
        user = current_user(request)
        if user is None:
            raise NeedsLogin()
        return page(request, "exports.html", user=user)

    def admin(request: Request) -> User:
        user = staff(request)
        if not user.sees_all:
            raise Forbidden()
        return user

    def _users_page(request: Request, user: User, error: str | None = None, done: str | None = None,
                    status_code: int = 200) -> HTMLResponse:
        officials = visible_officials(desk.db, user)
        return page(request, "users.html", status_code, user=user, users=list_users(desk.db), officials=officials,
                    official_names={o["id"]: o["name"] for o in officials}, error=error, done=done)

    @app.get("/users", response_class=HTMLResponse)
    def users_page(request: Request):
        return _users_page(request, admin(request))

    def _change_users(request: Request, form, action: str) -> HTMLResponse:
        user = admin(request)
        username = str(form.get("username") or "")
        try:
            if action == "add":
                officials = [int(v) for v in form.getlist("officials") if str(v).isdigit()]
                add_user(desk.db, username, str(form.get("role") or ""), str(form.get("password") or ""),
                         officials, actor=user.username)
                done = f"{username} toegevoegd."
            elif action == "disable":
                if username == user.username:
                    raise UserError("name: you cannot disable yourself")
                disable_user(desk.db, username, actor=user.username)
                done = f"{username} uitgeschakeld."
            else:
                officials = [int(v) for v in form.getlist("officials") if str(v).isdigit()]
                assign_officials(desk.db, username, officials, remove=action == "remove", actor=user.username)
                done = f"Volksvertegenwoordigers van {username} bijgewerkt."
        except UserError as exc:
            return _users_page(request, user, error=str(exc), status_code=400)
        return _users_page(request, user, done=done)

    @app.post("/users/{action}", response_class=HTMLResponse)
    async def change_users(request: Request, action: str):
        if action not in ("add", "disable", "assign", "remove"):
            raise StarletteHTTPException(404)
        form = await request.form()
        _check_csrf(request, form)
        return await run_in_threadpool(_change_users, request, form, action)

    return app


def _safe_next(target: str) -> str:
    """Return TARGET when it is a path on this site, else '/' (no open redirect to another host)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _queue_filter(params) -> tuple[QueueFilter, list[str]]:
    """Read the queue's filters from the query string; a bad value is ignored and named."""
    problems = []
    dates = {}
    for name in ("since", "until"):
        value = params.get(name)
        dates[name] = None
        if value:
            try:
                dates[name] = dt.date.fromisoformat(value)
            except ValueError:
                problems.append(f"{name}: geen datum (JJJJ-MM-DD): {value}")
    statuses = tuple(s for s in params.getlist("status") if s in STATUSES) or OPEN_STATUSES
    if "all" in params.getlist("status"):
        statuses = STATUSES
    category = params.get("category") or None
    if category and category not in CATEGORIES:
        problems.append(f"category: onbekend: {category}")
        category = None
    platform = params.get("platform") or None
    if platform and platform not in PLATFORMS:
        problems.append(f"platform: onbekend: {platform}")
        platform = None
    return QueueFilter(
        official=_int(params.get("official")),
        category=category,
        platform=platform,
        since=dates["since"],
        until=dates["until"],
        statuses=statuses,
        flagged_only=params.get("flagged", "1") != "0",
    ), problems


def _chart(days: list[dict], width: int = 720, height: int = 120) -> dict:
    """Return the bars of a 90-day chart of flagged mentions (threats as their own bar part), in SVG units."""
    peak = max([d["flagged"] for d in days] + [1])
    step = width / len(days)
    bars = []
    for i, day in enumerate(days):
        flagged_height = height * day["flagged"] / peak
        threat_height = height * day["threats"] / peak
        bars.append({"x": round(i * step, 2), "width": round(max(step - 1, 1), 2), "day": day["day"],
                     "flagged": day["flagged"], "threats": day["threats"],
                     "y": round(height - flagged_height, 2), "height": round(flagged_height, 2),
                     "threat_y": round(height - threat_height, 2), "threat_height": round(threat_height, 2)})
    return {"bars": bars, "width": width, "height": height, "peak": peak}
