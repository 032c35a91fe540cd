-- Version 2: people and real constraints.
--
-- * Projects have an owner and members (`members`): with access rules (access.sql), a
--   person's devices hold only the projects they own or are a member of.
-- * The references become FOREIGN KEYs, kept on every device and on the primary, which
--   applies every change in one order: a task needs its project, a comment its task, a tag
--   link its task and tag; deleting a project deletes its tasks, their comments and tag
--   links (ON DELETE CASCADE), wherever the delete was made and whatever other devices
--   wrote meanwhile.
-- * Tags belong to a project (its members share them), and a project has one tag per
--   name (UNIQUE, case-insensitive). A tag's key is derived from its project and its
--   lower-cased name (app/data.py add_tag): two devices that each create "urgent"
--   offline create the same row, and sync merges them instead of one being rejected.
-- * Comments and tag links carry their project, so that each row says which project's
--   people may see it (a bucket is an expression over the row's own columns).
--
-- SQLite adds a FOREIGN KEY to an existing table only by rebuilding the table: each is
-- renamed, made again with its constraints, refilled, and the old one dropped — parents
-- before children, so that no old table is dropped while a new one refers to it. Rows
-- that pointed at nothing (a task of a deleted project) are not carried over.

ALTER TABLE projects ADD COLUMN owner TEXT NOT NULL DEFAULT '';

CREATE TABLE members (
  id TEXT PRIMARY KEY,            -- project_id || ' ' || user_id: adding someone twice makes one row
  project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  added_by TEXT NOT NULL DEFAULT '',
  UNIQUE (project_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

ALTER TABLE tasks RENAME TO tasks_v1;
DROP INDEX tasks_by_project;
CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  title TEXT NOT NULL DEFAULT '',
  notes TEXT NOT NULL DEFAULT '',
  done INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
  priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 3),
  due TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO tasks (id, project_id, title, notes, done, priority, due, created_at, updated_at)
  SELECT id, project_id, title, notes, done, priority, due, created_at, updated_at FROM tasks_v1
  WHERE project_id IN (SELECT id FROM projects);
DROP TABLE tasks_v1;
CREATE INDEX tasks_by_project ON tasks (project_id, done);

ALTER TABLE tags RENAME TO tags_v1;
CREATE TABLE tags (
  id TEXT PRIMARY KEY,            -- 'tag ' || project_id || ' ' || lower(name): see the top
  project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name TEXT NOT NULL COLLATE NOCASE,
  color TEXT NOT NULL DEFAULT '#8250df',
  UNIQUE (project_id, name)
);
INSERT OR IGNORE INTO tags (id, project_id, name, color)
  SELECT 'tag ' || t.project_id || ' ' || lower(g.name), t.project_id, g.name, g.color
  FROM task_tags tt JOIN tags_v1 g ON g.id = tt.tag_id JOIN tasks t ON t.id = tt.task_id
  ORDER BY g.id;

ALTER TABLE task_tags RENAME TO task_tags_v1;
DROP INDEX task_tags_by_tag;
CREATE TABLE task_tags (
  task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  tag_id TEXT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
  project_id TEXT NOT NULL,
  PRIMARY KEY (task_id, tag_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO task_tags (task_id, tag_id, project_id)
  SELECT tt.task_id, 'tag ' || t.project_id || ' ' || lower(g.name), t.project_id
  FROM task_tags_v1 tt JOIN tags_v1 g ON g.id = tt.tag_id JOIN tasks t ON t.id = tt.task_id;
DROP TABLE task_tags_v1;
DROP TABLE tags_v1;
CREATE INDEX task_tags_by_tag ON task_tags (tag_id);

ALTER TABLE comments RENAME TO comments_v1;
DROP INDEX comments_by_task;
CREATE TABLE comments (
  id TEXT PRIMARY KEY,
  task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  project_id TEXT NOT NULL,
  author TEXT NOT NULL DEFAULT '',
  body TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO comments (id, task_id, project_id, author, body, created_at)
  SELECT c.id, c.task_id, t.project_id, c.author, c.body, c.created_at
  FROM comments_v1 c JOIN tasks t ON t.id = c.task_id;
DROP TABLE comments_v1;
CREATE INDEX comments_by_task ON comments (task_id, created_at);
