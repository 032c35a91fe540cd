/**
 * Sync, in the worker that owns the database: push the outbox, apply pulls.
 *
 * The same steps as the CPython replica (py/edgesql/sync/replica.py), from the same
 * sources: the SQL programs shipped in the primary's schema document (GET
 * <sync_url>/schema) build each request and apply each answer (acknowledgements,
 * rejections, pulled pages, snapshot positions), and replica-rules.js (generated
 * from py/edgesql/sync/rules.py) holds the loop's constants and what to do with
 * each refusal. This file moves text over HTTP and applies pulled pages in slices,
 * so that the app's queries run between them. See docs/protocol.md.
 *
 * When: soon after a local write (debounced), every `interval` seconds, when the
 * browser comes back online or the page becomes visible again, and on request
 * (db.sync()). Failures back off exponentially with jitter (a Retry-After is
 * honoured) and never touch the outbox, so nothing is lost or reordered; but
 * while the page is visible and the device online, a primary that does not answer
 * at all is tried again every second or so (RULES.probe_ms), so pending edits go
 * out as soon as it is back. Nothing here runs while a session of
 * the app holds a transaction open (db.whenIdle()): a sync only ever sees
 * committed writes.
 *
 * Live: while the device is online and the page visible, the Syncer also holds
 * `GET <sync_url>/stream` (Server-Sent Events read from fetch(), which, unlike an
 * EventSource, sends the Authorization header). The primary sends the end of its
 * change log when the stream opens and each time it grows; an end past this
 * replica's cursor starts a round at once (a burst becomes one round, or one more
 * after the round under way). The stream carries no data: rounds pull from the
 * cursor as always, so a stream that drops loses nothing. When it cannot be held
 * (not 200, or no first event within STREAM_FIRST_BYTE_MS: a proxy that buffers),
 * the interval's polling goes on alone and the stream is tried again later, with
 * backoff and jitter; status().transport says which ('stream' or 'poll').
 */

import { RULES, answerProblem, reaction } from './replica-rules.js';

/**
 * A pulled page is applied in slices, each its own transaction, with a turn of
 * the event loop between them: a query that arrives during a slice waits for
 * it. So a slice is sized by time, from the cost per change of the slices
 * before it: about SLICE_MS, within MIN_SLICE..MAX_SLICE changes.
 */
const SLICE_MS = 3;
const MIN_SLICE = 8;
const MAX_SLICE = 512;
/** WAL pages between checkpoints: SQLite's default, and while a sync runs (see loop()). */
const CHECKPOINT_PAGES = 1000;
const SYNC_CHECKPOINT_PAGES = 256;
/** Cost per change (ms) assumed before the first slice is measured. */
const FIRST_CHANGE_MS = 0.06;

/** The stream's first event must come within this (ms), or it is taken for a buffering proxy. */
const STREAM_FIRST_BYTE_MS = 5000;
/** The primary sends a heartbeat every 25 s: this long (ms) without a byte, the stream is dead. */
const STREAM_SILENCE_MS = 60000;
/** Reconnect delays (ms, before jitter x0.5-1.5): after a live stream ended or dropped while the
 * page is visible; and the first and largest after a stream that could not be held. */
const STREAM_RECONNECT_MS = 1000;
const STREAM_RETRY_BASE_MS = 30000;
const STREAM_RETRY_MAX_MS = 300000;

const NOT_UTF8 = 'a TEXT value in the change is not valid UTF-8 (bytes stored as TEXT, e.g. with CAST(x AS TEXT)), ' +
  'so no primary can store it and no device could read it: store bytes as a BLOB';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Where the slice that starts at `start` ends (exclusive): after at most `size`
 * changes, at the end of a writer's transaction (txend, index 6) when one falls
 * in the slice; a transaction longer than `size` is applied whole.
 * @param {any[]} changes @param {number} start @param {number} size @returns {number}
 */
export function sliceEnd(changes, start, size) {
  let end = Math.min(start + size, changes.length);
  if (end < changes.length) {
    let cut = end;
    while (cut > start && changes[cut - 1][6] !== 1) cut--;
    if (cut > start) end = cut;
    else while (end < changes.length && changes[end - 1][6] !== 1) end++;
  }
  return end;
}

/** A macrotask boundary, so the worker's other work (queries, messages) gets its turn. */
function yieldToEventLoop() {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => resolve();
    ch.port2.postMessage(0);
  });
}

/** @param {{at: number, tbl: string, pk: string}} a @param {{at: number, tbl: string, pk: string} | null} b */
function samePosition(a, b) {
  return b !== null && a.at === b.at && a.tbl === b.tbl && a.pk === b.pk && (a.bucket ?? '') === (b.bucket ?? '');
}

