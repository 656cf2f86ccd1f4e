// The scanner's durable state in IndexedDB: settings (device credential, facility,
// trust bundle, clock, counters) in "meta", admitted visits waiting for upload in
// "outbox", and visits central refused in "rejected". Writes to the outbox ask for
// strict durability, so a visit written is on disk before the page says so.

const DB_NAME = 'kipass-scanner';
const DB_VERSION = 1;

let dbp = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

/** Opens (and on first use creates) the database. */
export function open() {
  if (dbp) return dbp;
  dbp = new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, DB_VERSION);
    r.onupgradeneeded = () => {
      const db = r.result;
      db.createObjectStore('meta');
      const out = db.createObjectStore('outbox', { keyPath: 'id' });
      out.createIndex('queued', 'queued');
      db.createObjectStore('rejected', { keyPath: 'id' });
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(new Error('the scanner database is blocked by another tab'));
  });
  return dbp;
}

/** Returns the setting stored under key, or undefined. */
export async function getMeta(key) {
  const db = await open();
  return req(db.transaction('meta').objectStore('meta').get(key));
}

/** Stores a setting durably. */
export async function setMeta(key, value) {
  const db = await open();
  const tx = db.transaction('meta', 'readwrite', { durability: 'strict' });
  tx.objectStore('meta').put(value, key);
  return done(tx);
}

let queued = 0;

/**
 * Adds a visit (its JSON for central, with its id) to the outbox and, in the same
 * transaction, counts it in the scan counter of day; it resolves once the visit is
 * durable.
 */
export async function addVisit(visit, day) {
  const db = await open();
  const tx = db.transaction(['outbox', 'meta'], 'readwrite', { durability: 'strict' });
  tx.objectStore('outbox').add({ id: visit.id, visit, queued: Date.now() * 1000 + (queued++ % 1000) });
  bumpCounter(tx.objectStore('meta'), day);
  return done(tx);
}

/** Counts a scan that recorded no visit (FAIL, REFUSED) in today's counter. */
export async function countScan(day) {
  const db = await open();
  const tx = db.transaction('meta', 'readwrite');
  bumpCounter(tx.objectStore('meta'), day);
  return done(tx);
}

function bumpCounter(meta, day) {
  const r = meta.get('counter');
  r.onsuccess = () => {
    const c = r.result && r.result.day === day ? r.result : { day, n: 0 };
    c.n++;
    meta.put(c, 'counter');
  };
}

/** Returns today's scan count. */
export async function scansOn(day) {
  const c = await getMeta('counter');
  return c && c.day === day ? c.n : 0;
}

/** Returns the number of visits waiting for upload. */
export async function outboxSize() {
  const db = await open();
  return req(db.transaction('outbox').objectStore('outbox').count());
}

/** Returns up to n of the oldest visits waiting for upload. */
export async function takeBatch(n) {
  const db = await open();
  return req(db.transaction('outbox').objectStore('outbox').index('queued').getAll(null, n));
}

/**
 * Applies central's per-visit answers to the outbox in one transaction: a visit
 * answered stored or duplicate leaves the outbox; one answered rejected moves to the
 * rejected list with its reason; a visit with no answer stays. It returns how many
 * of each.
 */
export async function settle(results) {
  const db = await open();
  const tx = db.transaction(['outbox', 'rejected'], 'readwrite', { durability: 'strict' });
  const out = tx.objectStore('outbox');
  const rej = tx.objectStore('rejected');
  const n = { done: 0, rejected: 0 };
  for (const r of results) {
    if (r.status === 'stored' || r.status === 'duplicate') {
      out.delete(r.id);
      n.done++;
    } else if (r.status === 'rejected') {
      const g = out.get(r.id);
      g.onsuccess = () => {
        if (!g.result) return;
        rej.put({ id: r.id, visit: g.result.visit, reason: r.reason || '', rejected: Date.now() });
        out.delete(r.id);
      };
      n.rejected++;
    }
  }
  await done(tx);
  return n;
}

/** Returns the visits central rejected, newest first. */
export async function rejectedList() {
  const db = await open();
  const all = await req(db.transaction('rejected').objectStore('rejected').getAll());
  return all.sort((a, b) => b.rejected - a.rejected);
}
