// The uploader: sends the outbox to central in batches, oldest first, one request at
// a time. Central answers per visit; only visits answered stored or duplicate leave
// the outbox (store.settle). Failures back off exponentially with jitter, and a 429 or
// 503 waits at least its Retry-After. Nothing is ever dropped: a visit central rejects
// moves to the visible rejected list.

import * as store from './store.js';

const BATCH = 500;            // visits per request (central takes up to 1000)
const BASE_DELAY = 1000;      // first retry after about a second
const MAX_DELAY = 5 * 60e3;   // never wait more than five minutes between tries
const TIMEOUT = 30e3;         // a request that hangs this long counts as failed
const DEBOUNCE = 150;         // gather the visits of a burst into one request

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(h) {
  if (!h) return 0;
  const s = Number(h);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const d = Date.parse(h);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : 0;
}

/** Returns the wait after the n-th failure in a row: exponential, with jitter. */
export function backoff(n) {
  const d = Math.min(MAX_DELAY, BASE_DELAY * 2 ** Math.max(0, n - 1));
  return d / 2 + Math.random() * d / 2;
}

export class Uploader {
  /**
   * token() returns the device credential; onChange() is called when the outbox
   * changed; onReach(state) with "accepted" (an upload went through), "ok" (central answered),
   * "unreachable" or "unauthorized" after each try.
   */
  constructor({ token, onChange, onReach }) {
    this.token = token;
    this.onChange = onChange;
    this.onReach = onReach;
    this.failures = 0;
    this.notBefore = 0;
    this.limit = BATCH;
    this.running = false;
    this.again = false;
    this.timer = null;
    this.due = Infinity;
  }

  /** Asks for an upload soon; reset forgets the backoff (the server is back). */
  kick(reset = false) {
    if (reset) { this.failures = 0; this.notBefore = 0; }
    this.schedule(Math.max(DEBOUNCE, this.notBefore - Date.now()));
  }

  schedule(delay) {
    if (this.running) { this.again = true; return; }
    const due = Date.now() + delay;
    if (this.timer && due >= this.due) return;
    clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => { this.timer = null; this.due = Infinity; this.run(); }, delay);
  }

  async run() {
    if (this.running) return;
    this.running = true;
    this.again = false;
    try {
      for (;;) {
        const batch = await store.takeBatch(this.limit);
        if (!batch.length) { this.limit = BATCH; break; }
        if (!(await this.send(batch))) break;
      }
    } catch (e) {
      console.warn('upload', e);
      this.fail(0);
    } finally {
      this.running = false;
    }
    const left = await store.outboxSize().catch(() => 0);
    if (left > 0) this.schedule(Math.max(this.again ? DEBOUNCE : 0, this.notBefore - Date.now()));
  }

  fail(waitAtLeast) {
    this.failures++;
    this.notBefore = Date.now() + Math.max(waitAtLeast, backoff(this.failures));
  }

  /** Sends one batch; returns whether to go on with the next at once. */
  async send(batch) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT);
    let res;
    try {
      res = await fetch('/v1/visits', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + this.token() },
        body: JSON.stringify({ visits: batch.map((r) => r.visit) }),
        signal: ctl.signal,
        cache: 'no-store',
      });
    } catch (e) {
      clearTimeout(timer);
      this.fail(0);
      this.onReach('unreachable');
      return false;
    }
    clearTimeout(timer);
    if (res.ok) {
      let body;
      try { body = await res.json(); } catch (_) { this.fail(0); return false; }
      await store.settle(body.results || []);
      this.failures = 0;
      this.notBefore = 0;
      this.onReach('accepted');
      this.onChange();
      return true;
    }
    const detail = await res.json().catch(() => null);
    if (res.status === 429 || res.status === 503) {
      this.fail(retryAfterMs(res.headers.get('Retry-After')));
      this.onReach('ok');
      return false;
    }
    if (res.status === 401 || res.status === 403) {
      this.fail(60e3);
      this.onReach('unauthorized');
      return false;
    }
    if (res.status === 400) {
      // The batch as a whole was refused. Halve it until the visit at fault is
      // alone, then move that one to the rejected list with central's message.
      this.onReach('ok');
      if (batch.length > 1) { this.limit = Math.ceil(batch.length / 2); return true; }
      const msg = (detail && detail.error && detail.error.message) || 'rejected (400)';
      await store.settle([{ id: batch[0].id, status: 'rejected', reason: msg }]);
      this.onChange();
      return true;
    }
    this.fail(0);
    this.onReach('ok');
    return false;
  }
}
