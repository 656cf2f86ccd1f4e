// The venue scanner page. Every decision is made by the Go module (kipass.wasm: the
// same trust, rules and scanner code as the server); this file only moves data
// between the camera, the screen, IndexedDB and central's /v1 API.
//
// Clock: decisions use the device clock plus an offset. The offset is the skew to
// central's server_time when that is over a minute (so a scanner with a wrong clock,
// or one pointed at a demo whose clock starts in 2022, decides on central's time), or
// fixed by ?at=RFC3339 in the page address for a demonstration.

import { t, setLang, currentLang, ago, duration } from './i18n.js';
import * as store from './store.js';
import { Uploader } from './outbox.js';

const $ = (id) => document.getElementById(id);
const ROOT_KEY = document.querySelector('meta[name="kipass-root-key"]').content;
const SKEW_LIMIT = 60e3;            // a skew over a minute is shown and corrected
const BUNDLE_REFRESH = 10 * 60e3;   // look for a new trust bundle this often
const BUNDLE_OLD = 24 * 3600e3;     // warn when the bundle was not checked for a day
const STATUS_SILENCE = 40e3;        // poll when the status stream says nothing this long
const FRAME_INTERVAL = 200;         // camera frames decoded: five a second
const SEEN_WINDOW = 60e3;           // a QR the camera keeps seeing is decided once
const SCAN_PAUSE = 700;             // no decoding for this long after a decision

const state = {
  device: null,       // {device_id, name, token, facility: {id, name, category, region}}
  bundle: null,       // {bytes, etag, checked, version, made_at}
  bundleError: '',
  clock: { offset: 0, skew: null, source: 'device' },
  reach: 'unknown',   // ok, unreachable or unauthorized: the last word from central
  server: null,       // the last /v1/status
  lastStatusAt: 0,
  last: null,         // the decision on screen, to redraw it in the other language
  seq: 0,
  seen: new Map(),    // QR text -> when the camera decided it
};
let uploader = null;
let gotStatus = null;
const firstStatus = new Promise((resolve) => { gotStatus = resolve; });

/** The time decisions and visits use, in ms since the epoch. */
function now() { return Date.now() + state.clock.offset; }

/** The KST calendar day of a moment, YYYY-MM-DD. */
function kstDay(ms) { return new Date(ms + 9 * 3600e3).toISOString().slice(0, 10); }

function show(id) {
  for (const s of ['loading', 'enroll', 'scan']) $(s).hidden = s !== id;
}

// newVisitID makes a visit id as kipass.NewVisitID does: 12 hex digits of the unix
// time in milliseconds, then 20 random ones. Ids sort by the time they were made, so
// central's unique index takes them at its right edge.
function newVisitID() {
  const b = new Uint8Array(10);
  crypto.getRandomValues(b);
  return Date.now().toString(16).padStart(12, '0') + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// ---- start ----

async function boot() {
  setLang(currentLang());
  $('lang').textContent = t('switch');
  $('lang').onclick = () => {
    setLang(currentLang() === 'ko' ? 'en' : 'ko');
    $('lang').textContent = t('switch');
    if (state.last) renderDecision(state.last, null);
    renderFacility();
    renderStatus();
  };
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').catch((e) => console.warn('service worker', e));
  }
  await loadWasm();
  await loadClock();
  state.device = (await store.getMeta('device')) || null;
  const saved = await store.getMeta('bundle');
  if (saved) {
    const info = kipass.loadBundle(new Uint8Array(saved.bytes), ROOT_KEY);
    if (!info.error) state.bundle = saved;
  }
  if (!state.device) {
    showEnroll();
    return;
  }
  await startScanning();
}

async function loadWasm() {
  const go = new Go();
  const ready = new Promise((resolve) => { window.kipassReady = resolve; });
  let inst;
  try {
    inst = await WebAssembly.instantiateStreaming(fetch('kipass.wasm'), go.importObject);
  } catch (_) {
    const buf = await (await fetch('kipass.wasm')).arrayBuffer();
    inst = await WebAssembly.instantiate(buf, go.importObject);
  }
  go.run(inst.instance);
  await ready;
}

