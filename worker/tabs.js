/**
 * Many tabs, one database: owner election, request routing and handoff.
 *
 * Only one tab can hold a database's OPFS files (opfs-sahpool keeps every
 * handle open). For each database name the tabs' DB workers elect an owner
 * with a Web Lock (`edgesql:db:<name>`). The owner opens the database, runs
 * sync, and answers every tab; the others are followers: they forward their
 * page's requests over a BroadcastChannel (`edgesql:db:<name>`) and relay the
 * owner's change events to their page. Every follower also queues for the
 * lock, so when the owner's tab closes or crashes (the browser then releases
 * its locks) one of them takes over, and the rest follow the new owner.
 *
 * A request in flight when the owner goes away is either completed exactly
 * once or fails with a clear, retryable error: followers send every request
 * with a key (their worker id and a counter); the owner records the key of
 * each write in the same transaction as the write (`_edgesql_requests`), so
 * a request sent again to the next owner is answered from that record instead
 * of running twice. A transaction that was open on the dead owner was rolled
 * back with it: its requests fail with SQLITE_ABORT, saying to run it again;
 * a COMMIT in flight is looked up (it either happened or did not).
 *
 * Channel messages (all carry `from`, the sender's worker id):
 *   {t: 'hello'}                          who owns this database?
 *   {t: 'owner'}                          I do (sent on becoming owner, and to answer hello)
 *   {t: 'req', to, id, s, body}           a follower's request (body: the page's JSON text)
 *   {t: 'res', to, id, body}              the owner's answer
 *   {t: 'event', event}                   changes committed / sync status (owner to all)
 */

import { parseRequest } from './codec.js';
import { errorJson } from './engine.js';
import { EdgeError, SQLITE_MISUSE } from './errors.js';
import { closeDatabase, isLockedError, openDatabase } from './store.js';
import { SyncError, Syncer } from './sync.js';

/** This worker's id: names it on the channel and in request keys. */
export const WORKER_ID = Array.from(crypto.getRandomValues(new Uint8Array(8)),
  (b) => b.toString(16).padStart(2, '0')).join('');
/** How long a follower waits for an owner to say so before trying the lock again. */
const OWNER_ANSWER_MS = 1000;
/** A dead owner's OPFS handles can outlive its lock by a moment: retry opening for this long. */
const TAKEOVER_PATIENCE_MS = 10_000;
const SQLITE_ABORT = 4;

// Each worker holds a lock named after itself for its whole life: an owner
// queued on it learns when a follower's tab is gone and ends its sessions.
navigator.locks.request(`edgesql:client:${WORKER_ID}`, () => new Promise(() => {}));

const aborted = (what) => errorJson(new EdgeError(
  `the tab that held the database closed during this transaction, so the transaction was rolled back (${what}); ` +
  'run the whole transaction again', SQLITE_ABORT, 'OperationalError', 'SQLITE_ABORT'), false);

function syncErrorData(e) {
  if (e instanceof SyncError) {
    const err = new EdgeError(e.message, 1, 'SyncError');
    err.extra = { sync_code: e.code, status: e.status, retry_after: e.retryAfter };
    return err;
  }
  return e;
}

/**
 * One session of this worker's page on a database, wherever the database is.
 * @typedef {{id: number, route: Route, engineS: number, path: string, options: any,
 *   sync: any, inTx: boolean, broken: boolean}} LocalSession
 */

/** Where one database lives for this worker: here (owner) or in another tab (follower). */
export class Route {
  /**
   * @param {Router} router
   * @param {string} path
   * @param {any} options
   */
  constructor(router, path, options) {
    this.router = router;
    this.path = path;
    this.options = options;
    /** @type {'pending'|'owner'|'follower'|'closed'} */
    this.role = 'pending';
    /** @type {import('./engine.js').Database | null} */
    this.db = null;
    this.ownerId = null;
    this.release = null;
    this.abort = new AbortController();
    /** Requests sent to the owner and not yet answered. @type {Map<number, any>} */
    this.inflight = new Map();
    /** @type {Set<LocalSession>} */
    this.local = new Set();
    /** Sessions of other tabs on this owner: engine session -> client worker id. */
    this.remote = new Map();
    this.watchedClients = new Set();
    this.ownerWaiters = [];
    this.reattaching = false;
    this.shared = options.storage !== 'memory';
    this.channel = this.shared ? new BroadcastChannel(`edgesql:db:${path}`) : null;
    if (this.channel) this.channel.onmessage = (ev) => this.onChannel(ev.data);
    this.ready = this.shared ? this.elect() : this.becomeOwner(false);
  }

