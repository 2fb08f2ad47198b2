"""Dashboard login and logout: a plain HTML form posts here; we set an HttpOnly session cookie.

The cookie is HttpOnly and SameSite=Lax (no script can read it, no other site can send it with a
POST); the dashboard's state socket reads it from its own connection's headers.
"""

from __future__ import annotations

from urllib.parse import quote, urlparse

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse

from opsloop.backend.api.deps import error
from opsloop.backend.api.openapi import ERROR, PUBLIC
from opsloop.backend.auth import SESSION_COOKIE, SESSION_MAX_AGE_S, LoginRateLimiter, check_password, issue_session
from opsloop.backend.config import get_settings

router = APIRouter(tags=["session"])
limiter = LoginRateLimiter()


def _safe_next(raw: str | None) -> str:
    """Only same-site paths: an open redirect would let a link log you in and send you elsewhere."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or urlparse(raw).netloc:
        return "/"
    return raw


LOGIN_FORM = {
    "type": "object",
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "next": {"type": "string", "default": "/"}},
    "required": ["username", "password"],
}
REDIRECT = {"description": "Redirect (`Location`): to `next` with the session cookie set, or back to /login?error=1"}


@router.post(
    "/auth/login",
    status_code=303,
    response_class=RedirectResponse,
    summary="Dashboard login (form fields username, password, next)",
    responses={303: REDIRECT, 429: {**ERROR, "description": "Too many failed logins from this address (Retry-After)"}},
    openapi_extra={
        "security": PUBLIC,
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": LOGIN_FORM}}},
    },
)
async def login(request: Request):
    client = request.client.host if request.client else "unknown"
    wait = limiter.blocked(client)
    if wait:
        return error(429, f"Too many failed logins; try again in {int(wait) + 1}s", {"Retry-After": str(int(wait) + 1)})
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    next_path = _safe_next(str(form.get("next") or "/"))
    settings = get_settings()
    if not check_password(settings, username, password):
        limiter.record_failure(client)
        return RedirectResponse(f"/login?error=1&next={quote(next_path)}", status_code=303)
    limiter.reset(client)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        issue_session(settings, username),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(
    "/auth/logout",
    status_code=303,
    response_class=RedirectResponse,
    summary="End the dashboard session",
    responses={303: {"description": "Redirect to /login with the session cookie cleared"}},
    openapi_extra={"security": PUBLIC},
)
async def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