async function loadClock() {
  // An unescaped "+09:00" in the address arrives as " 09:00".
  const at = (new URLSearchParams(location.search).get('at') || '').trim().replace(' ', '+');
  const t0 = at ? Date.parse(at) : NaN;
  if (Number.isFinite(t0)) {
    state.clock = { offset: t0 - Date.now(), skew: null, source: 'query' };
    return;
  }
  // The offset learnt from central last time, so that a page loaded offline still
  // decides on central's time.
  const c = await store.getMeta('clock');
  if (c && Number.isFinite(c.offset) && c.offset !== 0) state.clock = { offset: c.offset, skew: null, source: 'server' };
}

// ---- enrolment ----

function showEnroll() {
  show('enroll');
  $('enroll-code').focus();
  $('enroll-form').onsubmit = async (e) => {
    e.preventDefault();
    const err = $('enroll-error');
    err.hidden = true;
    $('enroll-submit').disabled = true;
    try {
      const res = await fetch('/v1/devices', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ code: $('enroll-code').value.trim(), name: $('enroll-name').value.trim() }),
        cache: 'no-store',
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) {
        const msg = body.error && body.error.message;
        err.textContent = res.status === 401 ? t('enroll.bad') : t('enroll.failed', msg || res.status);
        err.hidden = false;
        return;
      }
      state.device = {
        device_id: body.device.id, name: body.device.name || '', token: body.token,
        facility: body.facility, enrolled: Date.now(),
      };
      await store.setMeta('device', state.device);
      await startScanning(true);
    } catch (_) {
      err.textContent = t('enroll.offline');
      err.hidden = false;
    } finally {
      $('enroll-submit').disabled = false;
    }
  };
}

// ---- scanning ----

/**
 * Starts the scanner screen: uploads, central's status, the trust bundle, the
 * inputs and the camera. justEnrolled says central answered a moment ago, so it is
 * worth waiting a little longer for its clock.
 */
async function startScanning(justEnrolled = false) {
  show('scan');
  renderFacility();
  uploader = new Uploader({
    token: () => state.device.token,
    onChange: () => renderStatus(),
    onReach: (r) => setReach(r),
  });
  window.addEventListener('online', () => { uploader.kick(true); renderStatus(); });
  window.addEventListener('offline', () => renderStatus());
  watchStatus();
  const bundle = refreshBundle();
  if (!state.bundle) await bundle;
  // Learn central's clock before the first decision, but never wait long for it.
  await Promise.race([firstStatus, new Promise((r) => setTimeout(r, justEnrolled ? 10e3 : 2500))]);
  setInterval(refreshBundle, BUNDLE_REFRESH);
  setInterval(renderStatus, 30e3);
  bindInputs();
  prepareAudio();
  uploader.kick();
  await renderStatus();
  document.body.dataset.ready = '1';
  startCamera();
}

function renderFacility() {
  const f = state.device && state.device.facility;
  if (!f) return;
  $('facility').textContent = f.name + (state.device.name ? ' · ' + state.device.name : '');
  $('party-wrap').hidden = f.category !== 'restaurant';
}

function bindInputs() {
  const reader = $('reader');
  $('reader-form').onsubmit = (e) => {
    e.preventDefault();
    const text = reader.value.trim();
    reader.value = '';
    if (text) handleScan(text, { source: 'reader' });
    reader.focus();
  };
  $('safe-form').onsubmit = (e) => {
    e.preventDefault();
    const s = kipass.checkSafeNumber($('safe-number').value);
    if (!s) { $('manual-result').textContent = t('manual.badSafe'); return; }
    $('safe-number').value = '';
    recordManual({ method: 'safe_number', safe_number: s });
  };
  $('phone-form').onsubmit = (e) => {
    e.preventDefault();
    const sealed = kipass.sealPhone($('phone').value);
    $('phone').value = ''; // the number exists from here on only sealed
    if (!sealed) { $('manual-result').textContent = t('manual.badPhone'); return; }
    recordManual({ method: 'manual', contact: sealed });
  };
}

