/**
 * The page's end of the DB worker: what Python in Pyodide calls.
 *
 *   const bridge = getBridge();                  // one worker per page
 *   const out = bridge.callSync(requestText);    // string, or a ticket number
 *   const text = typeof out === 'string' ? out : await bridge.wait(out);
 *
 * Where the page is cross-origin isolated, a call goes through a
 * SharedArrayBuffer: the page spins for up to SPIN_MS on the answer, which
 * usually arrives in well under 0.1 ms, so Python gets it without an await
 * round trip. Otherwise (no isolation, a large request, a slow query, or a
 * call made while another holds the buffer) the call gets a ticket and its
 * answer comes by postMessage or Atomics.waitAsync. Calls from one task are
 * awaited one after the other, so each task's calls keep their order.
 *
 * `interrupt(s, key, gen, name)` stops what a connection runs: the signal
 * goes where the worker running the statement reads it while it runs
 * (worker/signals.js): this page's SharedArrayBuffer, or, without one, the
 * database's signal file through a small worker of its own.
 */

import * as L from '../worker/sab-layout.js';
import { pack, SIGNAL_SLOTS } from '../worker/signals.js';

/** How long the page spins for a fast-path answer before it stops blocking the page. */
const SPIN_MS = 1.0;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Bridge {
  /** @param {string | URL} workerUrl */
  constructor(workerUrl) {
    this.worker = new Worker(workerUrl, { type: 'module', name: 'edgesql-db' });
    this.nextTicket = 1;
    /** Answers not yet collected by wait(). @type {Map<number, string>} */
    this.results = new Map();
    /** @type {Map<number, (text: string) => void>} */
    this.waiters = new Map();
    /** Tickets sent by postMessage and not answered yet. */
    this.pending = new Set();
    /** Tickets whose caller stopped waiting (a deadline passed): their answers are dropped. */
    this.abandoned = new Set();
    /** The worker that writes interrupt signals for a page without a SharedArrayBuffer, once needed. */
    this.signalWriter = null;
    /** The one call that may use the SharedArrayBuffer at a time, and its ticket once slow. */
    this.sabBusy = false;
    this.sabTicket = 0;
    this.failure = null;
    /** @type {Set<(msg: any) => void>} */
    this.listeners = new Set();
    this.worker.onmessage = (ev) => this.onMessage(ev.data);
    globalThis.addEventListener?.('online', () => this.worker.postMessage({ type: 'online' }));
    // The worker's sync shows the device offline and, while the page is visible, retries an
    // unreachable primary every second (worker/sync.js): tell it both, now and on each change.
    const pageState = () => this.worker.postMessage({
      type: 'page', online: globalThis.navigator?.onLine !== false,
      visible: globalThis.document?.visibilityState !== 'hidden',
    });
    globalThis.addEventListener?.('offline', pageState);
    globalThis.addEventListener?.('online', pageState);
    globalThis.document?.addEventListener?.('visibilitychange', pageState);
    pageState();
    this.worker.onerror = (ev) => this.fail(
      `the edgesql worker failed to start or crashed: ${ev.message || 'unknown error'}; reload the page`);
    this.sab = null;
    if (globalThis.crossOriginIsolated && typeof SharedArrayBuffer === 'function') {
      this.sab = new SharedArrayBuffer(L.HEADER_BYTES + L.DATA_BYTES);
      this.ctl = new Int32Array(this.sab, 0, L.HEADER_BYTES / 4);
      this.data = new Uint8Array(this.sab, L.HEADER_BYTES, L.DATA_BYTES);
      this.slots = new BigUint64Array(new SharedArrayBuffer(SIGNAL_SLOTS * 8));
      this.worker.postMessage({ type: 'sab', buffer: this.sab, slots: this.slots.buffer });
    }
  }

  /**
   * Stop what session `s` runs now (db.interrupt()): its connection's key and
   * its count of interrupts `gen`; `name` names the database's signal file.
   * @param {number} s @param {number} key @param {number} gen @param {string} name
   */
  interrupt(s, key, gen, name) {
    if (this.sab) {
      Atomics.store(this.slots, key % SIGNAL_SLOTS, pack(key, gen));
      // Pull the worker out of its hot Atomics.wait so it reads the message below now.
      Atomics.add(this.ctl, L.KICK, 1);
      Atomics.notify(this.ctl, L.REQ_SEQ);
    } else {
      if (!this.signalWriter) {
        this.signalWriter = new Worker(new URL('../worker/signal-writer.js', import.meta.url),
          { type: 'module', name: 'edgesql-signals' });
      }
      this.signalWriter.postMessage({ name, key, gen });
    }
    // Requests of the session still queued in a worker are answered there.
    this.worker.postMessage({ type: 'interrupt', s, gen });
  }

  /** Open database `path` in the worker now, ahead of connect() (while Python starts). @param {string} path */
  warm(path) {
    this.worker.postMessage({ type: 'warm', path });
  }

  /** Stop waiting for the answer to `ticket`; it is dropped when it comes. @param {number} ticket */
  abandon(ticket) {
    this.waiters.delete(ticket);
    if (!this.results.delete(ticket)) this.abandoned.add(ticket);
  }

  /** True when calls can be answered synchronously (a cross-origin isolated page). */
  get fastPath() { return this.sab !== null; }

  /**
   * Make a call. Returns the answer text when it came back at once, else a
   * ticket number to pass to wait(). Calls that overlap (a long sync while the
   * app queries) go by postMessage, each answered as soon as it is done.
   * @param {string} text request JSON
   * @returns {string | number}
   */
  callSync(text) {
    if (this.failure) return this.failure;
    if (this.sab && !this.sabBusy) {
      const bytes = encoder.encode(text);
      if (bytes.length <= L.DATA_BYTES) {
        this.sabBusy = true;
        return this.sabCall(bytes);
      }
    }
    return this.callAsync(text);
  }

  /** A call answered by postMessage (for long requests: they never hold the fast path). @returns {number} */
  callAsync(text) {
    if (this.failure) {
      const ticket = this.nextTicket++;
      this.settle(ticket, this.failure);
      return ticket;
    }
    const ticket = this.nextTicket++;
    this.pending.add(ticket);
    if (this.sab) {
      // Pull the worker out of its hot Atomics.wait so it reads this message now.
      Atomics.add(this.ctl, L.KICK, 1);
      Atomics.notify(this.ctl, L.REQ_SEQ);
    }
    this.worker.postMessage({ type: 'req', id: ticket, body: text });
    return ticket;
  }

  /** The answer to a call that returned a ticket. @param {number} ticket @returns {Promise<string>} */
  wait(ticket) {
    const ready = this.results.get(ticket);
    if (ready !== undefined) {
      this.results.delete(ticket);
      return Promise.resolve(ready);
    }
    return new Promise((resolve) => this.waiters.set(ticket, resolve));
  }

  settle(ticket, text) {
    this.pending.delete(ticket);
    if (this.abandoned.delete(ticket)) return;
    const waiter = this.waiters.get(ticket);
    if (waiter) {
      this.waiters.delete(ticket);
      waiter(text);
    } else {
      this.results.set(ticket, text);
    }
  }

  fail(message) {
    this.failure = JSON.stringify({
      ok: false, error: { code: 1, name: 'SQLITE_ERROR', message, kind: 'OperationalError' },
    });
    const tickets = [...this.pending, ...(this.sabTicket ? [this.sabTicket] : [])];
    for (const t of tickets) this.settle(t, this.failure);
    this.sabBusy = false;
    this.sabTicket = 0;
  }

  /**
   * Listen to the worker's events: {db, event: {type: 'changes', tables} | {type: 'status'}}.
   * @param {(msg: any) => void} fn @returns {() => void} unsubscribe
   */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onMessage(msg) {
    if (msg.type === 'event') {
      for (const fn of this.listeners) {
        try {
          fn(msg);
        } catch (e) {
          console.error('[edgesql] event listener failed', e);
        }
      }
      return;
    }
    if (msg.type !== 'res') return;
    if (msg.id < 0) {
      // A fast-path answer too big for the buffer, sent as a message.
      const ticket = this.sabTicket;
      this.sabTicket = 0;
      this.sabBusy = false;
      this.settle(ticket, msg.body);
      return;
    }
    this.settle(msg.id, msg.body);
  }

  sabCall(bytes) {
    const ctl = this.ctl;
    this.data.set(bytes);
    Atomics.store(ctl, L.REQ_LEN, bytes.length);
    const seq = (Atomics.load(ctl, L.REQ_SEQ) + 1) | 0;
    Atomics.store(ctl, L.REQ_SEQ, seq);
    Atomics.notify(ctl, L.REQ_SEQ);
    const deadline = performance.now() + SPIN_MS;
    while (Atomics.load(ctl, L.RESP_SEQ) !== seq) {
      if (performance.now() > deadline) {
        // A slow call: stop blocking the page and wait for it asynchronously.
        const ticket = this.nextTicket++;
        this.sabTicket = ticket;
        this.awaitSab(seq, ticket);
        return ticket;
      }
    }
    if (Atomics.load(ctl, L.RESP_LEN) === L.RESP_BY_MESSAGE) {
      const ticket = this.nextTicket++;
      this.sabTicket = ticket;
      return ticket;
    }
    const text = this.readSab();
    this.sabBusy = false;
    return text;
  }

  async awaitSab(seq, ticket) {
    const ctl = this.ctl;
    for (;;) {
      const seen = Atomics.load(ctl, L.RESP_SEQ);
      if (seen === seq) break;
      const w = Atomics.waitAsync(ctl, L.RESP_SEQ, seen);
      if (w.async) await w.value;
    }
    if (Atomics.load(ctl, L.RESP_LEN) === L.RESP_BY_MESSAGE) return; // onMessage settles it
    const text = this.readSab();
    this.sabTicket = 0;
    this.sabBusy = false;
    this.settle(ticket, text);
  }

  readSab() {
    const n = Atomics.load(this.ctl, L.RESP_LEN);
    // TextDecoder refuses views of a SharedArrayBuffer: copy out first.
    return decoder.decode(this.data.slice(0, n));
  }
}

let bridge = null;

/** The page's bridge, created on first use. */
export function getBridge() {
  if (!bridge) bridge = new Bridge(new URL('../worker/db-worker.js', import.meta.url));
  return bridge;
}
