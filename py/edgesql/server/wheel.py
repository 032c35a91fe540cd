"""Build the pure-Python wheel of ``edgesql`` that the browser installs.

Pyodide installs a wheel from a URL with ``pyodide.loadPackage(url)`` (or
unpacks it, ``pyodide-start.mjs``), no micropip and no network. The wheel is
built in memory from the edgesql package itself when the server starts (the
checkout's ``py/edgesql``, or the installed one), so the browser always runs
the code the server runs. Timestamps are fixed, so the same source gives the
same bytes and the same hash.

It holds only what a browser replica imports (:func:`browser_modules`): the
modules of the package's top level and everything they import, found by
reading their ``import`` statements (those inside functions too). So the
server (``server/``, CPython-only libraries) and the primary's half of
``sync/`` (the D1 generator, the server's SQL, the request checks) stay out,
and a module the client starts to import comes in by itself.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Wheel", "browser_modules", "build_browser_wheel"]

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


def _module_path(package_dir: Path, name: str) -> Path | None:
    """The file of module ``name`` (``edgesql.sync.status``), if it is one of the package's."""
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    base = package_dir.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imports(package_dir: Path, path: Path) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it (absolute and relative)."""
    here = list(path.relative_to(package_dir.parent).parts[:-1])  # the package it is in
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import _x`
    return {n for n in names if _module_path(package_dir, n) is not None}


def browser_modules(package_dir: Path) -> list[Path]:
    """The files of ``package_dir`` a browser replica needs: its top-level modules (not
    ``__main__``, the command line) and every module of the package they import, with the
    ``__init__.py`` of each package on the way."""
    todo = [p for p in package_dir.glob("*.py") if p.name != "__main__.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(package_dir, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the module and the packages it is in
                found = _module_path(package_dir, ".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(seen)


def build_browser_wheel(package_dir: Path, version: str) -> Wheel:
    """Zip the browser's part of ``package_dir`` (the ``edgesql`` folder) into a py3-none-any wheel."""
    files: list[tuple[str, bytes]] = []
    for path in [*browser_modules(package_dir), *package_dir.glob("py.typed")]:
        files.append((path.relative_to(package_dir.parent).as_posix(), path.read_bytes()))
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
