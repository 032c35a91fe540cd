"""Helpers for the Turso primaries in tests: what ``serve.py --primary turso-local`` printed."""

from __future__ import annotations

import re

from tests.conftest import Server

__all__ = ["sqld_pid", "sqld_url", "worker_url"]


def _line(server: Server, prefix: str) -> str:
    for line in server.log:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"serve.py printed no {prefix!r} line:\n{''.join(server.log)}")


def sqld_pid(server: Server) -> int:
    """The pid of the sqld that serve.py --primary turso-local started."""
    return int(re.search(r"sqld \(pid (\d+)\)", _line(server, "edgesql turso-local:")).group(1))  # type: ignore[union-attr]


def sqld_url(server: Server) -> str:
    """The Hrana URL of that sqld."""
    return re.search(r"at (http://\S+),", _line(server, "edgesql turso-local:")).group(1)  # type: ignore[union-attr]


def worker_url(server: Server) -> str:
    """The URL of the Worker (on workerd, in front of Turso) that serve.py proxies /sync to."""
    return re.search(r"at (http://\S+?)/?,", _line(server, "edgesql turso:")).group(1)  # type: ignore[union-attr]


_JWT_JS = r"""
const crypto = require("node:crypto");
const { publicKey, privateKey } = crypto.generateKeyPairSync("ed25519");
const b64 = (b) => Buffer.from(b).toString("base64url");
const head = b64(JSON.stringify({ alg: "EdDSA", typ: "JWT" }));
const body = b64(JSON.stringify({ iat: Math.floor(Date.now() / 1000) }));
const sig = b64(crypto.sign(null, Buffer.from(`${head}.${body}`), privateKey));
console.log(JSON.stringify({ pem: publicKey.export({ type: "spki", format: "pem" }), jwt: `${head}.${body}.${sig}` }));
"""


def ed25519_token() -> tuple[str, str]:
    """A fresh Ed25519 public key (PEM, for ``sqld --auth-jwt-key-file``) and a read-write JWT it
    verifies, as Turso issues them. Signed by Node's crypto (Python has no Ed25519 without a package)."""
    import json
    import subprocess

    out = subprocess.run(["node", "-e", _JWT_JS], capture_output=True, text=True, check=True).stdout
    made = json.loads(out)
    return made["pem"], made["jwt"]
