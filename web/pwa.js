/**
 * Make a page part of the installable offline app: link the web app manifest,
 * register the service worker (/sw.js), and offer a reload when a new version
 * of the app is waiting.
 *
 *   <script type="module" src="/pwa.js"></script>
 *
 * The prompt is a small banner, "New version ready — Reload". "Later" hides
 * it; the new version then starts once every tab of the app has been closed.
 *
 * Reload does not activate the new version from this page. Chromium activates
 * a waiting worker only once the old one is idle, and a fetch from a dedicated
 * worker (the DB worker's sync loop) that is in flight when skipWaiting() is
 * called can hold the old worker "busy" for up to five minutes (seen in
 * Chromium 156; static routes do not cover requests from dedicated workers).
 * So every open tab of the app reloads with a flag in sessionStorage; the fresh
 * page, before it has started any worker of its own, asks the waiting version
 * to take over, and reloads once more when it has. Any tab whose worker
 * changes under it reloads too, so no page runs on a mix of versions.
 *
 * The page's <html> carries data-sw-version: the precache version serving it.
 *
 * Exports for pages and tests: `registration` (a promise of the
 * ServiceWorkerRegistration, or null where service workers are unavailable)
 * and `activeVersion()` (the precache version of the controlling worker).
 */

const SW_URL = '/sw.js';
const MANIFEST_URL = '/manifest.webmanifest';
/** sessionStorage key: this tab reloaded to let the waiting version take over. */
const ACTIVATE_FLAG = 'edgesql:activate-waiting';
/** Tabs of the app tell each other to reload for an update. */
const channel = 'BroadcastChannel' in globalThis ? new BroadcastChannel('edgesql-pwa') : null;

/** Pages should carry <link rel="manifest">; add it where a page does not, installability needs it. */
function linkManifest() {
  if (document.querySelector('link[rel="manifest"]')) return;
  const link = document.createElement('link');
  link.rel = 'manifest';
  link.href = MANIFEST_URL;
  document.head.append(link);
}

/**
 * Resolves when this page may start workers (the DB worker, any other): at once,
 * except in a page that reloaded to let a waiting version take over. There a
 * request from a dedicated worker could keep the old version busy for minutes,
 * so workers wait until the new version has taken over (the page then reloads)
 * or, should it not, for ACTIVATE_TIMEOUT_MS. edgesql's Python side awaits it
 * as `globalThis.edgesqlWorkersMayStart` before it starts the DB worker.
 */
const ACTIVATE_TIMEOUT_MS = 10_000;
let allowWorkers = () => {};
globalThis.edgesqlWorkersMayStart = new Promise((resolve) => { allowWorkers = resolve; });
export const workersMayStart = globalThis.edgesqlWorkersMayStart;

function reloadToActivate() {
  sessionStorage.setItem(ACTIVATE_FLAG, '1');
  location.reload();
}

let banner = null;

/** Show the update prompt (once, however many signals say a version is waiting). */
function offerUpdate() {
  if (banner || !navigator.serviceWorker.controller) return;  // first install: nothing to replace
  banner = document.createElement('div');
  banner.className = 'update-banner';
  banner.setAttribute('role', 'status');
  banner.innerHTML = '<span>New version ready</span>'
    + '<button type="button" class="primary" data-action="reload">Reload</button>'
    + '<button type="button" data-action="later" aria-label="Not now">Later</button>';
  banner.addEventListener('click', (event) => {
    const action = event.target.closest('button')?.dataset.action;
    if (action === 'later') banner.hidden = true;
    if (action !== 'reload') return;
    event.target.disabled = true;
    channel?.postMessage({ type: 'edgesql:reload-to-activate' });
    reloadToActivate();
  });
  document.body.append(banner);
}

/** Offer `worker` once it is installed (it may still be installing when we hear of it). */
function whenInstalled(worker) {
  if (!worker) return;
  if (worker.state === 'installed') {
    offerUpdate();
    return;
  }
  worker.addEventListener('statechange', () => {
    if (worker.state === 'installed') offerUpdate();
  });
}

async function register() {
  linkManifest();
  if (!('serviceWorker' in navigator)) {
    allowWorkers();
    return null;
  }
  const sw = navigator.serviceWorker;
  const activating = sessionStorage.getItem(ACTIVATE_FLAG) !== null;
  sessionStorage.removeItem(ACTIVATE_FLAG);
  if (!activating) allowWorkers();
  // A new version took over while this page ran on the old one (not the first
  // install, which finds no controller): start again on the new one.
  if (sw.controller) sw.addEventListener('controllerchange', () => location.reload());
  channel?.addEventListener('message', (event) => {
    if (event.data?.type === 'edgesql:reload-to-activate') reloadToActivate();
  });
  let reg = null;
  // The worker says so when a new version has finished precaching...
  sw.addEventListener('message', (event) => {
    if (event.data?.type === 'edgesql:update-ready' && reg) whenInstalled(reg.installing || reg.waiting);
  });
  reg = await sw.register(SW_URL, { scope: '/', updateViaCache: 'none' });
  if (activating && reg.waiting) {
    // Before this page starts workers whose requests could keep the old version busy.
    reg.waiting.postMessage({ type: 'edgesql:skip-waiting' });
    setTimeout(allowWorkers, ACTIVATE_TIMEOUT_MS);
    return reg;
  }
  allowWorkers();
  // ...and the registration tells us about versions found before or while this page loaded.
  whenInstalled(reg.waiting);
  reg.addEventListener('updatefound', () => whenInstalled(reg.installing));
  activeVersion().then((version) => {
    if (version) document.documentElement.dataset.swVersion = version;
  });
  return reg;
}

export const registration = register().catch((e) => {
  // The page works without the worker, only not offline: say why, do not break it.
  console.warn('[edgesql] service worker not registered:', e);
  allowWorkers();
  return null;
});

/** The precache version of the worker controlling this page, or null when none does. */
export function activeVersion() {
  const controller = navigator.serviceWorker?.controller;
  if (!controller) return Promise.resolve(null);
  return new Promise((resolve) => {
    const ports = new MessageChannel();
    ports.port1.onmessage = (event) => resolve(event.data.version);
    controller.postMessage({ type: 'edgesql:version' }, [ports.port2]);
  });
}
