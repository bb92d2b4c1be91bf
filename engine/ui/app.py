"""The ``indb ui`` web app: starlette routes over one indb connection, pages rendered on the
server with jinja2 (autoescaped), charts as inline SVG, no scripts.

It reads what the connection's role may read and writes only through a few actions
(acknowledge or resolve an alert, run a job now, approve or reject a stage request), each a
POST carrying the page's CSRF token, each done by indb's own API so that the database checks
the role and the audit log records it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from contextlib import asynccontextmanager
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import indb
from indb import audit
from indb.errors import IndbError, InvalidNameError, NotFoundError, PermissionDeniedError
from indb.ui import pages, search

TOKEN_COOKIE = "indb_ui_token"
CSRF_COOKIE = "indb_ui_csrf"
CSRF_FIELD = "csrf"
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    'fill="#1f77b4"/><path d="M4 12V4h2v8zm4 0V7h2v5zm4 0V9h-2" fill="#fff"/></svg>'
)
CARD_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
HEADERS = {
    # Pages hold no scripts: the policy refuses any, and every other origin.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def cookie_value(token: str) -> str:
    """What the token cookie holds: a digest of the token (cookie-safe characters; the token
    itself never sits in the browser's cookie store)."""
    return hmac.new(token.encode(), b"indb ui session", "sha256").hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two secrets (False when either is missing)."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


class UI:
    """One database connection shared by the app's requests, one request at a time."""

    def __init__(self, url: str, token: str | None, root_path: str, actions: bool):
        self.db = indb.connect(url)
        self.lock = threading.Lock()
        self.token = token
        self.root_path = root_path.rstrip("/")
        self.actions = actions
        self.templates = Environment(
            loader=PackageLoader("indb.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["cell"] = _cell
        self.templates.globals["Markup"] = Markup

    @property
    def backend(self):
        return self.db.backend

    def render(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        body = self.templates.get_template(template).render(
            base=self.root_path,
            csrf=request.state.csrf,
            user=self.backend.user,
            database=self.backend.name,
            actions=self.actions,
            path=request.url.path,
            limit=pages.LIMIT,
            **context,
        )
        return HTMLResponse(body, status_code=status)


def _cell(value) -> str:
    """A table cell's text: numbers to 6 significant digits, times to the second, NULL empty."""
    import pandas as pd

    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def create_app(url: str, token: str | None = None, *, root_path: str = "", actions: bool = True) -> Starlette:
    """The ``indb ui`` app over the database at ``url`` (opened with the URL's role).

    ``token``: every request must carry it (``Authorization: Bearer <token>``, or a cookie set
    by visiting any page once with ``?token=<token>``). ``root_path``: the prefix a reverse
    proxy serves the app under (links carry it; the proxy strips it). ``actions`` False: no
    writes at all."""
    ui = UI(url, token, root_path, actions)

    async def page(request: Request, build, *args, **kwargs) -> Response:
        def work():
            with ui.lock:
                return build(ui.backend, *args, **kwargs)

        try:
            result = await run_in_threadpool(work)
        except (NotFoundError, InvalidNameError) as e:
            return ui.render(request, "message.html", 404, title="Not found", message=str(e))
        return ui.render(request, result.template, page=result, **result.extra)

    async def overview(request: Request) -> Response:
        return await page(request, pages.overview)

    async def model(request: Request) -> Response:
        return await page(request, pages.model, request.path_params["name"])

    async def card(request: Request) -> Response:
        def work():
            with ui.lock:
                return ui.db.model_card(request.path_params["name"])

        try:
            text = await run_in_threadpool(work)
        except (NotFoundError, InvalidNameError) as e:
            return ui.render(request, "message.html", 404, title="Not found", message=str(e))
        # The card is a self-contained page with its own inline style (and still no script).
        return HTMLResponse(text, headers={"Content-Security-Policy": CARD_POLICY})

    async def deployment(request: Request) -> Response:
        days = _int(request.query_params.get("days"), 14, 1, 366)
        return await page(request, pages.deployment, request.path_params["table"], days)

    async def monitors(request: Request) -> Response:
        return await page(request, pages.monitors)

    async def monitor(request: Request) -> Response:
        return await page(
            request, pages.monitor, request.path_params["name"], request.query_params.get("metric")
        )

    async def feature_sets(request: Request) -> Response:
        return await page(request, pages.feature_sets)

    async def feature_set(request: Request) -> Response:
        version = request.query_params.get("version")
        chosen = _int(version, None, 1, 2**31) if version else None
        return await page(request, pages.feature_set, request.path_params["name"], chosen)

    async def jobs(request: Request) -> Response:
        return await page(request, pages.jobs, request.path_params.get("name"))

    async def find(request: Request) -> Response:
        return await page(request, search.page, request.query_params.get("q", ""))

    async def icon(request: Request) -> Response:
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    # -- actions --------------------------------------------------------------------------------
    async def act(request: Request, what: str, work) -> Response:
        form = await _form(request)
        if not same(form.get(CSRF_FIELD), request.cookies.get(CSRF_COOKIE)):
            return ui.render(
                request,
                "message.html",
                403,
                title="Refused",
                message="the form's CSRF token is missing or stale: reload the page and try again",
            )
        if not ui.actions:
            return ui.render(
                request,
                "message.html",
                403,
                title="Refused",
                message="this indb ui was started read-only (--read-only)",
            )

        def run():
            with ui.lock:
                return work(form)

        try:
            done = await run_in_threadpool(run)
        except PermissionDeniedError as e:
            return ui.render(
                request,
                "message.html",
                403,
                title="Refused",
                message=f"{what} refused: database user {ui.backend.user!r} may not. {e}",
                back=_back(form),
            )
        except (NotFoundError, InvalidNameError) as e:
            return ui.render(
                request, "message.html", 404, title="Not found", message=str(e), back=_back(form)
            )
        except IndbError as e:
            return ui.render(
                request, "message.html", 409, title="Not done", message=f"{what}: {e}", back=_back(form)
            )
        return ui.render(request, "message.html", 200, title="Done", message=done, back=_back(form))

    async def alert_status(request: Request) -> Response:
        alert = _int(request.path_params["id"], None, 0, 2**62)
        verb = request.path_params["verb"]
        if alert is None or verb not in ("acknowledge", "resolve"):
            return ui.render(request, "message.html", 404, title="Not found", message="no such action")

        def work(form):
            note = (form.get("note") or "").strip() or None
            method = ui.db.acknowledge_alert if verb == "acknowledge" else ui.db.resolve_alert
            result = method(alert, note)
            return f"alert {alert} {result['status']} by {ui.backend.user}"

        return await act(request, f"{verb} alert {alert}", work)

    async def run_job(request: Request) -> Response:
        name = request.path_params["name"]

        def work(form):
            result = ui.db.run_job(name)
            status = getattr(result, "status", "done")
            run_id = getattr(result, "run_id", None)
            audit.record(ui.backend, "run_job_now", name, {"via": "indb ui", "run": run_id, "status": status})
            return f"job {name} ran now (run {run_id}): {status}, started by {ui.backend.user}"

        return await act(request, f"run job {name}", work)

    async def decide(request: Request) -> Response:
        request_id = _int(request.path_params["id"], None, 0, 2**62)
        verb = request.path_params["verb"]
        if request_id is None or verb not in ("approve", "reject"):
            return ui.render(request, "message.html", 404, title="Not found", message="no such action")

        def work(form):
            comment = (form.get("comment") or "").strip() or None
            method = ui.db.approve if verb == "approve" else ui.db.reject
            status = method(request_id, comment)
            return f"stage request {request_id}: {verb}d by {ui.backend.user}; it is now {status}"

        return await act(request, f"{verb} stage request {request_id}", work)

    routes = [
        Route("/", overview),
        Route("/models/{name}", model),
        Route("/models/{name}/card", card),
        Route("/deployments/{table}", deployment),
        Route("/monitors", monitors),
        Route("/monitors/{name}", monitor),
        Route("/feature-sets", feature_sets),
        Route("/feature-sets/{name}", feature_set),
        Route("/jobs", jobs),
        Route("/jobs/{name}", jobs),
        Route("/search", find),
        Route("/favicon.ico", icon),
        Route("/alerts/{id}/{verb}", alert_status, methods=["POST"]),
        Route("/jobs/{name}/run", run_job, methods=["POST"]),
        Route("/stage-requests/{id}/{verb}", decide, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("indb.ui", "static")]), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app):
        yield
        ui.db.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ui = ui
    return Gate(app, ui)


class Gate:
    """ASGI middleware: the token on every request, a CSRF cookie, the security headers."""

    def __init__(self, app, ui: UI):
        self.app, self.ui = app, ui

    @property
    def state(self):
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        token = self.ui.token
        cookie_path = self.ui.root_path or "/"
        if token is not None:
            given = request.query_params.get("token")
            if given is not None:
                if not same(given, token):
                    return await _deny(scope, receive, send)
                # Keep the token out of the address bar, history and logs from here on.
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = self.ui.root_path + request.url.path + ("?" + urlencode(rest) if rest else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    TOKEN_COOKIE, cookie_value(token), httponly=True, samesite="strict", path=cookie_path
                )
                return await response(scope, receive, send)
            header = request.headers.get("authorization", "")
            bearer = header[7:] if header.lower().startswith("bearer ") else None
            if not (same(bearer, token) or same(request.cookies.get(TOKEN_COOKIE), cookie_value(token))):
                return await _deny(scope, receive, send)
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh = csrf is None or len(csrf) < 32
        if fresh:
            csrf = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf"] = csrf

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [
                    (k.lower().encode(), v.encode())
                    for k, v in HEADERS.items()
                    if k.lower().encode() not in present
                ]
                if fresh:
                    value = f"{CSRF_COOKIE}={csrf}; Path={cookie_path}; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


async def _deny(scope, receive, send):
    response = PlainTextResponse(
        "indb ui: this server needs its token: open a page with ?token=<token> once, or send "
        "'Authorization: Bearer <token>'.",
        status_code=401,
        headers={"WWW-Authenticate": "Bearer", **HEADERS},
    )
    await response(scope, receive, send)


async def _form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the only kind the pages post; starlette's own parser
    needs python-multipart, which indb does not depend on). Bodies over 64 KiB are ignored."""
    from urllib.parse import parse_qsl

    body = await request.body()
    if len(body) > 65536:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _int(text, default, low, high):
    try:
        value = int(text)
    except (TypeError, ValueError):
        return default
    return value if low <= value <= high else default


def _back(form) -> str | None:
    """Where the action's page was: a local path only (never another site)."""
    target = form.get("back") or ""
    local = target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target
    return target if local else None