/**
 * Decides a pass text, shows the decision and writes an admitted visit to the
 * outbox (from where, and only from where, it is uploaded). src says where the text
 * came from; for the camera it carries the performance.now() of the frame and of its
 * decoding, to measure the latency.
 */
async function handleScan(text, src) {
  const at = now();
  const f = state.device.facility;
  const party = $('party-wrap').hidden ? 1 : Number($('party').value) || 1;
  const r = kipass.decide(text, f.category, f.region, party, at);
  src.decidedAt = performance.now();
  r.saveError = false;
  renderDecision(r, src);
  beep(r.outcome);
  if (r.visit) {
    const visit = Object.assign({ id: newVisitID(), facility_id: f.id, device_id: state.device.device_id }, r.visit);
    try {
      await store.addVisit(visit, kstDay(at));
      if (state.last === r) {
        $('decision').dataset.saved = 'yes';
        $('decision').dataset.saveMs = (performance.now() - src.decidedAt).toFixed(1);
      }
    } catch (e) {
      // The visitor is already on the screen: say loudly that the record is not
      // kept, so that staff write it down by hand.
      console.error('outbox', e);
      r.saveError = true;
      if (state.last === r) renderDecision(r, null);
    }
    uploader.kick();
  } else {
    store.countScan(kstDay(at)).catch(() => {});
  }
  renderStatus();
  const active = document.activeElement;
  if (!active || active === document.body || active === $('reader')) $('reader').focus();
}

async function recordManual(fields) {
  const at = now();
  const visit = Object.assign({
    id: newVisitID(), facility_id: state.device.facility.id, device_id: state.device.device_id,
    at: new Date(at).toISOString(),
  }, fields);
  try {
    await store.addVisit(visit, kstDay(at));
  } catch (e) {
    $('manual-result').textContent = String(e);
    return;
  }
  const hhmm = new Date(at + 9 * 3600e3).toISOString().slice(11, 16);
  $('manual-result').textContent = t('manual.saved', t('method.' + fields.method) + ' ' + hhmm);
  beep('NOT_REQUIRED');
  uploader.kick();
  renderStatus();
}

let staleTimer = null;

function renderDecision(r, src) {
  const el = $('decision');
  const ko = currentLang() === 'ko';
  state.last = r;
  if (src) {
    el.dataset.seq = String(++state.seq);
    el.dataset.source = src.source;
    for (const k of ['latencyMs', 'decodeMs', 'decideMs', 'saveMs']) delete el.dataset[k];
  }
  el.dataset.decision = r.outcome;
  // Whether the admitted visit is in the outbox yet: pending, yes, no; "" for none.
  el.dataset.saved = !r.visit ? '' : r.saveError ? 'no' : el.dataset.saved === 'yes' && !src ? 'yes' : 'pending';
  el.querySelector('.outcome').textContent = t('outcome.' + r.outcome);
  let basis = '';
  if (r.outcome !== 'REFUSED') {
    basis = ko ? r.basis_ko : r.basis_en;
    const until = ko ? r.until_ko : r.until_en;
    if (until) basis += ' · ' + until;
    if (r.grace) basis += ' · ' + t('grace');
  }
  el.querySelector('.basis').textContent = basis;
  let detail = r.outcome === 'REFUSED' ? (ko ? r.detail_ko : r.detail) : t('sub.' + r.outcome);
  if (r.clock_warning && r.outcome !== 'REFUSED') detail += ' ' + t('clockWarning');
  if (r.saveError) detail += ' ' + t('saveError');
  el.querySelector('.detail').textContent = detail;
  el.classList.remove('stale');
  clearTimeout(staleTimer);
  staleTimer = setTimeout(() => el.classList.add('stale'), 15e3);
  if (src && src.frameAt !== undefined) {
    requestAnimationFrame(() => {
      const shown = performance.now();
      el.dataset.decodeMs = (src.decodedAt - src.frameAt).toFixed(1);
      el.dataset.decideMs = (src.decidedAt - src.decodedAt).toFixed(1);
      el.dataset.latencyMs = (shown - src.frameAt).toFixed(1);
    });
  }
}

