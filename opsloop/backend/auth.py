"""Who is calling: Basic Auth for people and scripts, X-Internal-Key for services (dashboard
sessions are in `sessions.py`). Every comparison is constant-time; nothing here logs a credential.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

from opsloop.backend.config import Settings
from opsloop.shared.keys import key_matches

Kind = Literal["operator", "service"]


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str


def decode_basic(value: str) -> tuple[str, str] | None:
    """`user:pass` from a base64 string (the part after `Basic `, or `?auth=`)."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_password(settings: Settings, user: str, password: str) -> bool:
    """Both halves are always compared, so timing says nothing about which one was wrong."""
    user_ok = key_matches(user, settings.BASIC_AUTH_USER)
    pass_ok = key_matches(password, settings.BASIC_AUTH_PASS)
    return user_ok and pass_ok


def authenticate(
    settings: Settings,
    authorization: str | None,
    internal_key: str | None,
    query_auth: str | None = None,
) -> Principal | None:
    """The caller, from an Authorization header, an X-Internal-Key header, or `?auth=` (streams only)."""
    if internal_key is not None and key_matches(internal_key, settings.INTERNAL_KEY):
        return Principal("service", "internal")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            creds = decode_basic(value)
            if creds and check_password(settings, *creds):
                return Principal("operator", creds[0])
    if query_auth:
        creds = decode_basic(query_auth)
        if creds and check_password(settings, *creds):
            return Principal("operator", creds[0])
    return None


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
