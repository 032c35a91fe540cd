/**
 * The DB worker: owns SQLite-Wasm and the OPFS databases of this tab.
 *
 * Messages from the page (postMessage):
 *   {type: 'sab', buffer, slots} start serving synchronous calls through a SharedArrayBuffer;
 *                                `slots`: the page's interrupt signals (signals.js, interrupts.js)
 *   {type: 'req', id, body}      a request (JSON text, see codec.js); answered {type: 'res', id, body}
 *   {type: 'interrupt', s, gen}  the page interrupted session s (db.interrupt()), now at gen
 *   {type: 'warm', path}         the page will open this database soon: open it now, while Python starts
 *   {type: 'online'}             the browser is back online: sync now
 *   {type: 'page', online, visible}  the page's navigator.onLine and visibility (sync.js: the
 *                                status's device_online, and how soon an unreachable primary is retried)
 * Requests: open, execute, executemany, batch, script, tx, tables,
 * cursor.open, cursor.next, cursor.close, close (dispatch.js), sync.start,
 * sync.now, sync.status (sync-host.js); every
 * answer is JSON text {ok: true, ...} or {ok: false, error: {code, name, message, kind}}.
 *
 * Databases are opened by store.js (opfs-sahpool, or memory where OPFS is
 * missing, visibly) and shared between tabs by router.js and tabs.js: one
 * tab's worker owns each database and the others route to it.
 */

import { parseRequest } from './codec.js';
import { errorJson } from './dispatch.js';
import { EdgeError, SQLITE_CANTOPEN, SQLITE_MISUSE } from './errors.js';
import { addedOp } from './extra-ops.js';
import { setPageSlots } from './interrupts.js';
import { Router } from './router.js';
import * as L from './sab-layout.js';
import { initSqlite } from './store.js';
import { setPageState, sliceHalfApplied, syncInProgress } from './sync.js';

/** After answering a fast-path call, block this long for the next one before yielding. */
const HOT_WAIT_MS = 3;

/**
 * Serve fast-path calls back to back for at most this long, then give the
 * event loop one turn even if calls keep coming: a page querying without
 * pause must not starve the sync loop (a pull's next slice, its fetches),
 * other tabs' routed requests or timers, which all run on the event loop.
 * A turn costs the calls around it: the one that arrives during the turn
 * misses the page's 0.5 ms spin, and the few after it pay the slower wake-up
 * until the rhythm is back. So the budget is long while no sync runs and
 * short during one. Measured, back-to-back point queries with no sync, p99:
 * 0.23-0.98 ms without a budget, 0.29-0.54 ms with 250 ms, 0.9-1.5 ms with
 * 10 ms. A 100k-row pull beside back-to-back queries (docs/benchmarks-sync.md):
 * without a budget 85 s; with 10 ms 19.5 s and a query p99 of 7.7 ms (both
 * with the older apply, 54 us a change). With today's (about 34 us): 3 ms,
 * 9.0 s and 9.2 ms; 3 ms with slices in two halves (sync.js, 0.5 ms between
 * them) 10.2-10.6 s and 7.0-7.6 ms; 2 ms and halves 10.1 s and 8.5 ms.
 */
const HOT_BUDGET_MS = 250;
const HOT_BUDGET_SYNC_MS = 3;
/** Between the two halves of a pulled slice (worker/sync.js): serve what waits, then finish the slice. */
const HOT_BUDGET_HALF_MS = 0.5;

/** Every database of this tab, here or routed to the tab that owns it (router.js). */
const router = new Router((path, event) => postMessage({ type: 'event', db: path, event }));

// SQLite-Wasm takes a while to fetch and compile: start now, while the page's Python starts.
initSqlite();

function checkPath(path) {
  if (!path || typeof path !== 'string' || path.includes('/') || path === '.' || path === '..') {
    throw new EdgeError(`invalid database name ${JSON.stringify(path)}: use a plain file name such as "app.db"`,
      SQLITE_CANTOPEN, 'ProgrammingError');
  }
}

/**
 * Answer one request text.
 * @param {string} text
 * @returns {string | Promise<string>}
 */
function handleText(text) {
  let req;
  try {
    req = parseRequest(text);
  } catch (e) {
    return errorJson(new EdgeError(`malformed request: ${e.message}`, SQLITE_MISUSE, 'InterfaceError'), false);
  }
  try {
    if (req.op === 'open') {
      checkPath(req.path);
      return router.open(req).catch((e) => errorJson(e, false));
    }
    const added = addedOp(req.op);
    if (added) return added(req, router);
    return router.request(req, text);
  } catch (e) {
    return errorJson(e, false);
  }
}

