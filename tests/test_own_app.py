"""README's "Use edgesql in your own app", done by the letter, outside this checkout.

The wheel ``make dist`` builds is installed into a fresh virtual
environment (its dependencies borrowed from this one's site-packages: a
test may not reach PyPI), so neither this checkout's ``py/`` nor its
``node_modules/`` is importable or served. The app's files are the README's
own code blocks, written into a temporary folder; ``edgesql serve`` serves
them on a free loopback port; Chromium opens the page, a note typed into it
is written by the page's Python, and it arrives on the primary and in a
CPython replica (the README's ``replica.py``, run by the installed edgesql).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from edgesql.server.assets import PARTS, matches
from edgesql.server.pwa import PRECACHE_GLOBS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "## Use edgesql in your own app"
NOTE = "Milk, eggs & <bread>"


def readme_files() -> dict[str, str]:
    """The section's code blocks that are named by a line of their own: `path`: then the block."""
    text = README.read_text()
    start = text.index(SECTION)
    section = text[start : text.find("\n## ", start + len(SECTION))]
    files = dict(re.findall(r"^`([\w./-]+)`:\n\n```\w*\n(.*?)^```", section, re.M | re.S))
    assert {"myapp/index.html", "myapp/main.py", "myapp/schema/0001_init.sql", "replica.py"} <= set(files)
    return files


@pytest.fixture(scope="module")
def wheel() -> Path:
    """``make dist``'s wheel: built now if a source changed since (make test built it already)."""
    out = subprocess.run(["make", "-s", "dist"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (found,) = (ROOT / "dist").glob("edgesql-*-py3-none-any.whl")
    return found


def test_the_wheel_carries_the_runtime_and_no_checkout(wheel: Path) -> None:
    """Everything the server serves is in the wheel, from PARTS' globs; what the service worker
    precaches from the vendor folders is among them; the demo, the console and node_modules are not."""
    names = zipfile.ZipFile(wheel).namelist()
    runtime = [
        n.removeprefix("edgesql/server/runtime/") for n in names if n.startswith("edgesql/server/runtime/")
    ]
    for must in (
        "web/bridge.js",
        "web/pyodide-start.mjs",
        "web/sw.js",
        "worker/db-worker.js",
        "vendor/pyodide/pyodide.asm.wasm",
        "vendor/sqlite-wasm/sqlite3.wasm",
        "vendor/pyscript/core.js",
    ):
        assert must in runtime, must
    assert not [n for n in runtime if n.startswith("web/app/") or "console" in n or n.endswith(".map")]
    assert not [n for n in names if "node_modules" in n or n.startswith(("web/", "worker/"))]
    vendor = [g for g in PRECACHE_GLOBS if g.startswith("/vendor/")]
    for glob in vendor:
        part = next(p for p in PARTS if p.url and glob.startswith(p.url + "/"))
        assert matches(PurePosixPath(glob.removeprefix(part.url + "/")), part.files), glob


@dataclass
class Served:
    """A running ``edgesql serve``."""

    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)


def installed(tmp: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel installed (and its console script); returns its bin/."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    # edgesql[server]'s libraries, from this venv: a line of a .pth file only adds the folder, so
    # this venv's editable install of the checkout (a .pth of its own there) is not seen.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "edgesql_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture
def served(tmp_path: Path, wheel: Path) -> Iterator[tuple[Served, Path]]:
    """The README's app in tmp_path/myapp, served by the installed ``edgesql serve`` on a free port."""
    bin_dir = installed(tmp_path, wheel)
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import edgesql.server.app as a; print(a.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), f"edgesql came from {where}, not the wheel"
    for name, text in readme_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    proc = subprocess.Popen(
        [str(bin_dir / "edgesql"), "serve", "myapp", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=clean_env(),
    )
    server = Served("", proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while not server.url and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"edgesql serve exited with {proc.returncode}:\n{''.join(server.log)}")
        server.log.append(line)
        if line.startswith("edgesql serving "):
            server.url = line.split()[2].rstrip("/")
    pump = threading.Thread(target=lambda: server.log.extend(proc.stdout or ()), daemon=True)
    pump.start()
    try:
        assert server.url, f"edgesql serve did not start:\n{''.join(server.log)}"
        yield server, bin_dir
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        pump.join(5)
        proc.stdout.close()


def primary_notes(data: Path) -> list[str]:
    if not (data / "primary.db").exists():
        return []
    with sqlite3.connect(f"file:{data / 'primary.db'}?mode=ro", uri=True) as db:
        try:
            return [r[0] for r in db.execute("SELECT body FROM notes")]
        except sqlite3.OperationalError:  # not created yet
            return []


@pytest.mark.browser
def test_own_app_from_an_empty_folder(served: tuple[Served, Path], tmp_path: Path, context: Any) -> None:
    """The README's page starts Python with edgesql from the installed wheel alone, and a note
    added in it shows on the page, reaches the primary, and syncs down to a CPython replica."""
    server, bin_dir = served
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(server.url + "/")
    page.wait_for_selector("#new button:not([disabled])", timeout=90_000)

    page.fill("#text", NOTE)
    page.click("#new button")
    page.wait_for_function(
        "(note) => [...document.querySelectorAll('#notes li')].some((li) => li.textContent === note)",
        arg=NOTE,
        timeout=10_000,
    )
    assert page.input_value("#text") == ""

    deadline = time.monotonic() + 30
    while NOTE not in primary_notes(tmp_path / "data") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert primary_notes(tmp_path / "data") == [NOTE], "".join(server.log)

    replica = (
        (tmp_path / "replica.py").read_text().replace("127.0.0.1:8000", server.url.removeprefix("http://"))
    )
    (tmp_path / "replica.py").write_text(replica)
    out = subprocess.run(
        [str(bin_dir / "python"), "replica.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [NOTE]
    assert not problems, problems
    assert "not served" not in "".join(server.log)
