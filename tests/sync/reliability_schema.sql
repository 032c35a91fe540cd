-- The reliability tests' schema (tests/cases/workload.py writes it).
-- n, x and b have no declared type, so SQLite keeps every value exactly as written.
CREATE TABLE notes (id TEXT PRIMARY KEY, owner TEXT NOT NULL, body TEXT, n, x, b);
CREATE TABLE shared (id TEXT PRIMARY KEY, v TEXT, who TEXT);
