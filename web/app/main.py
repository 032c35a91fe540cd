"""Start the demo app: install edgesql, open the database, put the app on screen.

``index.html`` runs this file with PyScript on the project's own Pyodide
(``pyscript.json``: ``"interpreter": "/vendor/pyodide/pyodide.mjs"``), and
PyScript copies the ``app`` package next to it (``"files"``). PyScript's
``packages`` would go through micropip to PyPI, so edgesql comes from this
server instead: ``/wheels/edgesql.json`` names the wheel ``serve.py`` built
from ``py/edgesql``, and ``pyodide.loadPackage(url)`` installs it — no
network beyond this origin, and the service worker serves both offline.

The database is the console's ``app.db``, synced with ``/sync``. A device
that never synced needs the server once (for the app's tables): without it
the page says so and how to fix it, and retries when the browser comes back
online. After the first sync the app starts offline like any other time.

Who is using the app: when the server has access rules (each person sees
their own projects: ``schema/access.sql``), the page asks for a name, and
``connect(auth=...)`` gets a token provider for it (``app/signin.py``: here
the development sign-in of ``serve.py`` on loopback; a real app plugs in its
identity provider). Without access rules, everyone shares one database; when
such a server needs the app's token (``serve.py --auth-token``), the page asks
for it, keeps it in this browser (``app.syncbar.saved_token``) and gives it to
``connect(auth_token=...)``.

Once the app is on screen: ``<html data-ready="true">``; ``window.pyodide``
runs Python in this namespace, where ``db`` is the open database and ``app``
the running :class:`app.ui.App` (tests and devtools use them).
"""

import asyncio

import js  # type: ignore[import-not-found]
import pyodide_js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]
from pyscript import document, window  # type: ignore[import-not-found]

DB_NAME = "app.db"
SYNC_URL = "/sync"
SYNC_INTERVAL_S = 15  # pull others' changes this often; writes and coming back online sync at once
# A call waits at most this long for the database; beyond, it gives up without running (another
# tab's long query holds the worker), and the views say they are waiting and ask again (app/live.py).
STATEMENT_TIMEOUT_S = 2.0
AUTHOR_KEY = "edgesql-demo:author"

window.pyodide = pyodide_js  # the page's hook (see the docstring)
js.performance.mark("app:python")  # startup marks, for benchmarks: python, edgesql, db, ready
db = None
app = None
_starting = False


def _loading(text: str) -> None:
    document.getElementById("loading-text").textContent = text


def _fatal(title: str, text: str, help_text: str = "", detail: str = "", code: str = "error") -> None:
    document.getElementById("token-form").hidden = code != "unauthorized"
    document.getElementById("signin-form").hidden = code != "sign_in"
    # Signing in is not a failure: no broken-cloud icon, and the form is the way on.
    document.querySelector("#fatal .fatal-icon").style.display = "none" if code == "sign_in" else ""
    document.getElementById("retry").hidden = code == "sign_in"
    document.getElementById("loading").hidden = True
    document.getElementById("app").hidden = True
    document.getElementById("fatal").hidden = False
    document.getElementById("fatal-title").textContent = title
    document.getElementById("fatal-text").textContent = text
    document.getElementById("fatal-help").textContent = help_text
    box = document.getElementById("fatal-detail")
    box.textContent = detail
    box.hidden = not detail
    document.getElementById("retry").disabled = False
    document.documentElement.dataset.error = code
    document.documentElement.dataset.ready = "error"


async def _install_edgesql() -> None:
    resp = await js.fetch("/wheels/edgesql.json")
    if not resp.ok:
        raise RuntimeError(f"cannot find the edgesql wheel: GET /wheels/edgesql.json answered {resp.status}")
    info = await resp.json()
    url = js.URL.new(info.url, js.location.href).href
    loaded = await pyodide_js.loadPackage(url)  # it does not raise on failure: it returns []
    if not loaded or loaded.length == 0:
        raise RuntimeError(f"installing {url} into Pyodide failed (see the browser console)")


