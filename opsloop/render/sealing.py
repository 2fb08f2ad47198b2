"""Sealing secrets that must travel through the task queue (Render env values).

A task's payload is stored in PostgreSQL and returned by `GET /task/{id}`; env values such as API
keys must not be. They are encrypted (Fernet: AES-CBC + HMAC) with a key derived from
INTERNAL_KEY, which every instance shares, so whichever instance claims the task can open it and
nobody reading the row or the API can. Rotating INTERNAL_KEY makes sealed, unfinished tasks fail
with a clear message (resubmit them).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from opsloop.backend import jsonutil
from opsloop.backend.config import get_settings


class SealError(ValueError):
    pass


def _fernet() -> Fernet:
    secret = (get_settings().INTERNAL_KEY or "").encode()
    if not secret:
        raise SealError("INTERNAL_KEY is not set: cannot seal or open secrets")
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"opsloop-seal-v1:" + secret).digest()))


def seal(value: Any) -> str:
    return _fernet().encrypt(jsonutil.dumps(value)).decode()


def unseal(token: str) -> Any:
    try:
        return jsonutil.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError, TypeError):
        raise SealError("sealed values cannot be opened (INTERNAL_KEY changed since the task was queued?): resubmit the change") from None
