"""Who may read and who may write.

- No token configured (`dashboards.token_env` unset): pages and the read API are open, as on
  loopback by default; every write (a label, a rollout change) is refused with 403 and says
  how to enable it.
- A token configured: every page and API call requires it, as `Authorization: Bearer <token>`
  or the `shadowjudge_token` cookie that `/login` sets (HttpOnly, SameSite=Strict).
- Writes from a browser (cookie-authenticated) are CSRF-checked by `asgi-csrf` (the
  double-submit cookie that datasette uses: a signed `csrftoken` cookie and the same value in
  the form or the `x-csrftoken` header). A bearer-token call carries no ambient credential, so
  it is not CSRF-checked.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

from asgi_csrf import asgi_csrf
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "shadowjudge_token"
#: Paths open without the token: the login form, health, and the static files.
OPEN_PATHS = ("/login", "/healthz", "/static/")


def bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            found: str = value[7:].decode("latin-1").strip()
            return found
    return None


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class TokenGate:
    """Requires the token on every path but `OPEN_PATHS` when one is configured."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if token_matches(bearer(scope), self.token) or token_matches(
            request.cookies.get(COOKIE), self.token
        ):
            await self.app(scope, receive, send)
            return
        response: Response
        if path.startswith("/api/"):
            response = JSONResponse(
                {"error": "this dashboard requires its token (Authorization: Bearer ...)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            target = path + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
            response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        await response(scope, receive, send)


def protect(app: ASGIApp, *, token: str | None, secret: str) -> ASGIApp:
    """The app behind the CSRF check (cookie-authenticated writes) and the token gate."""
    checked = asgi_csrf(
        app,
        signing_secret=secret,
        skip_if_scope=lambda scope: bearer(scope) is not None,
        cookie_samesite="Strict",
        always_set_cookie=True,
    )
    return TokenGate(checked, token)