// Distinct sounds: two rising beeps (PASS), one mid beep (NOT_REQUIRED, manual
// record), a long low buzz (FAIL), three short beeps (REFUSED).
const SOUNDS = {
  PASS: [[880, 0, 0.12, 'sine'], [1320, 0.15, 0.18, 'sine']],
  NOT_REQUIRED: [[660, 0, 0.22, 'sine']],
  FAIL: [[196, 0, 0.7, 'square']],
  REFUSED: [[440, 0, 0.09, 'triangle'], [440, 0.14, 0.09, 'triangle'], [440, 0.28, 0.09, 'triangle']],
};
let audio = null;

/** Makes the audio context ahead of the first beep, which must not wait for it. */
function prepareAudio() {
  try { audio = audio || new AudioContext(); } catch (_) { /* no audio */ }
}

function beep(kind) {
  try {
    audio = audio || new AudioContext();
    if (audio.state === 'suspended') audio.resume();
    const t0 = audio.currentTime + 0.01;
    for (const [freq, at, dur, type] of SOUNDS[kind] || []) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.type = type;
      o.frequency.value = freq;
      g.gain.setValueAtTime(0.0001, t0 + at);
      g.gain.exponentialRampToValueAtTime(0.3, t0 + at + 0.01);
      g.gain.exponentialRampToValueAtTime(0.0001, t0 + at + dur);
      o.connect(g).connect(audio.destination);
      o.start(t0 + at);
      o.stop(t0 + at + dur + 0.02);
    }
  } catch (_) { /* no audio: the colour and the words still tell */ }
}

// ---- camera ----

function fresh(text) {
  const t0 = Date.now();
  for (const [k, at] of state.seen) if (t0 - at > SEEN_WINDOW) state.seen.delete(k);
  if (state.seen.has(text)) return false;
  state.seen.set(text, t0);
  return true;
}

async function startCamera() {
  const video = $('video');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $('camera-state').textContent = t('camera.off');
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: 'environment' }, width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
    await video.play();
  } catch (e) {
    console.warn('camera', e);
    $('camera-state').textContent = t('camera.off');
    video.hidden = true;
    return;
  }
  $('camera-state').textContent = t('camera.on');
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  let lum = null;
  const tick = () => {
    const t0 = performance.now();
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    if (vw && vh && !document.hidden) {
      const scale = Math.min(1, 640 / Math.max(vw, vh));
      const w = Math.round(vw * scale);
      const h = Math.round(vh * scale);
      if (canvas.width !== w || canvas.height !== h || !lum) {
        canvas.width = w;
        canvas.height = h;
        lum = new Uint8Array(w * h);
      }
      ctx.drawImage(video, 0, 0, w, h);
      const px = ctx.getImageData(0, 0, w, h).data;
      for (let i = 0, j = 0; j < lum.length; i += 4, j++) {
        lum[j] = (px[i] * 77 + px[i + 1] * 150 + px[i + 2] * 29) >> 8;
      }
      const text = kipass.decodeQR(lum, w, h);
      if (text && fresh(text)) {
        handleScan(text, { source: 'camera', frameAt: t0, decodedAt: performance.now() });
        // Leave the main thread to the screen and the outbox while the visitor
        // moves on; the next one needs a moment to hold up a phone anyway.
        setTimeout(tick, SCAN_PAUSE);
        return;
      }
    }
    setTimeout(tick, Math.max(40, FRAME_INTERVAL - (performance.now() - t0)));
  };
  tick();
}

