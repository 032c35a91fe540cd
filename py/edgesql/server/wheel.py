"""Build the pure-Python wheel of ``edgesql`` that the browser installs.

Pyodide installs a wheel from a URL with ``pyodide.loadPackage(url)``, no
micropip and no network. The wheel is built in memory from ``py/edgesql``
(minus ``server/``, which needs CPython-only libraries) when the server
starts, so the browser always runs the code in the checkout. Timestamps are
fixed, so the same source gives the same bytes and the same hash.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Wheel", "build_browser_wheel"]

_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Wheel:
    """A built wheel: its file name, bytes and sha256 (hex)."""

    filename: str
    data: bytes
    sha256: str


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_browser_wheel(package_dir: Path, version: str) -> Wheel:
    """Zip ``package_dir`` (the ``edgesql`` folder) into a py3-none-any wheel."""
    files: list[tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        rel = path.relative_to(package_dir.parent).as_posix()
        if not path.is_file() or "__pycache__" in rel or rel.startswith("edgesql/server/"):
            continue
        if path.suffix not in (".py", ".typed"):
            continue
        files.append((rel, path.read_bytes()))
    dist = f"edgesql-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: edgesql\nVersion: {version}\n".encode()
    wheel_meta = (
        b"Wheel-Version: 1.0\nGenerator: edgesql.server.wheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files.append((f"{dist}/METADATA", metadata))
    files.append((f"{dist}/WHEEL", wheel_meta))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    record += f"{dist}/RECORD,,\n"
    files.append((f"{dist}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    data = buf.getvalue()
    return Wheel(f"edgesql-{version}-py3-none-any.whl", data, hashlib.sha256(data).hexdigest())
