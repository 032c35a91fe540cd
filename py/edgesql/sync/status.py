"""What ``db.sync()`` and ``db.sync_status()`` return, and sync's own error."""

from __future__ import annotations

from dataclasses import dataclass

from .._exceptions import OperationalError

__all__ = ["SYNC_STATES", "SyncError", "SyncProgress", "SyncResult", "SyncStatus", "sync_state"]

#: What :attr:`SyncStatus.state` can be, the first that applies in this order (docs/sync.md).
SYNC_STATES = ("offline", "unreachable", "error", "syncing", "pending", "synced")


class SyncError(OperationalError):
    """A sync round failed: the primary is unreachable, refused the request, or answered
    nonsense. Nothing local is lost; the outbox keeps every change for the next try.

    ``code`` is the primary's error code (``unauthorized``, ``rate_limited``,
    ``offline``...), ``retry_after`` the seconds it asked to wait, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "sync_failed",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class SyncResult:
    """What one ``await db.sync()`` moved: changes pushed and pulled."""

    pushed: int
    pulled: int


@dataclass(frozen=True)
class SyncProgress:
    """A long pull under way: changes applied so far, and the total when the primary said."""

    applied: int
    total: int | None


@dataclass(frozen=True)
class SyncStatus:
    """Where sync stands.

    ``pending`` counts local changes the primary has not acknowledged;
    ``last_synced_at`` is an ISO time or ``None``; ``last_error`` the last
    failure's message (``None`` once a round succeeds); ``online`` whether
    the last attempt reached the primary; ``progress`` is set during a long pull;
    ``rejected`` counts writes the primary refused (see ``_edgesql_rejected``);
    ``retry_in`` is the seconds until the next attempt after a failure.

    ``state`` sums it up for an indicator, one of :data:`SYNC_STATES`:

    * ``"offline"``: the device has no network (``navigator.onLine`` is false; CPython never says so);
    * ``"unreachable"``: the device is online but the primary did not answer, or answered
      5xx or 429 (it is down, restarting or busy): sync retries by itself;
    * ``"error"``: the last round failed in a way that needs action (the primary refused the
      request, or a pulled change cannot be applied here): ``last_error`` says what, and
      ``error_code`` is its code;
    * ``"syncing"``: a round is under way; ``"pending"``: local changes wait to be sent;
    * ``"synced"``: the last round succeeded and nothing waits.

    ``device_online`` is the device's own network state, apart from the primary's.

    ``transport`` says how this replica learns of other devices' changes: ``"stream"``
    while it holds the primary's change stream (``GET /sync/stream``: a change reaches
    it within a round trip), ``"poll"`` otherwise (every ``sync_interval`` seconds).
    ``live`` is ``transport == "stream"``.
    """

    pending: int
    last_synced_at: str | None
    last_error: str | None
    online: bool
    progress: SyncProgress | None
    replica: str
    schema_version: int
    rejected: int
    retry_in: float | None = None
    state: str = "synced"
    device_online: bool = True
    error_code: str | None = None
    transport: str = "poll"

    @property
    def live(self) -> bool:
        """Does the primary's change stream tell this replica of changes as they happen?"""
        return self.transport == "stream"


def sync_state(
    *,
    device_online: bool,
    error: BaseException | str | None,
    running: bool,
    pending: int,
) -> str:
    """:attr:`SyncStatus.state` from its parts (the browser's worker/sync.js decides the same way).

    ``error`` is the last round's failure, None after a success.
    """
    if not device_online:
        return "offline"
    if error is not None:
        transient = not isinstance(error, BaseException) or (
            isinstance(error, SyncError)
            and (
                error.code == "offline"
                or (error.status is not None and (error.status >= 500 or error.status == 429))
            )
        )
        return "unreachable" if transient else "error"
    if running:
        return "syncing"
    return "pending" if pending else "synced"