  // -- who owns it --------------------------------------------------------------------

  async elect() {
    const granted = await new Promise((resolve) => {
      navigator.locks.request(`edgesql:db:${this.path}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(false);
          return undefined;
        }
        resolve(true);
        return new Promise((release) => { this.release = release; });
      });
    });
    if (granted) {
      await this.becomeOwner(false);
      return;
    }
    this.role = 'follower';
    this.queueForLock();
    await this.findOwner();
  }

  /** Wait in line for the lock: granted when the owner's tab goes away. */
  queueForLock() {
    navigator.locks.request(`edgesql:db:${this.path}`, { signal: this.abort.signal }, async () => {
      if (this.role === 'closed') return undefined;
      await this.becomeOwner(true);
      return new Promise((release) => { this.release = release; });
    }).catch((e) => {
      if (e.name !== 'AbortError') console.error('[edgesql] waiting for the database lock failed', e);
    });
  }

  async findOwner() {
    while (this.role === 'follower' && !this.ownerId) {
      const found = new Promise((resolve) => this.ownerWaiters.push(resolve));
      this.channel.postMessage({ t: 'hello', from: WORKER_ID });
      const timer = new Promise((resolve) => setTimeout(() => resolve(false), OWNER_ANSWER_MS));
      if (await Promise.race([found, timer])) return;
    }
  }

  /**
   * Open the database here and serve everyone.
   * @param {boolean} takeover a previous owner existed (its handles may linger)
   */
  async becomeOwner(takeover) {
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        this.db = await openDatabase(this.path, this.options, attempt > 0);
        break;
      } catch (e) {
        if (!isLockedError(e) && !e.locked) throw e;
        if (performance.now() - started > TAKEOVER_PATIENCE_MS) throw e;
        await new Promise((r) => setTimeout(r, Math.min(20 * 2 ** attempt, 500)));
      }
    }
    const db = this.db;
    db.onChange = (tables) => this.emit({ type: 'changes', tables: [...tables] });
    const previousOwner = this.ownerId;
    this.role = 'owner';
    this.ownerId = WORKER_ID;
    if (takeover) await this.adoptOwnSessions(previousOwner);
    if (this.channel) this.channel.postMessage({ t: 'owner', from: WORKER_ID });
  }

  /** After a takeover: this worker's sessions move from the old owner to here. */
  async adoptOwnSessions(_previousOwner) {
    const pending = [...this.inflight.values()];
    this.inflight.clear();
    for (const ls of this.local) {
      const wasInTx = ls.inTx;
      ls.engineS = this.db.openSession();
      ls.inTx = false;
      ls.broken = wasInTx;
      if (ls.sync) await this.startSync(ls.sync);
    }
    for (const f of pending) {
      if (!f.ls.route) {
        f.resolve('{"ok":true}'); // this worker's own open/close/sync.start: done by the adoption above
        continue;
      }
      Promise.resolve(this.replay(f, (req, key) => this.answerHere(req, key, f.ls))).then(f.resolve);
    }
  }

  /**
   * What to do with a request whose owner went away mid-flight.
   * @param {any} f the in-flight record
   * @param {(req: any) => string | Promise<string>} run runs a request where the database now is
   */
  replay(f, run) {
    const req = f.req;
    if (req.op === 'tx' && req.action === 'commit') {
      // It either committed before the owner went away or it did not: look it up.
      return run({ op: 'tx.check', s: f.ls.engineS, key: { client: WORKER_ID, id: f.id } }, null);
    }
    if (f.inTx) {
      f.ls.broken = false; // this answer is the one that tells the app
      return aborted(`${req.op} ${req.action || ''}`.trim());
    }
    return run({ ...req, s: f.ls.engineS }, { client: WORKER_ID, id: f.id });
  }

  // -- requests from this worker's page ---------------------------------------------------

  /**
   * @param {LocalSession} ls
   * @param {any} req parsed request
   * @param {string} text the request as the page sent it
   * @returns {string | Promise<string>}
   */
  request(ls, req, text) {
    if (ls.broken) {
      // The owner died inside this session's transaction and nothing told the
      // app yet: this request was meant for that transaction.
      ls.broken = false;
      if (!(req.op === 'tx' && (req.action === 'begin' || req.action === 'rollback'))) return aborted(req.op);
      if (req.action === 'rollback') return '{"ok":true,"tx":false}';
    }
    if (this.role === 'owner') return this.answerHere({ ...req, s: ls.engineS }, null, ls);
    return this.forward(ls, req, text);
  }

  /** Run a request on this worker's database (owner). */
  answerHere(req, key, ls = null) {
    if (req.op.startsWith('sync.')) return this.syncOp(req, ls);
    const out = key ? this.db.answerOnce(req, key) : this.db.handle(req);
    if (ls) return this.track(ls, out);
    return out;
  }

  track(ls, out) {
    const note = (body) => {
      ls.inTx = body.includes('"tx":true');
      return body;
    };
    return typeof out === 'string' ? note(out) : out.then(note);
  }

  forward(ls, req, text) {
    const id = this.router.nextRequest++;
    return new Promise((resolve) => {
      this.inflight.set(id, { id, ls, req, text, inTx: ls.inTx, resolve: (body) => resolve(body) });
      this.send(id);
    }).then((body) => {
      if (typeof body === 'string') ls.inTx = body.includes('"tx":true');
      return body;
    });
  }

  send(id, control = false) {
    const f = this.inflight.get(id);
    // Sent when an owner is known and this worker's sessions are attached to it.
    if (!f || this.role !== 'follower' || !this.ownerId || (this.reattaching && !control)) return;
    this.channel.postMessage({ t: 'req', to: this.ownerId, from: WORKER_ID, id, s: f.ls.engineS, body: f.text });
  }

  // -- the channel ---------------------------------------------------------------------

  onChannel(msg) {
    if (!msg || msg.from === WORKER_ID) return;
    switch (msg.t) {
      case 'hello':
        if (this.role === 'owner') this.channel.postMessage({ t: 'owner', from: WORKER_ID });
        return;
      case 'owner':
        if (this.role === 'follower' && msg.from !== this.ownerId) this.follow(msg.from);
        return;
      case 'req':
        if (msg.to === WORKER_ID && this.role === 'owner') this.serveRemote(msg);
        return;
      case 'res':
        if (msg.to === WORKER_ID) {
          const f = this.inflight.get(msg.id);
          if (f) {
            this.inflight.delete(msg.id);
            f.resolve(msg.body);
          }
        }
        return;
      case 'event':
        if (this.role === 'follower') this.router.toPage(this.path, msg.event);
        return;
      default:
    }
  }

  /** A (new) owner answered: move this worker's sessions there. */
  async follow(ownerId) {
    const previous = this.ownerId;
    this.ownerId = ownerId;
    for (const resolve of this.ownerWaiters.splice(0)) resolve(true);
    if (previous === null) {
      for (const f of this.inflight.values()) this.send(f.id);
      return;
    }
    // The old owner is gone, and its sessions and open transactions with it.
    this.reattaching = true;
    const pending = [...this.inflight.values()];
    for (const f of pending) this.inflight.delete(f.id);
    try {
      for (const ls of this.local) {
        if (ls.inTx) ls.broken = true;
        ls.inTx = false;
        const opened = JSON.parse(await this.forwardRaw({ op: 'open', path: this.path, options: this.options }, true));
        if (opened.ok) {
          ls.engineS = opened.s;
          if (ls.sync) await this.forwardRaw({ op: 'sync.start', s: ls.engineS, ...ls.sync }, true);
        }
      }
    } finally {
      this.reattaching = false;
    }
    for (const f of pending) {
      if (!f.ls.route) {
        // This worker's own open/close/sync.start: redone by the reattachment above.
        f.resolve(f.req.op === 'open' ? await this.forwardRaw(f.req) : '{"ok":true}');
        continue;
      }
      if (f.req.op === 'tx' && f.req.action === 'commit') {
        // Same id: the owner looks up the key the dead owner may have recorded.
        f.req = { op: 'tx.check', key: { client: WORKER_ID, id: f.id } };
        f.text = JSON.stringify(f.req);
      } else if (f.inTx) {
        f.ls.broken = false;
        f.resolve(aborted(`${f.req.op} ${f.req.action || ''}`.trim()));
        continue;
      }
      this.inflight.set(f.id, f); // same id, so the new owner can tell a resend
    }
    for (const f of this.inflight.values()) this.send(f.id);
  }

  /** Send a request of this worker's own making (not the page's) to the owner. */
  forwardRaw(req, control = false) {
    const id = this.router.nextRequest++;
    return new Promise((resolve) => {
      this.inflight.set(id, { id, ls: { engineS: req.s }, req, text: JSON.stringify(req), inTx: false, resolve });
      this.send(id, control);
    });
  }

  /** Answer another tab's request (owner). */
  serveRemote(msg) {
    let req;
    try {
      req = parseRequest(msg.body);
    } catch (e) {
      this.reply(msg, errorJson(new EdgeError(`malformed request: ${e.message}`, SQLITE_MISUSE, 'InterfaceError'), false));
      return;
    }
    this.watchClient(msg.from);
    let out;
    try {
      if (req.op === 'open') {
        const s = this.db.openSession();
        this.remote.set(s, msg.from);
        out = this.router.openAnswer(this.db, s);
      } else if (req.op === 'close') {
        this.remote.delete(msg.s);
        this.db.endSession(msg.s);
        out = '{"ok":true}';
      } else if (!this.remote.has(msg.s) && req.op !== 'tx.check') {
        out = errorJson(new EdgeError('this session is gone from the owning tab; connect again', SQLITE_MISUSE, 'ProgrammingError'), false);
      } else {
        out = this.answerHere({ ...req, s: msg.s }, { client: msg.from, id: msg.id });
      }
    } catch (e) {
      out = errorJson(syncErrorData(e), false);
    }
    Promise.resolve(out).then((body) => this.reply(msg, body), (e) => this.reply(msg, errorJson(syncErrorData(e), false)));
  }

  reply(msg, body) {
    this.channel.postMessage({ t: 'res', to: msg.from, from: WORKER_ID, id: msg.id, body });
  }

  /** When a follower's tab goes away, end its sessions (and roll back its transaction). */
  watchClient(client) {
    if (this.watchedClients.has(client)) return;
    this.watchedClients.add(client);
    navigator.locks.request(`edgesql:client:${client}`, () => {
      this.watchedClients.delete(client);
      for (const [s, c] of [...this.remote]) {
        if (c !== client) continue;
        this.remote.delete(s);
        if (this.db) this.db.endSession(s);
      }
      this.maybeClose();
      return undefined;
    });
  }

  // -- sync and events ------------------------------------------------------------------

  async startSync(params) {
    if (this.db.syncer) return;
    const syncer = new Syncer(this.db, params, (event) => this.emit(event));
    await syncer.start();
    this.db.syncer = syncer;
  }

  async syncOp(req, ls) {
    try {
      switch (req.op) {
        case 'sync.start': {
          const params = { url: req.url, token: req.token || null, interval: req.interval };
          if (ls) ls.sync = params;
          await this.startSync(params);
          return '{"ok":true}';
        }
        case 'sync.now': {
          const r = await this.requireSyncer().sync();
          return JSON.stringify({ ok: true, pushed: r.pushed, pulled: r.pulled });
        }
        case 'sync.status':
          return JSON.stringify({ ok: true, status: this.requireSyncer().status() });
        default:
          throw new EdgeError(`unknown request ${req.op}`, SQLITE_MISUSE, 'InterfaceError');
      }
    } catch (e) {
      return errorJson(syncErrorData(e), false);
    }
  }

  requireSyncer() {
    if (!this.db.syncer) {
      throw new EdgeError('this database does not sync: connect with sync_url=... to sync with a primary',
        SQLITE_MISUSE, 'ProgrammingError');
    }
    return this.db.syncer;
  }

  /** Tell every tab's page (this one directly, the others through the channel). */
  emit(event) {
    this.router.toPage(this.path, event);
    if (this.channel && this.role === 'owner') this.channel.postMessage({ t: 'event', from: WORKER_ID, event });
  }

  // -- closing ----------------------------------------------------------------------------

  async closeSession(ls) {
    this.local.delete(ls);
    if (this.role === 'owner') this.db.endSession(ls.engineS);
    else if (this.role === 'follower') await this.forwardRaw({ op: 'close', s: ls.engineS });
    this.maybeClose();
  }

  /** Nobody here or elsewhere uses the database: close it and let another tab have it. */
  maybeClose() {
    if (this.local.size || this.remote.size || this.role === 'closed') return;
    const wasOwner = this.role === 'owner';
    this.role = 'closed';
    this.abort.abort();
    if (wasOwner && this.db) closeDatabase(this.db);
    this.db = null;
    if (this.release) this.release();
    if (this.channel) this.channel.close();
    this.router.routes.delete(this.router.key(this.path, this.options));
  }
}

/** All databases of this worker, and its page's sessions on them. */
export class Router {
  /** @param {(path: string, event: any) => void} toPage */
  constructor(toPage) {
    this.toPageFn = toPage;
    /** @type {Map<string, Route>} */
    this.routes = new Map();
    /** @type {Map<number, LocalSession>} */
    this.sessions = new Map();
    this.nextSession = 1;
    this.nextRequest = 1;
  }

  key(path, options) {
    return options.storage === 'memory' ? `memory:${path}` : path;
  }

  toPage(path, event) {
    this.toPageFn(path, event);
  }

  openAnswer(db, s) {
    return JSON.stringify({
      ok: true, s, storage: db.info.storage, persistent: db.info.persistent, warning: db.info.warning,
      path: db.info.name, sqlite_version: db.sqlite3.capi.sqlite3_libversion(),
    });
  }

  /** Open a session for this worker's page. */
  async open(req) {
    const path = req.path;
    const options = req.options || {};
    const key = this.key(path, options);
    let route = this.routes.get(key);
    if (!route || route.role === 'closed') {
      route = new Route(this, path, options);
      this.routes.set(key, route);
    }
    try {
      await route.ready;
    } catch (e) {
      this.routes.delete(key);
      throw e;
    }
    /** @type {LocalSession} */
    const ls = { id: this.nextSession++, route, engineS: 0, path, options, sync: null, inTx: false, broken: false };
    let answer;
    if (route.role === 'owner') {
      ls.engineS = route.db.openSession();
      answer = JSON.parse(this.openAnswer(route.db, ls.engineS));
    } else {
      answer = JSON.parse(await route.forwardRaw({ op: 'open', path, options }));
      if (!answer.ok) return JSON.stringify(answer);
      ls.engineS = answer.s;
    }
    route.local.add(ls);
    this.sessions.set(ls.id, ls);
    return JSON.stringify({ ...answer, s: ls.id, owner: route.role === 'owner' });
  }

  /** A request for one of this page's sessions. */
  request(req, text) {
    const ls = this.sessions.get(req.s);
    if (!ls) {
      return errorJson(new EdgeError('Cannot operate on a closed database: connect again with edgesql.connect()',
        SQLITE_MISUSE, 'ProgrammingError'), false);
    }
    if (req.op === 'close') {
      this.sessions.delete(req.s);
      return ls.route.closeSession(ls).then(() => '{"ok":true}');
    }
    return ls.route.request(ls, req, text);
  }

  /** The page's session's database, when this worker owns it (bench ops). */
  ownedDatabase(s) {
    const ls = this.sessions.get(s);
    return ls && ls.route.role === 'owner' ? { db: ls.route.db, s: ls.engineS } : null;
  }

  /** The browser came back online: wake the syncers this worker runs. */
  online() {
    for (const route of this.routes.values()) {
      if (route.role === 'owner' && route.db && route.db.syncer) route.db.syncer.wake();
    }
  }
}
