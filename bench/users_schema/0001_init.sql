-- bench/sync_users.py's schema: projects, their members and their tasks (the demo's shape).
CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL);
CREATE TABLE members (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, user_id TEXT NOT NULL);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    title TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
