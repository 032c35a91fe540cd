"""Bearer tokens for ``/sync``: read exactly as given, compared in constant time.

Where they come from: each ``--auth-token TOKEN`` is one token, spaces and
all; ``EDGESQL_AUTH_TOKEN`` (which keeps tokens out of the process list) is
one token, or, when its value starts with ``[``, a JSON array of tokens. The
Worker reads its ``EDGESQL_TOKEN`` by the same rule (``cloudflare/src/auth.js``),
and ``serve.py --primary d1-local`` hands it the tokens as a JSON array, so
no primary can split a passphrase into words (issue 12: ``--auth-token
"correct horse battery staple"`` let ``Bearer horse`` in on d1-local).

What a token may hold: printable ASCII, and no whitespace at either end.
Every HTTP parser strips the whitespace around a header's value, and
browsers refuse header values outside Latin-1 (and encode the rest
differently from one stack to the next), so any other token could not
arrive intact: serve.py refuses to start with one and says why, and the
Worker answers 500 ``not_configured``. Messages name a token by its place,
never by its value.

In a request, the token is everything after the one space that follows
``Bearer`` (the scheme's case does not matter): ``Bearer  t`` (two spaces)
carries `` t``, which matches no allowed token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence

__all__ = ["TOKEN_ENV", "TokenError", "TokenSet", "bearer_token", "check_token", "parse_token_list"]

#: Where serve.py's tokens can come from without showing in ``ps``.
TOKEN_ENV = "EDGESQL_AUTH_TOKEN"

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


class TokenError(ValueError):
    """A token no client could send, or a list of tokens that cannot be read."""


def check_token(token: str, where: str) -> str:
    """``token`` if a client can send it in ``Authorization: Bearer``; else :class:`TokenError`
    naming ``where`` it came from (the message never holds the token)."""
    if not token:
        raise TokenError(f"{where} is empty: give the token itself")
    if token != token.strip():
        raise TokenError(
            f"{where} has whitespace at its start or end, which HTTP strips from the header, so no client "
            "could send it: remove the whitespace"
        )
    if not _PRINTABLE_ASCII.fullmatch(token):
        raise TokenError(
            f"{where} holds characters other than printable ASCII (tabs, line breaks, accents, emoji), which "
            "browsers refuse or change in headers: use letters, digits and punctuation (spaces inside are fine)"
        )
    return token


def parse_token_list(value: str, name: str) -> list[str]:
    """The tokens in an environment variable ``name``: one token, or a JSON array when ``value``
    starts with ``[``."""
    if not value.startswith("["):
        return [check_token(value, name)]
    try:
        items = json.loads(value)
    except ValueError as e:
        reason = getattr(e, "msg", "not JSON")  # (never the document itself: it holds the tokens)
        raise TokenError(
            f"{name} starts with '[' but is not a JSON array of strings ({reason}): write "
            '["token one", "token two"], or one token that does not start with ['
        ) from None
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise TokenError(
            f"{name} starts with '[' but is not a JSON array of strings: write [\"token one\", ...]"
        )
    if not items:
        raise TokenError(f"{name} is an empty JSON array, which holds no token: give at least one")
    return [check_token(t, f"token {i + 1} of {name}") for i, t in enumerate(items)]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header: all after the one space."""
    scheme, space, given = (authorization or "").partition(" ")
    if not space or scheme.lower() != "bearer" or not given:
        return None
    return given


class TokenSet:
    """The tokens a primary accepts; none means anyone may sync."""

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        # Only digests are kept: equal lengths for compare_digest, and no token in memory dumps of this object.
        self._digests = [_digest(t.encode()) for t in tokens]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def caller(self, authorization: str | None) -> str | None:
        """Who is calling: ``"token<i>"`` for the i-th token, ``"anyone"`` when none is
        required, ``None`` when the Authorization header carries no token that matches."""
        if not self._digests:
            return "anyone"
        given = bearer_token(authorization)
        if given is None:
            return None
        # Digests of equal length, compared with compare_digest against every token
        # (no early exit), so timing tells nothing about the token or which one matched.
        mine = _digest(given.encode(errors="surrogateescape"))
        found = None
        for i, digest in enumerate(self._digests):
            if hmac.compare_digest(mine, digest):
                found = i
        return None if found is None else f"token{found}"


def _digest(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()