async def _connect():  # -> edgesql.Connection | None
    import edgesql
    from app.signin import dev_sign_in_offered, dev_token_provider, forget_user, signed_in_user
    from app.syncbar import saved_token

    user = signed_in_user()
    token = None if user else saved_token()
    try:
        return await edgesql.connect(
            DB_NAME,
            sync_url=SYNC_URL,
            sync_interval=SYNC_INTERVAL_S,
            statement_timeout=STATEMENT_TIMEOUT_S,
            **({"auth": dev_token_provider(user)} if user else {"auth_token": token}),
        )
    except edgesql.SyncError as e:
        if e.code in ("unauthorized", "sign_in", "bad_token") and await dev_sign_in_offered():
            forget_user()
            _fatal(
                "Who's using this app?",
                "Each person sees the projects they created and the ones others share with them. "
                "Sign in with a name to open yours on this device.",
                "Development sign-in: this server (serve.py on your machine) lets anyone in under any "
                "name, without a password. A real deployment signs people in with its identity provider.",
                str(e) if user else "",
                code="sign_in",
            )
            document.getElementById("signin-input").focus()
        elif e.code in ("unauthorized", "sign_in"):
            _fatal(
                "The sync server refused this token" if token else "This sync server needs a token",
                "Your tasks are kept on this device and synced with a server that lets in only apps "
                "that know its token.",
                "Ask whoever runs the server for the app's token (the one serve.py was started with, "
                "--auth-token) and enter it below.",
                str(e),
                code="unauthorized",
            )
            document.getElementById("token-input").value = ""
            document.getElementById("token-input").focus()
        elif e.code == "offline":
            _fatal(
                "You're offline, and this device has no copy yet",
                "Your tasks live on this device and the app works offline — but the very first "
                "time, it has to reach the sync server once to set up its tables. The server "
                "can't be reached right now.",
                "Check your connection, or start the server (make run in the edgesql folder), then "
                "try again. This page also tries again by itself when the browser is back online.",
                str(e),
                code="offline",
            )
        else:
            _fatal(
                "The sync server turned this device away",
                f"It answered: {e}",
                "If the server needs a token, the app must be given one; ask whoever runs it.",
                f"{type(e).__name__} ({e.code})",
                code=e.code,
            )
        return None


async def start() -> None:
    """Open the database and show the app (again after a failure: the Try again button)."""
    global db, app, _starting
    if _starting or app is not None:
        return
    _starting = True
    document.documentElement.removeAttribute("data-ready")  # this attempt's outcome comes next
    try:
        document.getElementById("fatal").hidden = True
        document.getElementById("loading").hidden = False
        try:
            import edgesql  # noqa: F401 - installed already on a retry
        except ImportError:
            _loading("Installing edgesql…")
            await _install_edgesql()
            js.performance.mark("app:edgesql")
        _loading("Opening your database…")
        db = await _connect()
        if db is None:
            return
        js.performance.mark("app:db")
        from app.data import setup_search
        from app.signin import signed_in_user
        from app.ui import App

        search = await setup_search(db)
        user = signed_in_user()
        author = user or js.localStorage.getItem(AUTHOR_KEY)
        if not author:
            author = "Device " + (await db.sync_status()).replica[:4].upper()
        app = App(db, search, author, user)
        await app.start()
        document.getElementById("loading").hidden = True
        document.getElementById("app").hidden = False
        document.documentElement.removeAttribute("data-error")
        document.documentElement.dataset.ready = "true"
        js.performance.mark("app:ready")
    except Exception as e:
        import traceback

        _fatal(
            "Something stopped the app from starting",
            "This is a bug or a browser without the features the app needs (Web Workers, WebAssembly).",
            "Reloading the page may help; the details below say what failed.",
            "".join(traceback.format_exception_only(e)).strip(),
        )
        js.console.error("".join(traceback.format_exception(e)))
    finally:
        _starting = False


_retrying: set[asyncio.Future[None]] = set()


def _retry(*_args: object) -> None:
    if app is None and not _starting:
        document.getElementById("retry").disabled = True
        task = asyncio.ensure_future(start())
        _retrying.add(task)  # asyncio keeps only a weak reference
        task.add_done_callback(_retrying.discard)


def _save_token(event: object) -> None:
    """The token form on the start screen: keep the token, then try to start again."""
    event.preventDefault()  # type: ignore[attr-defined]
    from app.syncbar import save_token

    save_token(str(document.getElementById("token-input").value))
    _retry()


def _sign_in(event: object) -> None:
    """The sign-in form on the start screen: keep the name, then start with it."""
    event.preventDefault()  # type: ignore[attr-defined]
    from app.signin import save_user

    name = str(document.getElementById("signin-input").value).strip()
    if name:
        save_user(name)
        _retry()


_retry_proxy = create_proxy(_retry)
_save_token_proxy = create_proxy(_save_token)
_sign_in_proxy = create_proxy(_sign_in)
document.getElementById("token-form").addEventListener("submit", _save_token_proxy)
document.getElementById("signin-form").addEventListener("submit", _sign_in_proxy)
document.getElementById("retry").addEventListener("click", _retry_proxy)
window.addEventListener("online", _retry_proxy)
await start()
