"""The app's sign-in, as a replica sees it: who a token names, and asking for a new one.

A replica of a primary with users (access rules) sends the user's JWT. The
app gives ``connect(..., auth=provider)``: a function or coroutine function
returning the current token, asked at start and again when the primary refuses
one (401: the codes in :data:`TOKEN_REFUSED`, from rules.py's reactions). Both
replica loops — CPython (replica.py) and the page of a browser replica
(_browser.py) — use these, so they cannot disagree about either.
"""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Awaitable, Callable

from .rules import RULES
from .status import SyncError

__all__ = ["TOKEN_REFUSED", "TokenProvider", "ask_token", "token_user"]

#: What ``connect(auth=...)`` takes.
TokenProvider = Callable[[], str | Awaitable[str]]

#: The error codes after which the provider is asked again.
TOKEN_REFUSED = frozenset(r["error"] for r in RULES["reactions"] if r["do"] == "reauth")


async def ask_token(provider: TokenProvider) -> str:
    """The provider's token (it may be a coroutine function); SyncError when it gives none."""
    token = provider()
    if inspect.isawaitable(token):
        token = await token
    if not isinstance(token, str) or not token:
        raise SyncError(
            f"the token provider (connect(auth=...)) gave {token!r}, not a token: return the signed-in "
            "user's JWT as a string",
            code="unauthorized",
        )
    return token


def token_user(token: str | None) -> str | None:
    """The user a JWT names (its ``sub``), read without checking it (the primary checks);
    None for a token that is not a JWT (a static app token)."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None