// ---- trust bundle ----

let bundleFetch = null;

/** Looks for a newer trust bundle; calls during a look-up share it. */
function refreshBundle() {
  if (!bundleFetch) bundleFetch = fetchBundle().finally(() => { bundleFetch = null; });
  return bundleFetch;
}

async function fetchBundle() {
  const headers = {};
  if (state.bundle && state.bundle.etag) headers['If-None-Match'] = state.bundle.etag;
  let res;
  try {
    res = await fetch('/v1/bundle', { headers, cache: 'no-store', signal: AbortSignal.timeout(20e3) });
  } catch (_) {
    setReach('unreachable');
    return;
  }
  if (res.status === 304 && state.bundle) {
    state.bundle.checked = Date.now();
    await store.setMeta('bundle', state.bundle);
  } else if (res.ok) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    const info = kipass.loadBundle(bytes, ROOT_KEY);
    if (info.error) {
      // A bundle that does not verify, or an older one, never replaces the one held.
      state.bundleError = info.error;
      console.warn('trust bundle refused:', info.error);
    } else {
      state.bundleError = '';
      state.bundle = {
        bytes: bytes.buffer, etag: res.headers.get('ETag') || '', checked: Date.now(),
        version: info.version, made_at: info.made_at,
      };
      await store.setMeta('bundle', state.bundle);
    }
  }
  renderStatus();
}

// ---- central's status ----

function watchStatus() {
  let es = null;
  const open = () => {
    if (!('EventSource' in window)) return;
    if (es) es.close();
    es = new EventSource('/v1/status/stream');
    es.addEventListener('status', (ev) => {
      try { onStatus(JSON.parse(ev.data)); } catch (e) { console.warn('status', e); }
    });
    es.onerror = () => setReach('unreachable');
  };
  open();
  // The stream heartbeats every 15 s; when it is silent, poll, and reopen the stream
  // once central answers again.
  setInterval(async () => {
    if (Date.now() - state.lastStatusAt < STATUS_SILENCE) return;
    try {
      const res = await fetch('/v1/status', { cache: 'no-store', signal: AbortSignal.timeout(10e3) });
      if (!res.ok) throw new Error('status ' + res.status);
      onStatus(await res.json());
      open();
    } catch (_) {
      setReach('unreachable');
    }
  }, 15e3);
}

function onStatus(st) {
  state.server = st;
  state.lastStatusAt = Date.now();
  if (st.server_time) setSkew(Date.parse(st.server_time) - Date.now());
  setReach('ok');
  renderStatus();
  gotStatus();
}

function setSkew(skew) {
  if (!Number.isFinite(skew)) return;
  state.clock.skew = skew;
  if (state.clock.source === 'query') return;
  const offset = Math.abs(skew) > SKEW_LIMIT ? skew : 0;
  if (Math.abs(offset - state.clock.offset) > 2000) {
    state.clock.offset = offset;
    state.clock.source = offset ? 'server' : 'device';
    store.setMeta('clock', { offset, measured: Date.now() }).catch(() => {});
  }
}

function setReach(r) {
  const was = state.reach;
  if (r === 'ok' && was === 'unauthorized') return; // only an accepted upload clears it
  if (r === 'accepted') r = 'ok';
  state.reach = r;
  if (r === 'ok' && was !== 'ok' && uploader) {
    // Central is back: upload at once, and fetch the bundle if it is missing or due.
    uploader.kick(true);
    if (!state.bundle || Date.now() - (state.bundle.checked || 0) > BUNDLE_REFRESH) refreshBundle();
  }
  if (r !== was) renderStatus();
}

// ---- status bar ----

let rendering = null;
let dirty = false;

