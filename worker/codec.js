/**
 * The wire codec between Python and the worker: JSON text with exact types.
 *
 * Python sends `json.dumps` output, so a float always carries a `.` or an
 * exponent ("1.0") and an integer never does, whatever its size. JSON.parse's
 * reviver sees that source text (Chromium 114+), so integral floats stay
 * REAL and integers beyond 2^53 become BigInt without ever passing through a
 * lossy Number. Bytes travel as {"$b": base64}, non-finite floats as
 * {"$f": "inf"|"-inf"|"nan"}.
 *
 * Statements from Python (execute, executemany, batch) come faster: the
 * request starts with {"w":1 and Python has already tagged the two values a
 * plain JSON.parse gets wrong, integral floats ({"$f": "3.0"}) and integers
 * beyond 2^53 ({"$i": "9007199254740993"}); they are parsed with plain
 * JSON.parse and the tagged objects turned back into values (untag), which
 * is about six times faster than a reviver called on every number.
 *
 * Responses are written the same way for Python's json.loads: integers as
 * digits, REALs always with a `.` or exponent ("-0.0", "1e+300",
 * "Infinity"), TEXT as a JSON string (NUL included), BLOB as {"$b": base64}.
 */

/** A REAL whose value is integral (or -0.0, ±inf, nan): binds as a double. */
export class Real {
  /** @param {number} value */
  constructor(value) { this.value = value; }
}

const TWO53 = 2 ** 53;

const hasNativeBase64 = typeof Uint8Array.prototype.toBase64 === 'function'
  && typeof Uint8Array.fromBase64 === 'function';

/** @param {Uint8Array} bytes @returns {string} */
export function toBase64(bytes) {
  if (hasNativeBase64) return bytes.toBase64();
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** @param {string} text @returns {Uint8Array} */
export function fromBase64(text) {
  if (hasNativeBase64) return Uint8Array.fromBase64(text);
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * JSON.parse reviver keeping Python's types.
 * @param {string} _key @param {any} value @param {{source?: string}} [ctx]
 */
function revive(_key, value, ctx) {
  if (typeof value === 'number') {
    const src = ctx && ctx.source;
    if (src === undefined) return value;
    if (/[.eE]/.test(src)) {
      return (Number.isInteger(value) || Object.is(value, -0)) ? new Real(value) : value;
    }
    return Math.abs(value) < TWO53 ? value : BigInt(src);
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    if (typeof value.$b === 'string') return fromBase64(value.$b);
    if (typeof value.$f === 'string') {
      return new Real(floatOf(value.$f));
    }
  }
  return value;
}

/** Python's marker for a request with tagged values (_wire.PLAIN). */
const PLAIN_PREFIX = '{"w":1,';

/** @param {string} f Python's repr of a float: "3.0", "-0.0", "inf", "-inf", "nan" */
function floatOf(f) {
  return f === 'inf' ? Infinity : f === '-inf' ? -Infinity : f === 'nan' ? NaN : Number(f);
}

/** A tagged value ({$b}, {$f}, {$i}) as the value it stands for, or undefined. */
function tagged(v) {
  if (typeof v.$b === 'string') return fromBase64(v.$b);
  if (typeof v.$f === 'string') return new Real(floatOf(v.$f));
  if (typeof v.$i === 'string') return BigInt(v.$i);
  return undefined;
}

/** Replace tagged objects inside `container` (an array or an object), in place. */
function untag(container) {
  if (Array.isArray(container)) {
    for (let i = 0; i < container.length; i++) {
      const v = container[i];
      if (v !== null && typeof v === 'object') container[i] = untagValue(v);
    }
  } else {
    for (const k in container) {
      const v = container[k];
      if (v !== null && typeof v === 'object') container[k] = untagValue(v);
    }
  }
}

function untagValue(v) {
  if (!Array.isArray(v)) {
    const t = tagged(v);
    if (t !== undefined) return t;
  }
  untag(v);
  return v;
}

/** @param {string} text */
export function parseRequest(text) {
  if (text.startsWith(PLAIN_PREFIX)) {
    const req = JSON.parse(text);
    untag(req);
    return req;
  }
  return JSON.parse(text, revive);
}

/** A JS number known to be a REAL, written so Python reads a float. */
export function realToJson(d) {
  if (Number.isFinite(d)) {
    if (Object.is(d, -0)) return '-0.0';
    const s = String(d);
    return /[.e]/.test(s) ? s : s + '.0';
  }
  return d > 0 ? 'Infinity' : d < 0 ? '-Infinity' : 'NaN';
}

/** Encode any JS value the way Python should read it (used for non-row data). */
export function valueToJson(v) {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'bigint': return v.toString();
    case 'number': return Number.isInteger(v) ? String(v) : realToJson(v);
    case 'string': return JSON.stringify(v);
    case 'boolean': return v ? 'true' : 'false';
    default:
      if (v instanceof Real) return realToJson(v.value);
      if (v instanceof Uint8Array) return `{"$b":"${toBase64(v)}"}`;
      return JSON.stringify(v);
  }
}
