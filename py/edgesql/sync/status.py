"""What ``db.sync()`` and ``db.sync_status()`` return, and sync's own error."""

from __future__ import annotations

from dataclasses import dataclass

from .._exceptions import OperationalError

__all__ = ["SyncError", "SyncProgress", "SyncResult", "SyncStatus"]


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