/** Redraws the status bar; calls during a redraw make one more redraw after it. */
function renderStatus() {
  if (rendering) { dirty = true; return rendering; }
  rendering = (async () => {
    do { dirty = false; await drawStatus(); } while (dirty);
  })().catch((e) => console.warn('status bar', e)).finally(() => { rendering = null; });
  return rendering;
}

async function drawStatus() {
  const net = !navigator.onLine ? 'offline' : state.reach === 'unreachable' ? 'unreachable' : 'online';
  $('net').dataset.state = net;
  $('net').textContent = t('net.' + net);

  const n = await store.outboxSize();
  $('outbox').dataset.count = String(n);
  $('outbox').textContent = t('outbox', n);
  $('outbox').title = t('outbox.tip');
  $('outbox').classList.toggle('warn', n > 0 && net !== 'online');

  const rejected = await store.rejectedList();
  $('rejected-count').dataset.count = String(rejected.length);
  $('rejected-count').hidden = rejected.length === 0;
  $('rejected-count').textContent = t('rejected', rejected.length);
  $('rejected-list').hidden = rejected.length === 0;
  $('rejected-items').replaceChildren(...rejected.slice(0, 100).map((r) => {
    const li = document.createElement('li');
    const at = r.visit.at ? new Date(Date.parse(r.visit.at) + 9 * 3600e3).toISOString().slice(0, 16).replace('T', ' ') : '';
    li.textContent = `${at} · ${t('method.' + r.visit.method)} · ${r.reason}`;
    return li;
  }));

  const b = state.bundle;
  const be = $('bundle-age');
  be.textContent = !b ? t('bundle.none') : b.checked ? t('bundle', b.version, ago(b.checked)) : t('bundle.never', b.version);
  be.title = b ? 'made_at ' + b.made_at + (state.bundleError ? ' · ' + state.bundleError : '') : '';
  be.classList.toggle('warn', !b || !b.checked || Date.now() - b.checked > BUNDLE_OLD || !!state.bundleError);

  const sv = state.reach === 'unreachable' ? 'unreachable' : (state.server && state.server.state) || 'unknown';
  $('server-status').dataset.state = sv;
  $('server-status').textContent = t('server.' + sv);
  $('server-status').hidden = sv === 'unreachable'; // the connection chip says it already

  const sk = $('clock-skew');
  if (state.clock.source === 'query') {
    sk.hidden = false;
    sk.textContent = t('skew.query', new Date(now() + 9 * 3600e3).toISOString().slice(0, 16).replace('T', ' '));
  } else if (state.clock.skew !== null && Math.abs(state.clock.skew) > SKEW_LIMIT) {
    sk.hidden = false;
    // skew is server minus device: below zero, the device clock runs ahead.
    sk.textContent = t(state.clock.skew < 0 ? 'skew.fast' : 'skew.slow', duration(state.clock.skew));
  } else {
    sk.hidden = true;
  }

  const scans = await store.scansOn(kstDay(now()));
  $('scan-count').dataset.count = String(scans);
  $('scan-count').textContent = t('scans', scans);

  const banners = [];
  if (state.reach === 'unauthorized') banners.push(['critical', t('banner.unauthorized')]);
  else if (state.reach === 'unreachable' || !navigator.onLine) banners.push(['warning', t('banner.unreachable')]);
  else if (state.server && state.server.state === 'degraded') banners.push(['degraded', t('banner.degraded')]);
  else if (state.server && state.server.state === 'down') banners.push(['down', t('banner.down')]);
  for (const no of (state.server && state.server.notices) || []) {
    banners.push([no.level, currentLang() === 'en' && no.message_en ? no.message_en : no.message_ko]);
  }
  $('notices').replaceChildren(...banners.map(([level, text]) => {
    const d = document.createElement('div');
    d.className = level;
    d.textContent = text;
    return d;
  }));
}

boot().catch((e) => {
  console.error(e);
  show('loading');
  $('fatal').textContent = t('fatal', e && e.message ? e.message : e);
  $('fatal').hidden = false;
});
