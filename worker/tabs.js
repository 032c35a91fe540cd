/**
 * Many tabs, one database: owner election, request routing and handoff.
 *
 * Only one tab can hold a database's OPFS files (opfs-sahpool keeps every
 * handle open). For each database name the tabs' DB workers elect an owner
 * with a Web Lock (`edgesql:db:<name>`). The owner opens the database, runs
 * sync (sync-host.js), and answers every tab; the others are followers: they
 * forward their page's requests over a BroadcastChannel (`edgesql:db:<name>`)
 * and relay the owner's change events to their page. Every follower also
 * queues for the lock, so when the owner's tab closes or crashes (the browser
 * then releases its locks) one of them takes over, and the rest follow the
 * new owner.
 *
 * A request in flight when the owner goes away is either completed exactly
 * once or fails with a clear, retryable error: request-log.js keeps the
 * owner's record of answered writes and says what becomes of each request in
 * flight, the same whether this worker takes over or follows a new owner.
 *
 * Channel messages (all carry `from`, the sender's worker id):
 *   {t: 'hello'}                          who owns this database?
 *   {t: 'owner'}                          I do (sent on becoming owner, and to answer hello)
 *   {t: 'req', to, id, s, body}           a follower's request (body: the page's JSON text)
 *   {t: 'res', to, id, body}              the owner's answer
 *   {t: 'event', event}                   changes committed / sync status (owner to all)
 *   {t: 'interrupt', to, s, gen}          a follower's session was interrupted (db.interrupt()):
 *                                         its requests queued behind a transaction fail now; a
 *                                         running one is stopped through the signal file (signals.js)
 */

import { parseRequest } from './codec.js';
import { errorJson } from './dispatch.js';
import { EdgeError, SQLITE_MISUSE } from './errors.js';
import { afterHandoff, afterLostTransaction } from './request-log.js';
import { openSignals } from './signals.js';
import { closeDatabase, isLockedError, openDatabase, poolName } from './store.js';
import { startSync, syncErrorData, syncRequest } from './sync-host.js';

/** This worker's id: names it on the channel and in request keys. */
export const WORKER_ID = Array.from(crypto.getRandomValues(new Uint8Array(8)),
  (b) => b.toString(16).padStart(2, '0')).join('');
/** How long a follower waits for an owner to say so before trying the lock again. */
const OWNER_ANSWER_MS = 1000;
/** A dead owner's OPFS handles can outlive its lock by a moment: retry opening for this long. */
const TAKEOVER_PATIENCE_MS = 10_000;

// Each worker holds a lock named after itself for its whole life: an owner
// queued on it learns when a follower's tab is gone and ends its sessions.
navigator.locks.request(`edgesql:client:${WORKER_ID}`, () => new Promise(() => {}));

/** @typedef {import('./router.js').LocalSession} LocalSession */

/** Where one database lives for this worker: here (owner) or in another tab (follower). */
export class Route {
  /**
   * @param {import('./router.js').Router} router
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
    /** The database's interrupt signal file (signals.js): the owner reads it, the others write it. */
    this.signalName = poolName(router.key(path, options));
    this.signals = openSignals(this.signalName);
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
    db.interrupts.file = await this.signals;
    db.onChange = (tables) => this.emit({ type: 'changes', tables: [...tables] });
    const previousOwner = this.ownerId;
    this.role = 'owner';
    this.ownerId = WORKER_ID;
    if (takeover) await this.adoptOwnSessions();
    if (this.channel) this.channel.postMessage({ t: 'owner', from: WORKER_ID });
  }

  /** After a takeover: this worker's sessions move from the old owner to here. */
  async adoptOwnSessions() {
    const pending = [...this.inflight.values()];
    this.inflight.clear();
    for (const ls of this.local) {
      const wasInTx = ls.inTx;
      ls.engineS = this.db.openSession(ls.options.ik);
      ls.inTx = false;
      ls.broken = wasInTx;
      if (ls.sync) await startSync(this.db, ls.sync, (event) => this.emit(event));
    }
    for (const f of pending) {
      if (!f.ls.route) {
        // This worker's own open is opened here; its close and sync.start were done by the adoption above.
        f.resolve(f.req.op === 'open' ? this.router.openAnswer(this.db, this.db.openSession(f.req.options?.ik)) : '{"ok":true}');
        continue;
      }
      this.replay(f, (req, key) => {
        Promise.resolve(this.answerHere({ ...req, s: f.ls.engineS, $page: true }, key, f.ls)).then(f.resolve);
      });
    }
  }

  /**
   * A page's request that was in flight to an owner that went away, once this
   * worker's sessions are attached where the database now is: answered at
   * once or sent again, by request-log.js's one rule.
   * @param {any} f the in-flight record
   * @param {(req: any, key: import('./request-log.js').RequestKey) => void} resend
   *   sends `req` (the request, or what replaces it) again under the same key
   */
  replay(f, resend) {
    const key = { client: WORKER_ID, id: f.id };
    const next = afterHandoff(f.req, f.inTx, key);
    if ('answer' in next) {
      f.ls.broken = false; // this answer is the one that tells the app
      f.resolve(next.answer);
    } else {
      resend(next.resend, key);
    }
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
      ls.broken = false;
      const answer = afterLostTransaction(req);
      if (answer !== null) return answer;
    }
    // $page: the request comes from this worker's page, whose interrupts arrive through its SharedArrayBuffer.
    if (this.role === 'owner') return this.answerHere({ ...req, s: ls.engineS, $page: true }, null, ls);
    return this.forward(ls, req, text);
  }

  /**
   * This worker's page interrupted one of its sessions (db.interrupt()). A
   * statement running here was stopped through the SharedArrayBuffer already;
   * requests queued here fail now. On another tab's owner, the signal file
   * stops a running statement and the message answers queued ones.
   * @param {LocalSession} ls @param {number} gen
   */
  async interrupt(ls, gen) {
    if (this.role === 'owner') {
      this.db.sessions.interrupted(ls.engineS, gen);
      return;
    }
    const file = await this.signals;
    if (file && ls.options.ik) file.write(ls.options.ik, gen);
    if (this.role === 'follower' && this.ownerId) {
      this.channel.postMessage({ t: 'interrupt', to: this.ownerId, from: WORKER_ID, s: ls.engineS, gen });
    }
  }

  /** Run a request on this worker's database (owner). */
  answerHere(req, key, ls = null) {
    if (req.op.startsWith('sync.')) return syncRequest(this.db, req, ls, (event) => this.emit(event));
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
      case 'interrupt':
        if (msg.to === WORKER_ID && this.role === 'owner') this.db.sessions.interrupted(msg.s, msg.gen);
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
      this.replay(f, (req) => {
        if (req !== f.req) {
          f.req = req;
          f.text = JSON.stringify(req); // else the page's own text goes again, its exact types with it
        }
        this.inflight.set(f.id, f); // same id: the key the new owner looks up
      });
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
        const s = this.db.openSession(req.options && req.options.ik);
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

  // -- events ---------------------------------------------------------------------------

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
    this.signals.then((file) => file && file.close());
    this.router.routes.delete(this.router.key(this.path, this.options));
  }
}
