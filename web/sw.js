/**
 * The edgesql service worker: the app starts with no network once it has been visited.
 *
 * serve.py serves this file at /sw.js with the precache list put in place of
 * the placeholder below (py/edgesql/server/pwa.py builds the list from globs;
 * it is never written by hand): {version, size_bytes, entries: [{url, revision, size}]}.
 *
 * - install: every entry goes into the cache "edgesql-precache-<version>".
 *   An entry whose (url, revision) an older version already holds is copied
 *   from there, so an update downloads only what changed. Then open pages are
 *   told that a new version is waiting ({type: 'edgesql:update-ready'}).
 * - activate: older edgesql caches are deleted; open pages are claimed.
 * - fetch: precached URLs are answered from the cache (the query string is
 *   ignored: all of them are static files), everything else same-origin from
 *   the network. Either way COOP/COEP/CORP are added to the response, so a page
 *   the worker serves is cross-origin isolated even where the host sets no
 *   headers. API routes (/sync, /schema) are never touched, never cached, and
 *   where the browser can, never even reach this worker (static routes).
 * - message {type: 'edgesql:skip-waiting'} from a page activates a waiting version;
 *   {type: 'edgesql:version'} is answered on the given MessagePort.
 */

const PRECACHE = self.__EDGESQL_PRECACHE__;
if (!PRECACHE || !Array.isArray(PRECACHE.entries)) {
  throw new Error('sw.js was served without its precache list: serve it through serve.py (/sw.js)');
}

const CACHE_PREFIX = 'edgesql-precache-';
const CACHE_NAME = CACHE_PREFIX + PRECACHE.version;

/** Paths (and everything under them) left to the network, untouched: the sync API and the worker's own files. */
const NETWORK_ONLY = ['/sync', '/schema', '/sw.js', '/precache-manifest.json'];

const ISOLATION_HEADERS = [
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Embedder-Policy', 'require-corp'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
];

/** The cache key of an entry: its URL with the revision, so versions never mix. */
const cacheKey = (entry) => new URL(`${entry.url}?__rev=${entry.revision}`, self.location.origin).href;
const keyByPath = new Map(PRECACHE.entries.map((e) => [e.url, cacheKey(e)]));

const isNetworkOnly = (path) => NETWORK_ONLY.some((p) => path === p || path.startsWith(p + '/'));

async function precache() {
  const cache = await caches.open(CACHE_NAME);
  await Promise.all(PRECACHE.entries.map(async (entry) => {
    const key = cacheKey(entry);
    // This version's cache (an install that was interrupted) or an older one.
    const known = await caches.match(key);
    if (known) {
      await cache.put(key, known);
      return;
    }
    // 'reload': never take a copy from the HTTP cache, it may predate this revision.
    const res = await fetch(entry.url, { cache: 'reload', credentials: 'same-origin' });
    if (!res.ok) throw new Error(`precaching ${entry.url} failed: HTTP ${res.status}`);
    // Stored with the isolation headers already set, so a hit is served as it is.
    await cache.put(key, isolated(res));
  }));
}

async function tellPages(message) {
  const pages = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const page of pages) page.postMessage(message);
}

self.addEventListener('install', (event) => {
  // Static routing (Chromium 123+): the browser sends these requests straight to
  // the network without a fetch event. A sync loop polling /sync would otherwise
  // keep this worker busy, and Chromium activates a new version only once the
  // old one has been idle. Elsewhere the check in the fetch handler does the job.
  if (event.addRoutes) {
    const routes = NETWORK_ONLY.flatMap((p) => [p, `${p}/*`])
      .map((pathname) => ({ condition: { urlPattern: { pathname } }, source: 'network' }));
    event.waitUntil(event.addRoutes(routes).catch((e) => console.warn('[edgesql] static routes refused:', e)));
  }
  event.waitUntil((async () => {
    await precache();
    // An active worker means pages run an older version: offer them this one.
    if (self.registration.active) await tellPages({ type: 'edgesql:update-ready', version: PRECACHE.version });
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names
      .filter((n) => n.startsWith(CACHE_PREFIX) && n !== CACHE_NAME)
      .map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  const type = event.data && event.data.type;
  if (type === 'edgesql:skip-waiting') self.skipWaiting();
  if (type === 'edgesql:version' && event.ports[0]) {
    event.ports[0].postMessage({ version: PRECACHE.version, size_bytes: PRECACHE.size_bytes });
  }
});

/**
 * The response with the isolation headers set. One that has them already is
 * returned untouched, so the browser streams a cached body itself; a rewrapped
 * body is pumped through this worker's JavaScript. Opaque and redirect
 * responses cannot be changed.
 */
function isolated(res) {
  if (res.type === 'opaque' || res.type === 'opaqueredirect' || res.status === 0) return res;
  if (ISOLATION_HEADERS.every(([name, value]) => res.headers.get(name) === value)) return res;
  const headers = new Headers(res.headers);
  for (const [name, value] of ISOLATION_HEADERS) headers.set(name, value);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

async function fromCache(request, key) {
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(key);
  // A miss means the cache was evicted or cleared under us: the network may still answer.
  return hit || isolated(await fetch(request));
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || isNetworkOnly(url.pathname)) return;
  const key = keyByPath.get(url.pathname);
  event.respondWith(key ? fromCache(request, key) : fetch(request).then(isolated));
});
