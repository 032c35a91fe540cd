"""Sample data for a first look: a few projects with tasks, tags and comments.

The empty app offers "Add sample data"; it writes everything in one batch
(one transaction, one round trip), synced like any other write. Dates are
relative to today, so the sample never looks stale::

    await add_sample_data(db)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import edgesql

from .data import PROJECT_COLORS, TAG_COLORS, new_id

__all__ = ["SAMPLE", "add_sample_data"]

# (project, [(title, notes, priority, due in days or None, done, [tags], [(author, comment)])])
SAMPLE: list[tuple[str, list[tuple[str, str, int, int | None, bool, list[str], list[tuple[str, str]]]]]] = [
    (
        "Website relaunch",
        [
            (
                "Write the launch announcement",
                "Short, friendly, one screenshot. Mention offline mode.",
                3,
                2,
                False,
                ["writing", "launch"],
                [("Ada", "First draft is in the shared folder."), ("Grace", "Looks great — trim the intro?")],
            ),
            ("Fix the pricing table on mobile", "Columns overflow at 390 px.", 2, 1, False, ["bug"], []),
            ("Record a 60-second demo video", "", 1, 5, False, ["launch"], [("Ada", "Script approved.")]),
            ("Set up the custom domain", "", 0, None, True, ["ops"], []),
            ("Choose the hero illustration", "", 0, None, True, ["design"], []),
        ],
    ),
    (
        "Home",
        [
            ("Book the boiler service", "Before the first cold week.", 2, 3, False, ["errand"], []),
            ("Plant the tulip bulbs", "", 0, None, False, ["garden"], []),
            ("Renew the car insurance", "", 3, -1, False, ["errand"], [("Grace", "Quote came in lower.")]),
        ],
    ),
    (
        "Reading list",
        [
            (
                "Designing Data-Intensive Applications",
                "Chapter 5: replication.",
                0,
                None,
                False,
                ["books"],
                [],
            ),
            ("Local-first software (Ink & Switch)", "", 0, None, True, ["papers"], []),
        ],
    ),
]


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


async def add_sample_data(db: edgesql.Connection, owner: str = "") -> int:
    """Write the sample projects, owned by ``owner`` (the signed-in user; '' without users);
    returns how many tasks were added."""
    now = datetime.now(UTC)
    stmts: list[tuple[str, tuple[Any, ...]]] = []
    n_tasks = 0
    for p, (project, tasks) in enumerate(SAMPLE):
        pid = new_id()
        created = _stamp(now - timedelta(minutes=60 - p))
        stmts.append(
            (
                "INSERT INTO projects (id, name, color, created_at, owner) VALUES (?, ?, ?, ?, ?)",
                (pid, project, PROJECT_COLORS[p % len(PROJECT_COLORS)], created, owner),
            )
        )
        tags: dict[str, int] = {}
        for i, (title, notes, priority, due_days, done, task_tags, comments) in enumerate(tasks):
            tid = new_id()
            n_tasks += 1
            due = (now + timedelta(days=due_days)).strftime("%Y-%m-%d") if due_days is not None else None
            stamp = _stamp(now - timedelta(minutes=50 - i))
            stmts.append(
                (
                    "INSERT INTO tasks (id, project_id, title, notes, priority, due, done, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (tid, pid, title, notes, priority, due, int(done), stamp, stamp),
                )
            )
            for tag in task_tags:
                # The tag's key from its project and name, as data.add_tag makes it.
                if tag not in tags:
                    tags[tag] = len(tags)
                    color = TAG_COLORS[tags[tag] % len(TAG_COLORS)]
                    stmts.append(
                        (
                            "INSERT INTO tags (id, project_id, name, color) "
                            "VALUES ('tag ' || ?1 || ' ' || lower(?2), ?1, ?2, ?3)",
                            (pid, tag, color),
                        )
                    )
                stmts.append(
                    (
                        "INSERT INTO task_tags (task_id, tag_id, project_id) "
                        "VALUES (?1, 'tag ' || ?2 || ' ' || lower(?3), ?2)",
                        (tid, pid, tag),
                    )
                )
            for c, (author, body) in enumerate(comments):
                stmts.append(
                    (
                        "INSERT INTO comments (id, task_id, project_id, author, body, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (new_id(), tid, pid, author, body, _stamp(now - timedelta(minutes=30 - 10 * c))),
                    )
                )
    await db.batch(stmts)
    return n_tasks
