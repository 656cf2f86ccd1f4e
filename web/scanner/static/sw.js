// The scanner's service worker: keeps this build's files (the app shell and the
// WebAssembly module) so that the page loads with no network at all. The server
// writes the build version below; a new build installs beside the old one and
// replaces it. API calls (/v1/...) are never cached: they go to the network.

const VERSION = '{{VERSION}}';
const CACHE = 'kipass-scan-' + VERSION;
const SHELL = [
  './', 'app.js', 'i18n.js', 'store.js', 'outbox.js', 'style.css', 'wasm_exec.js', 'kipass.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll(SHELL.map((p) => new Request(p, { cache: 'no-cache' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const k of await caches.keys()) {
      if (k.startsWith('kipass-scan-') && k !== CACHE) await caches.delete(k);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  if (!url.pathname.startsWith(scope.pathname) || url.pathname.endsWith('/sw.js')) return;
  // Cache first: the shell of this build never changes; a new build comes with a new
  // service worker. The query (?at=...) is for the page, not a different file.
  event.respondWith((async () => {
    const hit = await caches.match(req.mode === 'navigate' ? './' : req, { cacheName: CACHE, ignoreSearch: true });
    return hit || fetch(req);
  })());
});
