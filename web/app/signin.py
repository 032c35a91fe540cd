"""Who is using the app: the signed-in person, and the tokens that say so to the server.

With access rules on the server (``web/app/schema/access.sql``), each person's
devices hold only the projects they own or share, and every sync carries a
token naming them. A real deployment signs people in with its identity provider
and hands edgesql that provider's token: ``edgesql.connect(..., auth=provider)``
calls ``provider()`` at start and again whenever the server says the token
expired. This demo has no identity provider: ``serve.py`` on loopback offers
development sign-in (``POST /dev/token {"user": NAME}``, any name, no password),
and :func:`dev_token_provider` asks it — keeping the last token, so the app
starts offline too (a token is only checked when something is sent).

The name is kept in this browser (``localStorage``); signing in as someone else
on the same browser starts its database afresh for them (edgesql does that
itself: the previous person's rows leave the device, their unsent changes go to
Rejected changes).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import js  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

import edgesql

__all__ = ["dev_sign_in_offered", "dev_token_provider", "forget_user", "save_user", "signed_in_user"]

USER_KEY = "edgesql-demo:user"
TOKEN_KEY = "edgesql-demo:user-token"
DEV_TOKEN_URL = "/dev/token"


def signed_in_user() -> str | None:
    """The name signed in on this browser, or None."""
    user = js.localStorage.getItem(USER_KEY)
    return str(user) if user else None


def save_user(user: str) -> None:
    """Sign ``user`` in on this browser (their token is asked for when the app connects)."""
    js.localStorage.setItem(USER_KEY, user.strip())
    js.localStorage.removeItem(TOKEN_KEY)


def forget_user() -> None:
    """Sign out on this browser: the next start asks who is using it."""
    js.localStorage.removeItem(USER_KEY)
    js.localStorage.removeItem(TOKEN_KEY)


async def dev_sign_in_offered() -> bool:
    """Does this server offer development sign-in? (``POST /dev/token`` without a name is
    answered 400 bad_request where it does; elsewhere 404 or 405.)"""
    options = {"method": "POST", "headers": {"content-type": "application/json"}, "body": "{}"}
    try:
        resp = await js.fetch(DEV_TOKEN_URL, to_js(options, dict_converter=js.Object.fromEntries))
        if int(resp.status) != 400:
            return False
        body = (await resp.json()).to_py()
    except Exception:  # offline, or not JSON: cannot tell
        return False
    return isinstance(body, dict) and body.get("error") == "bad_request"


async def _request_dev_token(user: str) -> str:
    options = {
        "method": "POST",
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"user": user}),
        "cache": "no-store",
    }
    resp = await js.fetch(DEV_TOKEN_URL, to_js(options, dict_converter=js.Object.fromEntries))
    body = (await resp.json()).to_py()
    if not resp.ok:
        raise edgesql.SyncError(f"sign-in refused: {body.get('message', resp.status)}", code="unauthorized")
    return str(body["token"])


def dev_token_provider(user: str) -> Callable[[], Awaitable[str]]:
    """``connect(auth=...)`` for ``user`` with development sign-in: a fresh token from the
    server, or, when it cannot be reached, the last one (enough to start offline)."""

    async def provider() -> str:
        try:
            token = await _request_dev_token(user)
        except edgesql.SyncError:
            raise
        except Exception:  # unreachable: the kept token lets the app start offline
            kept = js.localStorage.getItem(TOKEN_KEY)
            if kept:
                return str(kept)
            raise edgesql.SyncError(
                "cannot sign in: the server cannot be reached, and this browser has no token yet",
                code="offline",
            ) from None
        js.localStorage.setItem(TOKEN_KEY, token)
        return token

    return provider
