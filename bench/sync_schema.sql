-- Schema of the sync benchmark (bench/sync_browser.py), given to serve.py --schema.
-- Synced tables need a TEXT primary key (an INTEGER PRIMARY KEY is refused);
-- tables named local_* stay on the device and are not captured.

-- What a fresh browser replica pulls (seeded by a CPython replica).
CREATE TABLE items (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', n INTEGER, done INTEGER);

-- Capture cost: the same columns, once synced (captured into the outbox), once local.
CREATE TABLE capture_synced (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', n INTEGER, done INTEGER);
CREATE TABLE local_capture (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', n INTEGER, done INTEGER);

-- Point queries during the pull read a table the pull does not write.
CREATE TABLE local_points (id TEXT PRIMARY KEY, v INTEGER NOT NULL);

-- The floor of any capture: a local table whose trigger (created by bench/sync_inpage.py on the
-- device) writes one plain log row per inserted row. What capture costs beyond it is edgesql's.
CREATE TABLE local_capture_floor (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', n INTEGER, done INTEGER);
CREATE TABLE local_capture_log (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk TEXT NOT NULL, cells TEXT NOT NULL);
