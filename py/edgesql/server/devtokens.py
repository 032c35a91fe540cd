"""``POST /dev/token``: tokens for any name, so the demo's users can be tried on one machine.

Only when serve.py listens on loopback, has access rules, and was given no JWT
settings (identity.DevIdentity). A real deployment signs users in with its
identity provider and gives serve.py (or the Worker) that provider's keys.
"""

from __future__ import annotations

import json
import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from .identity import DEV_TOKEN_S, DevIdentity

__all__ = ["dev_token_routes"]

#: A user name the dev sign-in takes: what a `sub` usually looks like.
_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")


def dev_token_routes(dev: DevIdentity) -> list[BaseRoute]:
    async def token(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
            user = body.get("user") if isinstance(body, dict) else None
        except ValueError:
            user = None
        if not isinstance(user, str) or not _NAME.fullmatch(user):
            return JSONResponse(
                {"error": "bad_request", "message": 'send {"user": NAME}, 1-64 of [A-Za-z0-9_.@+-]'}, 400
            )
        return JSONResponse(
            {"token": dev.issue(user), "user": user, "expires_in": DEV_TOKEN_S, "development": True},
            headers={"cache-control": "no-store"},
        )

    return [Route("/dev/token", token, methods=["POST"])]
