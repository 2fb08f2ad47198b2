"""How a failed Render operation reaches the caller: an HTTP status and Render's own message."""

from __future__ import annotations

from typing import Any

from opsloop.backend.errors import DomainError


class RenderFailure(DomainError):
    """A Render operation failed: ``status`` for the HTTP answer, ``extra`` fields beside ``error``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


def http_status(render_status: int) -> int:
    """The status opsloop answers for a Render answer: the caller's mistakes stay 4xx, the rest 502.

    Render's 401/403 mean *opsloop's* token is refused: a gateway problem for our caller, not
    theirs (a 401 here would read as "your opsloop credentials are wrong").
    """
    if render_status in (400, 404, 409, 422, 429):
        return render_status
    return 502