// -- the SharedArrayBuffer fast path --------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A macrotask boundary (setTimeout would be clamped to 4 ms when nested). */
function yieldToEventLoop() {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => resolve();
    ch.port2.postMessage(0);
  });
}

async function serveSab(buffer) {
  const ctl = new Int32Array(buffer, 0, L.HEADER_BYTES / 4);
  const data = new Uint8Array(buffer, L.HEADER_BYTES, L.DATA_BYTES);
  // The page may have written its first call before this worker was listening.
  let seen = Atomics.load(ctl, L.RESP_SEQ);
  // The hot loop was left for a kick or its time budget, not for idleness: the
  // page is most likely still calling, and its next call should not pay for
  // waking a worker that sleeps in its event loop (waitAsync: slower than the
  // page's spin, so that call would wait on the page's event loop too).
  let warm = false;
  for (;;) {
    if (Atomics.load(ctl, L.REQ_SEQ) === seen && !warm) {
      const w = Atomics.waitAsync(ctl, L.REQ_SEQ, seen);
      if (w.async) await w.value;
      if (Atomics.load(ctl, L.REQ_SEQ) === seen) continue; // a kick: messages were handled meanwhile
    } else {
      await yieldToEventLoop(); // let the messages in first
      if (warm && Atomics.load(ctl, L.REQ_SEQ) === seen) {
        // Wait for the page's next call as the hot loop does.
        const kick = Atomics.load(ctl, L.KICK);
        Atomics.wait(ctl, L.REQ_SEQ, seen, HOT_WAIT_MS);
        if (Atomics.load(ctl, L.REQ_SEQ) === seen) {
          warm = Atomics.load(ctl, L.KICK) !== kick; // kicked: one more turn for the message
          continue;
        }
      }
      warm = false;
    }
    // Serve calls back to back; between them, block briefly in Atomics.wait
    // (cheaper to wake than waitAsync) before going back to the event loop.
    const budget = sliceHalfApplied() ? HOT_BUDGET_HALF_MS : syncInProgress() ? HOT_BUDGET_SYNC_MS : HOT_BUDGET_MS;
    const hotUntil = performance.now() + budget;
    for (;;) {
      seen = Atomics.load(ctl, L.REQ_SEQ);
      const n = Atomics.load(ctl, L.REQ_LEN);
      // TextDecoder refuses views of a SharedArrayBuffer: copy out first.
      const text = decoder.decode(data.slice(0, n));
      let body = handleText(text);
      if (typeof body !== 'string') body = await body;
      const bytes = encoder.encode(body);
      if (bytes.length <= L.DATA_BYTES) {
        data.set(bytes);
        Atomics.store(ctl, L.RESP_LEN, bytes.length);
      } else {
        Atomics.store(ctl, L.RESP_LEN, L.RESP_BY_MESSAGE);
        postMessage({ type: 'res', id: -seen, body });
      }
      Atomics.store(ctl, L.RESP_SEQ, seen);
      Atomics.notify(ctl, L.RESP_SEQ);
      const kick = Atomics.load(ctl, L.KICK);
      if (Atomics.wait(ctl, L.REQ_SEQ, seen, HOT_WAIT_MS) === 'timed-out') break;
      if (Atomics.load(ctl, L.REQ_SEQ) === seen || Atomics.load(ctl, L.KICK) !== kick) {
        warm = true;
        break;
      }
      if (performance.now() > hotUntil) {
        warm = true;
        break; // the next call is served after one event-loop turn
      }
    }
  }
}

// -- messages -----------------------------------------------------------------------

self.onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type === 'sab') {
    if (msg.slots) setPageSlots(new BigUint64Array(msg.slots));
    serveSab(msg.buffer);
    return;
  }
  if (msg.type === 'interrupt') {
    router.interrupt(msg.s, msg.gen);
    return;
  }
  if (msg.type === 'warm') {
    try {
      checkPath(msg.path);
      router.warm(msg.path);
    } catch (e) {
      console.warn('[edgesql] cannot open ahead:', e.message);
    }
    return;
  }
  if (msg.type === 'online') {
    // Relayed by the page: not every browser fires 'online' in workers.
    setPageState({ online: true });
    router.online();
    return;
  }
  if (msg.type === 'page') {
    // Back online or back in view: sync now rather than at the end of a backoff.
    if (setPageState(msg)) router.online();
    return;
  }
  if (msg.type === 'req') {
    let body = handleText(msg.body);
    if (typeof body !== 'string') body = await body;
    postMessage({ type: 'res', id: msg.id, body });
  }
};

postMessage({ type: 'ready' });
