/**
 * All databases of this worker, and its page's sessions on them.
 *
 * The page knows one session number per connect(); behind it, the session
 * lives on this worker's database (owner) or on another tab's, through its
 * Route (tabs.js), and may move from one to the other on a handoff. So the
 * Router maps the page's session numbers to Routes, opens a Route per
 * database name, and answers for sessions the page closed.
 */

import { errorJson } from './dispatch.js';
import { EdgeError, SQLITE_MISUSE } from './errors.js';
import { wakeSync } from './sync-host.js';
import { Route } from './tabs.js';

/**
 * One session of this worker's page on a database, wherever the database is:
 * `engineS` is its session number there; `inTx` whether it holds a
 * transaction; `broken` that its transaction died with an owner and the app
 * has not been told yet; `sync` its sync parameters, to start sync again
 * after a takeover.
 * @typedef {{id: number, route: Route, engineS: number, path: string, options: any,
 *   sync: any, inTx: boolean, broken: boolean}} LocalSession
 */

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
      ls.engineS = route.db.openSession(options.ik);
      answer = JSON.parse(this.openAnswer(route.db, ls.engineS));
    } else {
      answer = JSON.parse(await route.forwardRaw({ op: 'open', path, options }));
      if (!answer.ok) return JSON.stringify(answer);
      ls.engineS = answer.s;
    }
    route.local.add(ls);
    this.sessions.set(ls.id, ls);
    // signals: the name of the database's interrupt signal file, for a page without a SharedArrayBuffer.
    return JSON.stringify({ ...answer, s: ls.id, owner: route.role === 'owner', signals: route.signalName });
  }

  /** The page interrupted its session `s` (db.interrupt()); its count of interrupts is now `gen`. */
  interrupt(s, gen) {
    const ls = this.sessions.get(s);
    if (ls) ls.route.interrupt(ls, gen);
  }

  /**
   * Open `path` ahead of the page's connect() (with the default options), so
   * that the database is open, or its owner found, when Python asks for it.
   * @param {string} path
   */
  warm(path) {
    const options = { storage: 'opfs', durability: 'normal' };
    const key = this.key(path, options);
    if (this.routes.has(key)) return;
    const route = new Route(this, path, options);
    this.routes.set(key, route);
    route.ready.catch(() => {
      if (this.routes.get(key) === route) this.routes.delete(key); // connect() will try again, and say why
    });
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

  /** The page's session's database, when this worker owns it (for ops a page adds: extra-ops.js). */
  ownedDatabase(s) {
    const ls = this.sessions.get(s);
    return ls && ls.route.role === 'owner' ? { db: ls.route.db, s: ls.engineS } : null;
  }

  /** The browser came back online: wake the syncers this worker runs. */
  online() {
    for (const route of this.routes.values()) {
      if (route.role === 'owner') wakeSync(route.db);
    }
  }
}