export class SyncError extends Error {
  constructor(message, code, status = null, retryAfter = null) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * What the page says of itself (bridge.js relays it): is the device online (navigator.onLine),
 * is the page visible. Set by setPageState(); a worker whose page never said is online and visible.
 */
const page = { online: typeof navigator === 'undefined' ? true : navigator.onLine !== false, visible: true };

/**
 * The page's online and visibility state changed.
 * @param {{online?: boolean, visible?: boolean}} state
 * @returns {boolean} whether sync should be tried now (the device came back online or the page into view)
 */
export function setPageState(state) {
  const back = (state.online === true && !page.online) || (state.visible === true && !page.visible);
  if (typeof state.online === 'boolean') page.online = state.online;
  if (typeof state.visible === 'boolean') page.visible = state.visible;
  for (const syncer of syncers) syncer.holdStream();
  return back;
}

/** The Syncers running in this worker: each holds its stream only while the page is online and visible. */
const syncers = new Set();

/**
 * Seconds from the page's `interval` (Python's float 30.0 arrives as a codec.js Real, an
 * object: `interval * 1000` was NaN, setTimeout(NaN) fires at once, and every idle round
 * started the next one, ~20 POST /sync a second). 0 or null: no background sync.
 * @param {any} value @returns {number}
 */
export function intervalSeconds(value) {
  const n = value === null || value === undefined ? 0 : Number(typeof value === 'object' ? value.value : value);
  if (!Number.isFinite(n) || n < 0) throw new SyncError(`sync_interval must be a number of seconds >= 0, not ${value}`, 'bad_interval');
  return n;
}

/**
 * Is this failure the primary's or the network's passing trouble (no answer, a 5xx, a 429), as
 * opposed to one that needs someone to act (a refused request, a change this database cannot
 * apply)? @param {any} e
 */
function transient(e) {
  return e instanceof SyncError && (e.code === 'offline' || (e.status !== null && (e.status >= 500 || e.status === 429)));
}

/** Sync runs under way in this worker (any database): its hot loop then yields more often. */
let activeSyncs = 0;

/** Slices whose inbox is read and whose changes wait to be applied (between its two halves). */
let halfApplied = 0;

/** Is a sync run (push and pull rounds) under way in this worker? */
export function syncInProgress() {
  return activeSyncs > 0;
}

/** Is a slice half applied (its inbox read, its changes not yet written)? Then the hot loop yields sooner. */
export function sliceHalfApplied() {
  return halfApplied > 0;
}

/**
 * The user a JWT names (its `sub`), read without checking it (the primary checks); null for a
 * token that is not a JWT (a static app token).
 * @param {string | null} token @returns {string | null}
 */
export function tokenUser(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))));
    return claims && typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

export class Syncer {
  /**
   * @param {import('./engine.js').Database} db
   * @param {{url: string, token: string|null, interval: number}} options
   * @param {(event: any) => void} notify  tells pages about pulled changes and status
   */
  constructor(db, options, notify) {
    this.db = db;
    this.url = options.url;
    this.token = options.token;
    this.interval = intervalSeconds(options.interval);
    this.notify = notify;
    this.programs = {};
    this.online = typeof navigator === 'undefined' ? true : navigator.onLine;
    this.lastError = null;
    /** The last failure (a SyncError or other Error), or null once a round succeeds. */
    this.lastFailure = null;
    this.progress = null;
    /** The next pull page, asked for while this one is applied: {replica, version, cursor, position, abort, res}. */
    this.prefetch = null;
    /** What applying one pulled change costs here (ms, a moving average): sizes the slices. */
    this.changeMs = FIRST_CHANGE_MS;
    this.failures = 0;
    /** A 401 asked the pages for a new token (a 'token' event), none has come yet. */
    this.tokenWanted = false;
    /** performance.now() before which no background round starts (a Retry-After). */
    this.notBefore = 0;
    this.timer = null;
    this.running = null;
    this.stopped = false;
    this.onOnline = () => this.wake();
    self.addEventListener('online', this.onOnline);
    /** The change stream: {abort, live} while one is open or opening, else null. */
    this.stream = null;
    /** The reconnect timer, when the stream is to be tried again, and when. */
    this.streamTimer = null;
    /** Streams in a row that could not be held (not 200, buffered): grows the wait before the next. */
    this.streamFailures = 0;
    /** The highest log end the stream announced, and the highest one a round was started for. */
    this.streamSeq = 0;
    this.streamHandled = 0;
  }

