"""Sync: schema analysis, the SQL that captures and merges changes, and the protocol.

Everything that decides who wins is SQL generated here, once, from the
schema; the same SQL runs in SQLite-Wasm in the browser, in CPython's
sqlite3, in the embedded primary and in Cloudflare D1. JavaScript (the DB
worker, the Cloudflare Worker) only moves that SQL's inputs and outputs.
See docs/sync.md for the model and docs/protocol.md for the wire format.
"""
