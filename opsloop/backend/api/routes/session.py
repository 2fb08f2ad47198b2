"""Dashboard login and logout: a plain HTML form posts here; we set an HttpOnly session cookie.

The cookie is HttpOnly and SameSite=Lax (no script can read it, no other site can send it with a
POST), `Secure` when the browser's connection was TLS (our own, or a trusted proxy's, see
`proxies.py`); it names a server-side session (`sessions.py`) that logout revokes everywhere. Both
forms are held to the cross-site check (`csrf.py`). Failed logins slow down per client address
(`limiter.py`): an attempt is counted before the password is evaluated.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from opsloop.backend import limiter
from opsloop.backend.api.deps import error, session_store
from opsloop.backend.api.identity import client_key, too_many
from opsloop.backend.api.openapi import ERROR, PUBLIC
from opsloop.backend.api.proxies import trusted_proxies
from opsloop.backend.auth import check_password
from opsloop.backend.config import get_settings
from opsloop.backend.redirects import safe_next
from opsloop.backend.sessions import COOKIE

router = APIRouter(tags=["session"])
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

LOGIN_FORM = {
    "type": "object",
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "next": {"type": "string", "default": "/"}},
    "required": ["username", "password"],
}
REDIRECT = {"description": "Redirect (`Location`): to `next` (a same-origin path) with the session cookie set, or back to /login?error=1"}


@router.post(
    "/auth/login",
    status_code=303,
    response_class=RedirectResponse,
    summary="Dashboard login (form fields username, password, next)",
    responses={
        303: REDIRECT,
        415: {**ERROR, "description": "Not a form body"},
        429: {**ERROR, "description": "Too many failed logins from this address (Retry-After)"},
    },
    openapi_extra={
        "security": PUBLIC,
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": LOGIN_FORM}}},
    },
)
async def login(request: Request) -> Response:
    if not request.headers.get("content-type", "").lower().startswith(FORM_TYPES):
        return error(415, "Content-Type must be application/x-www-form-urlencoded")
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or "/"))
    key = client_key(request)
    wait = limiter.logins.begin(key)  # counted as a failure now; forgiven below if right
    if wait:
        raise too_many(wait, "logins")
    if not check_password(get_settings(), username, password):
        return RedirectResponse(f"/login?error=1&next={quote(next_path)}", status_code=303)
    limiter.logins.forgive(key)
    token, _ = await session_store().create(username)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(session_store().max_age_s),
        httponly=True,
        samesite="lax",
        secure=trusted_proxies().is_tls(request.scope),
        path="/",
    )
    return response


@router.post(
    "/auth/logout",
    status_code=303,
    response_class=RedirectResponse,
    summary="End the dashboard session",
    responses={303: {"description": "Redirect to /login; the session is revoked and its cookie cleared"}},
    openapi_extra={"security": PUBLIC},
)
async def logout(request: Request) -> RedirectResponse:
    await session_store().revoke(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response
