// kipass wallet service worker: keeps the page and its assets so that the wallet opens
// without a network and shows the saved offline passes. API answers are never cached.
'use strict';

var CACHE = 'kipass-wallet-{{wallet.js}}';
var PAGE = '/wallet';
var ASSETS = [PAGE, '{{wallet.css}}', '{{wallet.js}}'];

self.addEventListener('install', function (ev) {
  ev.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll(ASSETS); }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (ev) {
  ev.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener('fetch', function (ev) {
  var url = new URL(ev.request.url);
  if (ev.request.method !== 'GET' || url.origin !== location.origin || url.pathname.indexOf('/v1/') === 0) { return; }
  if (ev.request.mode === 'navigate' && url.pathname.replace(/\/$/, '') === PAGE) {
    // The page: the network first, so that a new version is taken at once.
    ev.respondWith(fetch(ev.request).catch(function () { return caches.match(PAGE); }));
    return;
  }
  if (url.pathname.indexOf('/wallet/assets/') === 0) {
    ev.respondWith(caches.match(ev.request).then(function (hit) { return hit || fetch(ev.request); }));
  }
});
