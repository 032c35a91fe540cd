-- A table whose value column has no type affinity, so every storage class stays as written.
CREATE TABLE vals (id TEXT PRIMARY KEY, tag TEXT NOT NULL DEFAULT '', v);
