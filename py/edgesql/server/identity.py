"""Who is calling /sync: the app's static tokens, or a signed JWT that names a user.

A primary whose schema has access rules (``access.sql``) serves each user their
own rows, and needs to know who the user is: the ``sub`` of a JWT the app's
sign-in gave the device. Tokens are checked with PyJWT:

* HS256 with a shared secret (``--jwt-secret``, or ``EDGESQL_JWT_SECRET``);
* EdDSA, ES256 or RS256 with a public key (``--jwt-key FILE``, PEM) or the keys
  of a JWKS document (``--jwks FILE_OR_URL``: an identity provider's, e.g.
  ``https://<tenant>/.well-known/jwks.json``, fetched by the server, cached, and
  fetched again for a key id it has not seen);
* with ``exp`` required, ``aud`` and ``iss`` checked when configured (60 s of leeway).

An expired token gets 401 ``token_expired``, any other bad one 401 ``bad_token``:
a replica with a token provider (``connect(..., auth=...)``) asks it again on
both. Without JWT settings the static tokens of ``--auth-token`` stay as they
were: one user, every device of it alike. On loopback, with access rules and no
JWT settings, :class:`DevIdentity` issues short-lived HS256 tokens for any name
(``POST /dev/token``): for trying the app, never for production.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..sync.protocol import ProtocolError
from .tokens import TokenSet, bearer_token

__all__ = ["JWT_LEEWAY_S", "Caller", "DevIdentity", "Identity", "JwtIdentity", "StaticIdentity"]

#: Clocks of the token's issuer and of this server may differ by this much.
JWT_LEEWAY_S = 60
#: Algorithms accepted: never "none", never one the key was not made for.
_PUBLIC_ALGORITHMS = ["EdDSA", "ES256", "RS256"]
#: How long a dev token lives (the app asks for a new one when it expires).
DEV_TOKEN_S = 15 * 60


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: ``id`` for rate limits and logs, ``user`` for access rules
    (None: a static token or no token, one shared database)."""

    id: str
    user: str | None


class Identity(Protocol):
    """Turns an Authorization header into a :class:`Caller`, or raises ProtocolError 401."""

    def caller(self, authorization: str | None) -> Caller: ...


def _unauthorized(message: str = "") -> ProtocolError:
    return ProtocolError(
        401,
        "unauthorized",
        message or "send the app's token as 'Authorization: Bearer <token>' (connect(auth_token=...))",
    )


class StaticIdentity:
    """The app's static tokens (``--auth-token``); none: anyone may sync."""

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self.tokens = TokenSet(tokens)

    def caller(self, authorization: str | None) -> Caller:
        who = self.tokens.caller(authorization)
        if who is None:
            raise _unauthorized()
        return Caller(who, None)


class JwtIdentity:
    """Signed JWTs; the user is their ``sub``. See the module docstring for the keys."""

    def __init__(
        self,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        import jwt  # PyJWT, from edgesql[server]

        self._jwt = jwt
        if not (secret or public_key or jwks):
            raise ValueError("a JWT check needs a secret, a public key or a JWKS")
        self.secret = secret
        self.public_key = public_key
        self.jwks = jwks
        self.audience = audience
        self.issuer = issuer
        self._jwks_keys: dict[str, Any] = {}
        self._jwks_lock = threading.Lock()
        self._jwks_at = 0.0

    @classmethod
    def from_options(
        cls,
        secret: str | None,
        key_file: Path | None,
        jwks: str | None,
        audience: str | None,
        issuer: str | None,
    ) -> JwtIdentity | None:
        """The check serve.py's options ask for, or None (no JWT settings)."""
        if not (secret or key_file or jwks):
            return None
        public = key_file.read_text() if key_file is not None else None
        return cls(secret, public, jwks, audience, issuer)

    def worker_env(self) -> dict[str, str]:
        """The same check as the Worker's settings (cloudflare/src/jwt.js), for d1-local and
        the Turso fronts: a JWKS file goes inline, a JWKS URL as it is."""
        env = {}
        if self.secret is not None:
            env["EDGESQL_JWT_SECRET"] = self.secret
        elif self.public_key is not None:
            env["EDGESQL_JWT_KEY"] = self.public_key
        elif self.jwks is not None:
            is_url = self.jwks.startswith(("https://", "http://"))
            env["EDGESQL_JWKS"] = self.jwks if is_url else Path(self.jwks).read_text()
        if self.audience is not None:
            env["EDGESQL_JWT_AUDIENCE"] = self.audience
        if self.issuer is not None:
            env["EDGESQL_JWT_ISSUER"] = self.issuer
        return env

    def caller(self, authorization: str | None) -> Caller:
        token = bearer_token(authorization)
        if token is None:
            raise _unauthorized("send the user's token as 'Authorization: Bearer <JWT>' (connect(auth=...))")
        claims = self.verify(token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise ProtocolError(401, "bad_token", "the token names no user (`sub`): issue it with one")
        return Caller(f"user:{sub}", sub)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, checked; ProtocolError 401 ``token_expired`` or ``bad_token``."""
        jwt = self._jwt
        options = {"require": ["exp", "sub"], "verify_aud": self.audience is not None}
        try:
            key, algorithms = self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=JWT_LEEWAY_S,
                options=options,
            )
            return claims
        except jwt.ExpiredSignatureError:
            raise ProtocolError(
                401,
                "token_expired",
                "the token expired: get a new one (connect(auth=...) asks for it itself)",
            ) from None
        except (jwt.InvalidTokenError, ValueError, KeyError) as e:
            raise ProtocolError(401, "bad_token", f"the token was refused ({e}): sign in again") from None

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        if self.secret is not None:
            return self.secret, ["HS256"]
        if self.public_key is not None:
            return self.public_key, _PUBLIC_ALGORITHMS
        kid = self._jwt.get_unverified_header(token).get("kid")
        return self._jwks_key(kid), _PUBLIC_ALGORITHMS

    def _jwks_key(self, kid: str | None) -> Any:
        with self._jwks_lock:
            if kid not in self._jwks_keys and time.monotonic() - self._jwks_at > 30:
                self._load_jwks()
            if kid is None and len(self._jwks_keys) == 1:
                return next(iter(self._jwks_keys.values()))
            if kid not in self._jwks_keys:
                raise ValueError(f"no key {kid!r} in the JWKS")
            return self._jwks_keys[kid]

    def _load_jwks(self) -> None:
        assert self.jwks is not None
        if self.jwks.startswith(("https://", "http://")):
            with urllib.request.urlopen(self.jwks, timeout=10) as r:  # the identity provider's keys
                doc = json.loads(r.read())
        else:
            doc = json.loads(Path(self.jwks).read_text())
        keys = {}
        for jwk in doc.get("keys", []):
            keys[jwk.get("kid")] = self._jwt.PyJWK(jwk).key
        self._jwks_keys = keys
        self._jwks_at = time.monotonic()


class DevIdentity(JwtIdentity):
    """Tokens for any name, signed with a secret made at start: development on loopback only."""

    def __init__(self) -> None:
        super().__init__(secret=secrets.token_urlsafe(32))

    def issue(self, user: str) -> str:
        """A token for ``user``, valid :data:`DEV_TOKEN_S` seconds."""
        now = int(time.time())
        token: str = self._jwt.encode(
            {"sub": user, "iat": now, "exp": now + DEV_TOKEN_S}, self.secret, "HS256"
        )
        return token
