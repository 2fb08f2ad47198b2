"""Dashboard login and logout: a plain HTML form posts here; we set an HttpOnly session cookie.

The cookie is HttpOnly and SameSite=Lax (no script can read it, no other site can send it with a
POST); the dashboard's state socket reads it from its own connection's headers.
"""

from __future__ import annotations

from urllib.parse import quote, urlparse

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse

from opsloop.backend.api.deps import error
from opsloop.backend.auth import SESSION_COOKIE, SESSION_MAX_AGE_S, LoginRateLimiter, check_password, issue_session
from opsloop.backend.config import get_settings

router = APIRouter(tags=["session"])
limiter = LoginRateLimiter()


def _safe_next(raw: str | None) -> str:
    """Only same-site paths: an open redirect would let a link log you in and send you elsewhere."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or urlparse(raw).netloc:
        return "/"
    return raw


@router.post("/auth/login", summary="Dashboard login (form fields username, password, next)")
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


@router.post("/auth/logout", summary="End the dashboard session")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