  headers() {
    const h = { 'content-type': 'application/json' };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  /** Fetch the schema document and migrate to it; offline, use the cached one. */
  async start() {
    await this.ensureSchema();
    await this.checkUser();
    this.db.beforeCommit = this.programs.txend;
    this.db.onCommit = () => this.soon(RULES.debounce_ms);
    this.soon(0);
    syncers.add(this);
    this.holdStream();
  }

  async ensureSchema() {
    let doc = null;
    let refused = null;
    try {
      const res = await fetch(this.url.replace(/\/$/, '') + '/schema', { headers: this.headers(), cache: 'no-store' });
      if (!res.ok) throw await this.httpError(res);
      doc = await res.json();
      this.online = true;
    } catch (e) {
      // The primary's trouble (rate limit, outage), not this database's: start from the cached
      // schema as when offline (a 401 or 409 is a setup error, and is raised).
      if (e instanceof SyncError && e.status !== null && !RULES.schema_fallback_statuses.includes(e.status)) throw e;
      if (e instanceof SyncError && e.status !== null) refused = e;
      this.online = refused !== null;
      this.lastError = refused ? e.message : `cannot reach the primary at ${this.url}: ${e.message}`;
    }
    const cached = this.cachedDoc();
    if (doc && (!cached || cached.version < doc.version || JSON.stringify(cached.client) !== JSON.stringify(doc.client))) {
      await this.db.whenIdle();
      applySchemaDoc(this.db, doc, cached);
    } else if (!doc && !cached) {
      if (refused) throw refused; // its code and Retry-After say when to try again
      throw new SyncError(
        `cannot reach the primary at ${this.url} and this database has never synced: ` +
        'the first start needs the network to fetch the schema', 'offline');
    }
    this.loadPrograms();
  }

  cachedDoc() {
    try {
      const rows = this.db.query('SELECT doc FROM _edgesql_schema ORDER BY version DESC LIMIT 1');
      return rows.length ? JSON.parse(rows[0][0]) : null;
    } catch {
      return null; // never synced: no edgesql tables yet
    }
  }

  loadPrograms() {
    this.programs = {};
    for (const [name, sql] of this.db.query('SELECT name, sql FROM _edgesql_sql')) {
      this.programs[name] = JSON.parse(sql);
    }
    // This SQLite has JSONB (3.45+): parse each pulled page once.
    if (this.programs.apply_jsonb) this.programs.apply = this.programs.apply_jsonb;
  }

  /**
   * The app's token provider gave a new token (after a 401, or on sign-in): use it from the
   * next request, and sync now.
   * @param {string} token
   */
  async setToken(token) {
    this.token = token;
    this.tokenWanted = false;
    await this.checkUser();
    this.wake();
    this.closeStream(); // opened again at once, with the new token
    this.holdStream();
  }

  /**
   * A token for another user than this database's: that user's rows go from this device
   * (their unsent writes are kept in _edgesql_rejected) and it starts as a new replica —
   * before anything is sent or shown. The first user to sync is remembered.
   */
  async checkUser() {
    const user = tokenUser(this.token);
    if (user === null || !this.programs.reset_user) return;
    const was = this.db.query('SELECT user FROM _edgesql_replica WHERE id = 1')[0][0];
    if (was === user) return;
    await this.db.whenIdle();
    if (was === null) {
      this.db.atomicInternal(() => this.db.runProgram(this.programs.set_user, { user }));
      return;
    }
    console.warn(`[edgesql] ${JSON.stringify(user)} signed in on this database of ${JSON.stringify(was)}: ` +
      `${JSON.stringify(was)}'s data is removed here (unsent writes kept in _edgesql_rejected) and it ` +
      'starts again as a new replica');
    this.db.atomicInternal(() => this.db.runProgram(this.programs.reset_user, { user }));
  }

  /** The browser is back online or the page back in view (the worker's own event, or the page's relayed). */
  wake() {
    this.soon(0);
    this.holdStream();
  }

  /** Schedule a background round in `ms` (sooner wins, but never before a Retry-After ends). */
  soon(ms) {
    if (this.stopped || !this.interval) return;
    ms = Math.max(ms, this.notBefore - performance.now());
    if (!Number.isFinite(ms)) throw new Error(`sync scheduled in ${ms} ms`); // never a hot loop (intervalSeconds)
    if (this.timer !== null) {
      if (this.timerAt <= performance.now() + ms) return;
      clearTimeout(this.timer);
    }
    this.timerAt = performance.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.background();
    }, ms);
  }

  async background() {
    try {
      await this.sync();
      this.failures = 0;
      this.soon(this.interval * 1000);
    } catch (e) {
      this.failures += 1;
      if (e.retryAfter != null) {
        // The primary said when (429, 503): never sooner. Jitter only adds, and
        // writes and 'online' events do not cut the wait short (see soon()).
        const delay = e.retryAfter * 1000 * (1 + RULES.retry_after_jitter * Math.random());
        this.notBefore = performance.now() + delay;
        if (this.timer !== null) clearTimeout(this.timer); // set by a write during the refused round
        this.timer = null;
        this.soon(delay);
        return;
      }
      let delay = Math.min(RULES.backoff_max_ms, RULES.backoff_base_ms * 2 ** (this.failures - 1));
      delay *= 0.5 + Math.random(); // jitter: replicas that failed together retry apart
      if (e.code === 'offline' && page.online && page.visible) {
        // No answer at all, yet the device is online and someone looks at the page: the primary
        // is down or restarting. Probe about every second, so that pending edits go out as soon
        // as it accepts connections (a hidden page or an offline device waits the long way, and
        // 'online' and 'visibilitychange' wake it).
        delay = Math.min(delay, RULES.probe_ms * (0.75 + 0.5 * Math.random()));
      }
      this.soon(delay);
    }
  }

  /** Push everything pending and pull everything new (one at a time). */
  sync() {
    if (!this.running) {
      activeSyncs++;
      this.running = this.loop().finally(() => { this.running = null; activeSyncs--; });
      // An end the stream announced during the round, past what it pulled: one more round.
      this.running.then(() => this.heard(0), () => {});
    } else {
      // A round is under way: run once more after it, for writes it did not see.
      this.again = true;
    }
    return this.running;
  }

  async loop() {
    let pushed = 0;
    let pulled = 0;
    // A pull writes a lot: checkpoint the WAL in smaller steps meanwhile, since a query that
    // arrives during a checkpoint waits for all of it (figures in docs/benchmarks-sync.md).
    this.db.exec(`PRAGMA wal_autocheckpoint = ${SYNC_CHECKPOINT_PAGES}`);
    try {
      for (;;) {
        this.again = false;
        const r = await this.round();
        pushed += r.pushed;
        pulled += r.pulled;
        if (!r.more && !this.again) break;
      }
    } catch (e) {
      this.dropPrefetch(); // the next run starts from what is stored
      this.lastError = e.message;
      this.lastFailure = e;
      this.notify({ type: 'status' });
      throw e;
    } finally {
      try {
        this.db.exec(`PRAGMA wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
      } catch {
        // closed meanwhile: nothing to restore
      }
    }
    this.lastError = null;
    this.lastFailure = null;
    this.notify({ type: 'status' });
    return { pushed, pulled };
  }

  // -- the change stream (GET <sync_url>/stream) ------------------------------------------

  /** Open the stream if it should be held (background sync on, device online, page visible), close it if not. */
  holdStream() {
    const wanted = !this.stopped && this.interval > 0 && page.online && page.visible;
    if (!wanted) {
      this.closeStream();
      return;
    }
    if (this.stream === null && this.streamTimer === null) this.openStream();
  }

  closeStream() {
    if (this.streamTimer !== null) clearTimeout(this.streamTimer);
    this.streamTimer = null;
    const s = this.stream;
    this.stream = null;
    if (s) {
      s.abort.abort();
      if (s.live) this.notify({ type: 'status' });
    }
  }

  /** Try the stream again in about `ms` (jitter x0.5-1.5), unless it is held or due sooner. */
  retryStream(ms) {
    if (this.stopped || this.streamTimer !== null) return;
    this.streamTimer = setTimeout(() => {
      this.streamTimer = null;
      this.holdStream();
    }, ms * (0.5 + Math.random()));
  }

  async openStream() {
    const abort = new AbortController();
    const s = { abort, live: false };
    this.stream = s;
    let timer = null;
    let why = 'buffered'; // what ended it: 'buffered' (no first event in time), 'silent', a status, 'network', 'ended'
    const arm = (ms, reason) => {
      clearTimeout(timer);
      timer = setTimeout(() => { why = reason; abort.abort(); }, ms);
    };
    arm(STREAM_FIRST_BYTE_MS, 'buffered');
    let retryAfter = null;
    try {
      const headers = { accept: 'text/event-stream' };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      const res = await fetch(this.url.replace(/\/$/, '') + '/stream', { headers, cache: 'no-store', signal: abort.signal });
      if (!res.ok || !(res.headers.get('content-type') || '').startsWith('text/event-stream')) {
        why = res.ok ? 'not a stream' : res.status;
        const ra = res.headers.get('retry-after');
        if (ra && /^\d+(\.\d+)?$/.test(ra)) retryAfter = Number(ra) * 1000;
        res.body?.cancel().catch(() => {});
        return;
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          why = 'ended';
          return;
        }
        if (s.live) arm(STREAM_SILENCE_MS, 'silent');
        buffer += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
          if (!data) continue; // a heartbeat (": ping") or a field without data
          let seq;
          try {
            seq = Number(JSON.parse(data).seq);
          } catch {
            continue;
          }
          if (!Number.isFinite(seq)) continue;
          if (!s.live) {
            // Held: from now on the stream says when to sync, and a reconnect catches up.
            s.live = true;
            this.streamFailures = 0;
            arm(STREAM_SILENCE_MS, 'silent');
            this.notify({ type: 'status' });
            if (this.lastError !== null || this.pendingCount() > 0) this.soon(0);
          }
          this.streamSeq = Math.max(this.streamSeq, seq);
          this.heard(seq);
        }
      }
    } catch (e) {
      if (!abort.signal.aborted) why = 'network';
    } finally {
      clearTimeout(timer);
      const mine = this.stream === s;
      if (mine) this.stream = null;
      if (s.live) this.notify({ type: 'status' });
      if (mine && !this.stopped) {
        if (s.live || why === 'network' || why === 'silent') {
          // It was held (the server restarted, or ended it at its max age), or the primary is
          // unreachable: try again soon while someone looks; the rounds' probe pushes meanwhile.
          this.retryStream(why === 'network' ? RULES.probe_ms : STREAM_RECONNECT_MS);
        } else {
          // Not to be had here (no stream on this primary, a cap, a token, a buffering proxy):
          // poll, and ask again later.
          this.streamFailures += 1;
          const wait = Math.min(STREAM_RETRY_MAX_MS, STREAM_RETRY_BASE_MS * 2 ** (this.streamFailures - 1));
          this.retryStream(Math.max(wait, retryAfter ?? 0));
        }
      }
    }
  }

  /**
   * The stream announced that the log ends at `seq` (0: look again at what it announced):
   * a round, at once, when that is past this replica's cursor and no round was started for it.
   * During a round, wait for its end (sync() calls this again after it): its pull may take it all.
   */
  heard(seq) {
    if (this.running || this.stopped) return;
    const end = Math.max(seq, this.streamSeq);
    if (end <= this.streamHandled) return;
    let cursor;
    try {
      cursor = this.state().cursor;
    } catch {
      return; // closed meanwhile
    }
    if (end <= cursor) return;
    this.streamHandled = end;
    this.soon(0);
  }

  pendingCount() {
    try {
      return Number(this.db.query('SELECT count(*) FROM _edgesql_outbox')[0][0]);
    } catch {
      return 0;
    }
  }

  async httpError(res) {
    let code = 'http_error';
    let message = '';
    try {
      const body = await res.json();
      code = body.error || code;
      message = body.message || '';
    } catch {
      message = res.statusText;
    }
    const ra = res.headers.get('retry-after');
    return new SyncError(`the primary answered ${res.status} ${code}: ${message}`, code, res.status,
      ra && /^\d+(\.\d+)?$/.test(ra) ? Number(ra) : null);
  }

  state() {
    const [replica, cursor, version, snapshotting] = this.db.query(
      'SELECT s.replica, s.cursor, s.schema_version, r.snapshot IS NOT NULL FROM _edgesql_state s, _edgesql_replica r ' +
      'WHERE s.id = 1 AND r.id = 1')[0];
    return { replica, cursor: Number(cursor), version: Number(version), snapshotting: !!snapshotting };
  }

  /**
   * POST one request body; resolves to the Response, or to the SyncError of an
   * unreachable primary (never rejects, so a prefetch nobody awaits is harmless).
   */
  post(body, signal) {
    return fetch(this.url, { method: 'POST', headers: this.headers(), body, cache: 'no-store', signal })
      .catch((e) => new SyncError(`cannot reach the primary at ${this.url}: ${e.message}`, 'offline'));
  }

  /** The request body (built by the `request` program), from the state now or the one given. */
  requestBody(page, cursor = null, snapshot = null) {
    return this.db.query(this.programs.request[0],
      { page, limit: RULES.pull_limit, cursor, snapshot: snapshot === null ? null : JSON.stringify(snapshot) })[0][0];
  }

  /**
   * The next page of the outbox and its size. Changes that can never be sent (too large,
   * text that is not UTF-8) are rejected here, locally, first, so that the rest flows.
   */
  page() {
    for (let tries = 0; tries < 100; tries++) {
      const [page, , count, oversized] = this.db.query(this.programs.push_page[0], {
        after: 0, limit: RULES.push_limit, bytes: RULES.push_bytes, max_cells: RULES.max_cells_bytes,
      })[0];
      const tooBig = JSON.parse(oversized || '[]');
      if (tooBig.length) {
        this.rejectLocal(tooBig.map((seq) => ({
          seq, code: 'too_large',
          reason: `the change is over ${RULES.max_cells_bytes} bytes encoded, more than a primary stores: ` +
            'store large files elsewhere and keep a reference',
        })));
        continue;
      }
      // SQLite hands text over as UTF-8 bytes; bytes that are not UTF-8 come out as U+FFFD.
      // Only then are the page's rows read again as bytes and checked.
      if (page.includes('\uFFFD')) {
        const bad = this.undecodable();
        if (bad.length) {
          this.rejectLocal(bad);
          continue;
        }
      }
      return { page, n: Number(count) };
    }
    throw new SyncError('the outbox keeps yielding changes that cannot be sent', 'bad_outbox');
  }

  undecodable() {
    const rows = this.db.query('SELECT seq, CAST(tbl AS BLOB), CAST(pk AS BLOB), CAST(cells AS BLOB) ' +
      'FROM _edgesql_outbox ORDER BY seq LIMIT ?', [RULES.push_limit]);
    const bad = [];
    for (const [seq, ...blobs] of rows) {
      try {
        for (const b of blobs) strictUtf8.decode(b);
      } catch {
        bad.push({ seq: Number(seq), code: 'malformed', reason: NOT_UTF8 });
      }
    }
    return bad;
  }

  rejectLocal(rejected) {
    for (const r of rejected) console.warn(`[edgesql] change ${r.seq} cannot be sent: ${r.reason} (${r.code})`);
    this.db.atomicInternal(() => this.db.runProgram(this.programs.reject_local, { rejected: JSON.stringify(rejected) }));
  }

  /** The prefetched answer for this round, if it asked for exactly what this round would. */
  takePrefetch(st, pushing) {
    const p = this.prefetch;
    const same = p && !pushing && p.replica === st.replica && p.version === st.version &&
      (p.position === null
        ? !st.snapshotting && p.cursor === st.cursor
        : st.snapshotting && samePosition(p.position, JSON.parse(this.position())));
    if (same) {
      this.prefetch = null;
      return p.res;
    }
    this.dropPrefetch();
    return null;
  }

  /** Where the snapshot being taken stands (JSON text), or null. */
  position() {
    return this.db.query('SELECT snapshot FROM _edgesql_replica WHERE id = 1')[0][0];
  }

  /** Forget the prefetched answer (and cancel its request): the next round asks again. */
  dropPrefetch() {
    if (this.prefetch) this.prefetch.abort.abort();
    this.prefetch = null;
  }

  async round() {
    await this.db.whenIdle();
    const st = this.state();
    const { page, n } = this.page();
    const res = await (this.takePrefetch(st, n > 0) || this.post(this.requestBody(page)));
    if (res instanceof SyncError) {
      this.online = false;
      throw res;
    }
    this.online = true;
    if (!res.ok) {
      const err = await this.httpError(res);
      const todo = reaction(res.status, err.code);
      if (todo === 'rotate') {
        // A restored or copied database, or an id another device owns: this copy takes a
        // new id and key and syncs again.
        await this.db.whenIdle();
        this.db.atomicInternal(() => this.db.runProgram(this.programs.rotate, {}));
        console.warn(`[edgesql] replica id ${st.replica}: ${err.message}; now ${this.state().replica}`);
        return { pushed: 0, pulled: 0, more: true };
      }
      if (todo === 'reauth') {
        // The token expired or was refused: the page's token provider (connect(auth=...))
        // is asked for a new one, and sync resumes when it arrives (setToken).
        if (!this.tokenWanted) {
          this.tokenWanted = true;
          this.notify({ type: 'token', code: err.code });
        }
        throw err;
      }
      if (todo === 'reset') {
        // This replica id belongs to another user: this user's copy starts again.
        await this.db.whenIdle();
        this.db.atomicInternal(() => this.db.runProgram(this.programs.reset_user, { user: tokenUser(this.token) }));
        console.warn(`[edgesql] ${err.message}; this device starts again as a new replica of this user`);
        return { pushed: 0, pulled: 0, more: true };
      }
      if (todo === 'migrate') {
        await this.ensureSchema();
        if (this.state().version === st.version) {
          throw new SyncError(`${err.message}; and the newer schema could not be fetched: nothing was sent, ` +
            'the next sync retries', 'schema_unavailable');
        }
        this.db.beforeCommit = this.programs.txend;
        return { pushed: 0, pulled: 0, more: true };
      }
      throw err;
    }
    let r;
    let problem;
    try {
      r = await res.json();
      problem = answerProblem(r);
    } catch (e) {
      problem = e.message;
    }
    if (problem !== null) {
      throw new SyncError(`the primary's answer is not a sync response (${problem})`, 'bad_response');
    }
    await this.db.whenIdle();
    const rejected = r.rejected || [];
    const changes = r.changes || [];
    const snapshot = r.snapshot ?? null;
    this.db.atomicInternal(() => {
      this.db.runProgram(this.programs.ack, {
        acked: n ? r.acked : 0, rejected: JSON.stringify(rejected), server_hlc: String(r.server_hlc || '0'),
        buckets: JSON.stringify(r.buckets || []),
      });
      // Buckets this user lost: their rows go from this device.
      if (r.drop && r.drop.length) this.db.runProgram(this.programs.drop_buckets, { buckets: JSON.stringify(r.drop) });
      // The primary says to start from its state (its log before its last migration holds
      // values from before it).
      if (snapshot !== null && !st.snapshotting && snapshot.full !== false) {
        this.db.runProgram(this.programs.begin_snapshot, {});
      }
    });
    for (const rej of rejected) {
      console.warn(`[edgesql] the primary rejected change ${rej.seq}: ${rej.reason} (${rej.code})`);
    }
    const before = this.progress ? this.progress.applied : 0;
    const total = r.more && snapshot === null ? before + changes.length + Number(r.remaining || 0) : null;
    if (n === 0 && r.more && changes.length && !this.stopped && !(snapshot && snapshot.done)) {
      // Nothing to push: ask for the next page now, so that it travels while this one is applied.
      const position = snapshot === null ? null
        : { at: snapshot.at, tbl: snapshot.tbl, pk: snapshot.pk, bucket: snapshot.bucket ?? '' };
      const abort = new AbortController();
      this.prefetch = {
        replica: st.replica, version: st.version, cursor: r.cursor, position, abort,
        res: this.post(this.requestBody('[]', position === null ? r.cursor : null, position), abort.signal),
      };
    }
    // Apply the page in slices, each its own transaction and cut where a
    // writer's transaction ends, yielding between them: the app's queries run
    // in between instead of waiting for the whole page.
    const current = () => Number(this.db.query('SELECT cursor FROM _edgesql_state WHERE id = 1')[0][0]);
    let start = 0;
    while (start < changes.length) {
      const size = Math.max(MIN_SLICE, Math.min(MAX_SLICE, Math.round(SLICE_MS / this.changeMs)));
      const end = sliceEnd(changes, start, size);
      const slice = changes.slice(start, end);
      // A snapshot's changes have no log seq: the cursor moves when the snapshot is done.
      const cursor = snapshot !== null ? current() : end === changes.length ? r.cursor : slice[slice.length - 1][0];
      const page = JSON.stringify(slice);
      let spent = 0;
      if (this.programs.apply_stage) {
        // Reading the slice into the TEMP inbox changes nothing the app sees: a turn of the
        // event loop after it, so that a query waits for one of the two halves at most.
        await this.db.whenIdle();
        const t0 = performance.now();
        this.db.atomicInternal(() => this.db.runProgram(this.programs.apply_stage, { page }));
        spent += performance.now() - t0;
        halfApplied++;
        try {
          await yieldToEventLoop();
        } finally {
          halfApplied--;
        }
      }
      await this.db.whenIdle();
      const t0 = performance.now();
      this.db.atomicInternal(() => {
        this.db.runProgram(this.programs.apply_stage ? this.programs.apply_final : this.programs.apply,
          { page, cursor, me: st.replica });
      });
      spent += performance.now() - t0;
      this.changeMs = 0.7 * this.changeMs + 0.3 * (spent / (end - start));
      start = end;
      if (total !== null) this.progress = { applied: before + end, total };
      if (end < changes.length) await yieldToEventLoop();
    }
    await this.db.whenIdle();
    if (snapshot !== null) {
      this.db.atomicInternal(() => {
        if (snapshot.done) this.db.runProgram(this.programs.snapshot_done, { cursor: r.cursor });
        else this.db.runProgram(this.programs.snapshot_position, { snapshot: JSON.stringify(snapshot) });
      });
    } else if (!changes.length && r.cursor !== st.cursor) {
      this.db.atomicInternal(() => {
        this.db.runProgram(this.programs.apply, { page: '[]', cursor: r.cursor, me: st.replica });
      });
    }
    this.progress = r.more ? { applied: before + changes.length, total } : null;
    // (Live queries hear of pulled changes from the engine's commit, like any write.)
    this.notify({ type: 'status' });
    const pending = Number(this.db.query('SELECT count(*) FROM _edgesql_outbox')[0][0]);
    return { pushed: n - rejected.length, pulled: changes.length, more: !!r.more || (n > 0 && pending > 0) };
  }

  status() {
    const [replica, pending, , version, last, , rejected] = this.db.query(this.programs.status[0])[0];
    const retryIn = this.timer !== null && this.failures ? Math.max(0, (this.timerAt - performance.now()) / 1000) : null;
    const failure = this.lastError === null ? null : this.lastFailure;
    let state;
    if (!page.online) state = 'offline';
    else if (this.lastError !== null && (failure === null || transient(failure))) state = 'unreachable';
    else if (this.lastError !== null) state = 'error';
    else if (this.running) state = 'syncing';
    else if (Number(pending) > 0) state = 'pending';
    else state = 'synced';
    return {
      pending: Number(pending), last_synced_at: last, last_error: this.lastError, online: this.online,
      progress: this.progress, replica, schema_version: Number(version), rejected: Number(rejected),
      retry_in: retryIn, state, device_online: page.online,
      error_code: failure === null ? null : failure instanceof SyncError ? failure.code : 'local_error',
      transport: this.stream !== null && this.stream.live ? 'stream' : 'poll',
    };
  }

  stop() {
    this.stopped = true;
    syncers.delete(this);
    this.closeStream();
    this.dropPrefetch();
    if (this.timer !== null) clearTimeout(this.timer);
    self.removeEventListener('online', this.onOnline);
    this.db.onCommit = null;
    this.db.beforeCommit = [];
  }
}

/**
 * Bring the database to the schema document's version, in one transaction: the steps of
 * py/edgesql/sync/migrate.py (its docstring says why each is there).
 */
export function applySchemaDoc(db, doc, old = null) {
  const run = (name, params) => db.runProgram(doc.client.programs[name], params);
  const quote = (name) => `"${name.replaceAll('"', '""')}"`;
  const migrate = (migrations) => {
    for (const m of migrations) {
      try {
        db.runScript(m.sql);
      } catch (e) {
        e.migration = m;
        throw e;
      }
    }
  };
  db.atomicInternal(() => {
    for (const sql of doc.client.setup) db.exec(sql);
    const local = Number(db.query('SELECT schema_version FROM _edgesql_state WHERE id = 1')[0][0]);
    if (local > doc.version) {
      throw new SyncError(`this database is at schema version ${local}, ahead of the primary's ${doc.version}: ` +
        "the primary's migrations were rolled back", 'schema_ahead');
    }
    db.exec('UPDATE _edgesql_state SET applying = 1 WHERE id = 1');
    const triggers = db.query("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_edgesql\\_%' ESCAPE '\\' " +
      "AND tbl_name NOT LIKE '\\_edgesql\\_%' ESCAPE '\\'");
    for (const [name] of triggers) db.exec(`DROP TRIGGER ${quote(name)}`);
    const pending = doc.migrations.filter((m) => m.version > local);
    let emptied = false;
    if (pending.length) {
      db.exec('SAVEPOINT edgesql_migrate');
      try {
        migrate(pending);
      } catch (first) {
        db.exec('ROLLBACK TO edgesql_migrate');
        const what = (e) => `migration ${e.migration?.version} (${e.migration?.name}) failed: ${e.message}`;
        if (local === 0 || !old) {
          throw new SyncError(`cannot build this database from the primary's schema: ${what(first)}. Fix the ` +
            'migration on the primary (it ran there), or open a new database', 'migration_failed');
        }
        // Run on empty synced tables: the snapshot after brings the rows back.
        for (const t of old.tables) db.exec(`DELETE FROM ${quote(t.name)}`);
        emptied = true;
        try {
          migrate(pending);
        } catch (again) {
          throw new SyncError(`cannot migrate this database to schema version ${doc.version}: ${what(again)}, even ` +
            `with its synced tables empty (it first failed on this database's rows: ${first.message}). The ` +
            "migration must run on every replica's schema: fix it on the primary with a new migration",
          'migration_failed');
        }
      }
      db.exec('RELEASE edgesql_migrate');
    }
    db.exec('DELETE FROM _edgesql_sql');
    for (const [name, stmts] of Object.entries(doc.client.programs)) {
      db.exec('INSERT INTO _edgesql_sql (name, sql) VALUES (?, ?)', [name, JSON.stringify(stmts)]);
    }
    if (pending.length && local > 0) {
      offlineWrites(db, doc, emptied, run);
      run('begin_snapshot', {});
    }
    for (const sql of doc.client.triggers) db.exec(sql);
    db.exec('INSERT OR REPLACE INTO _edgesql_schema (version, doc) VALUES (?, ?)', [doc.version, JSON.stringify(doc)]);
    db.exec('UPDATE _edgesql_state SET schema_version = ?, applying = 0 WHERE id = 1', [doc.version]);
  });
}

/** This device's pending writes under the new schema (step 3 of migrate.py's list). */
function offlineWrites(db, doc, emptied, run) {
  run('prune', { version: doc.version });
  if (emptied) {
    db.exec('SAVEPOINT edgesql_rebuild');
    try {
      run('rebuild', {});
      db.exec('RELEASE edgesql_rebuild');
    } catch {
      db.exec('ROLLBACK TO edgesql_rebuild');
      db.exec('RELEASE edgesql_rebuild');
      for (const [tbl, pk] of db.query(doc.client.programs.pending_keys[0])) {
        db.exec('SAVEPOINT edgesql_rebuild_key');
        try {
          run('rebuild_key', { tbl, pk });
        } catch (e) {
          db.exec('ROLLBACK TO edgesql_rebuild_key');
          const reason = `${e.message} (schema version ${doc.version} refuses this row as this device wrote it)`;
          run('reject_key', { tbl, pk, code: 'constraint', reason });
          // The row as the primary last had it, if the new schema takes that (else the
          // snapshot brings the primary's migrated row).
          db.exec('SAVEPOINT edgesql_rebuild_clock');
          try {
            run('rebuild_key', { tbl, pk });
          } catch {
            db.exec('ROLLBACK TO edgesql_rebuild_clock');
          }
          db.exec('RELEASE edgesql_rebuild_clock');
        }
        db.exec('RELEASE edgesql_rebuild_key');
      }
    }
  }
  run('normalize', {});
}
