/**
 * Layout of the SharedArrayBuffer that carries synchronous calls from the
 * page's Python to the DB worker (the fast path; postMessage is the fallback).
 *
 * The page writes a request, bumps REQ_SEQ and notifies; the worker answers
 * into the same data area, sets RESP_SEQ to that sequence and notifies. Only
 * one call is in flight per page at a time, so one area serves both ways.
 * A response too big for the area is sent by postMessage instead
 * (RESP_LEN = RESP_BY_MESSAGE).
 */

export const REQ_SEQ = 0;
export const RESP_SEQ = 1;
export const REQ_LEN = 2;
export const RESP_LEN = 3;
/** Bumped (and REQ_SEQ notified) to pull a worker out of its hot wait to read postMessages. */
export const KICK = 4;
export const HEADER_BYTES = 64;
/** Requests and responses up to this size use the fast path. */
export const DATA_BYTES = 1 << 20;
export const RESP_BY_MESSAGE = -1;
