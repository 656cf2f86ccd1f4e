// trace.js: the investigation workflow of the trace package, in the browser. It calls
// central's and the issuers' trace APIs with the investigator's tokens and opens
// sealed phone numbers with the private key held in this page (kipassTrace, the
// WebAssembly build of the seal package). Nothing here sends the key anywhere.
"use strict";

const KipassTrace = (() => {
  const MAX_DAY_TAGS = 1000, MAX_CASE_VISITS = 100, MAX_RESOLVE = 1000;
  const KST = 9 * 3600 * 1000;

  class APIError extends Error {
    constructor(service, status, body) {
      const e = (body && body.error) || {};
      super(`${service}: HTTP ${status}${e.code ? " " + e.code : ""}${e.message ? ": " + e.message : ""}`);
      this.status = status;
      this.code = e.code || "";
    }
  }

  async function call(service, base, token, method, path, body) {
    const headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch((base || "").replace(/\/+$/, "") + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
    });
    let data = null;
    try { data = await resp.json(); } catch (_) { /* an empty or non-JSON answer */ }
    if (!resp.ok) throw new APIError(service, resp.status, data);
    return data;
  }

  // kstDate returns the KST calendar date of t (ms) as YYYY-MM-DD, days added.
  function kstDate(t, addDays) {
    return new Date(t + KST + (addDays || 0) * 86400000).toISOString().slice(0, 10);
  }
  function kstTime(iso) {
    if (!iso) return "";
    return new Date(Date.parse(iso) + KST).toISOString().slice(0, 19) + "+09:00";
  }
  function normalizePhone(p) {
    const d = String(p || "").replace(/\D/g, "");
    if (d.length === 11 && d.startsWith("010")) return `${d.slice(0, 3)}-${d.slice(3, 7)}-${d.slice(7)}`;
    return String(p || "").trim();
  }

  // run traces one case. opts: centralURL, centralToken, issuerURL, issuerToken,
  // issuerKeys {kid: url}, sealKey (base64 or ""), caseId, reason, by ("phone",
  // "person_id" or "facility"), subject, facility, from, to, days, beforeMin, afterMin.
  async function run(opts, progress) {
    progress = progress || (() => {});
    const tc = { case_id: opts.caseId, reason: opts.reason };
    const central = (method, path, body) => call("central", opts.centralURL, opts.centralToken, method, path, body);
    const issuerAt = (url) => (method, path, body) => call("issuer", url, opts.issuerToken, method, path, body);
    const before = opts.beforeMin * 60000, after = opts.afterMin * 60000;
    const status = await central("GET", "/v1/status");
    const now = Date.parse(status.server_time) || Date.now();
    const res = { caseId: opts.caseId, dayTags: 0, caseVisits: [], coVisits: 0, contacts: [], unresolved: 0,
                  before, after, venue: opts.by === "facility" };
    let co = [];
    const own = new Set();
    if (opts.by !== "facility") {
      progress("dayTags", { days: opts.days });
      const today = kstDate(now), from = kstDate(now, -(opts.days - 1));
      const subject = opts.by === "phone" ? { phone: opts.subject } : { person_id: opts.subject };
      let dt;
      try {
        dt = await issuerAt(opts.issuerURL)("POST", "/v1/trace/day-tags", { ...tc, subject, from, to: today });
      } catch (e) {
        if (e.code === "not_found" || e.status === 404) throw new Error("noSubject");
        throw e;
      }
      if (!dt.subjects) throw new Error("noSubject");
      const tags = dt.day_tags.map((t) => t.day_tag);
      tags.forEach((t) => own.add(t));
      res.dayTags = tags.length;
      progress("caseVisits", { n: tags.length });
      for (let i = 0; i < tags.length; i += MAX_DAY_TAGS) {
        const out = await central("POST", "/v1/trace/visits-by-day-tags",
          { ...tc, day_tags: tags.slice(i, i + MAX_DAY_TAGS), from: `${from}T00:00:00+09:00` });
        res.caseVisits.push(...out.visits);
      }
      res.caseVisits.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
      progress("coVisits", { n: res.caseVisits.length });
      const seen = new Set();
      for (let i = 0; i < res.caseVisits.length; i += MAX_CASE_VISITS) {
        const visits = res.caseVisits.slice(i, i + MAX_CASE_VISITS).map((v) => ({ facility_id: v.facility_id, at: v.at }));
        const out = await central("POST", "/v1/trace/co-visits",
          { ...tc, visits, before: `${opts.beforeMin}m`, after: `${opts.afterMin}m` });
        for (const v of out.visits) if (!seen.has(v.id)) { seen.add(v.id); co.push(v); }
      }
    } else {
      progress("facilityVisits", {});
      const out = await central("POST", "/v1/trace/facility-visits",
        { ...tc, facility_id: opts.facility, from: opts.from, to: opts.to });
      co = out.visits;
    }
    res.coVisits = co.length;

    const people = await resolve(opts, tc, res.caseVisits.concat(co), issuerAt, progress);
    const casePhones = new Set();
    if (opts.by === "phone") casePhones.add(normalizePhone(opts.subject));
    for (const v of res.caseVisits) if (people.has(v.id)) casePhones.add(people.get(v.id).phone);
    const caseIDs = new Set(res.caseVisits.map((v) => v.id));

    progress("building", {});
    const byPhone = new Map();
    for (const v of co) {
      if (caseIDs.has(v.id) || (v.dtag && own.has(v.dtag))) continue;
      const p = people.get(v.id);
      if (!p || !p.phone) { res.unresolved++; continue; }
      if (casePhones.has(p.phone)) continue;
      let c = byPhone.get(p.phone);
      if (!c) { c = { name: "", phone: p.phone, exposures: [] }; byPhone.set(p.phone, c); }
      if (!c.name && p.name) c.name = p.name;
      const caseAt = res.venue ? opts.from : nearest(res.caseVisits, v, before, after);
      c.exposures.push({ visitId: v.id, facilityId: v.facility_id, at: v.at, method: v.method, caseAt,
                         offsetMin: Math.round((Date.parse(v.at) - Date.parse(caseAt)) / 60000) });
    }
    for (const c of byPhone.values()) {
      c.exposures.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || (a.visitId < b.visitId ? -1 : 1));
      res.contacts.push(c);
    }
    res.contacts.sort((a, b) => Date.parse(a.exposures[0].at) - Date.parse(b.exposures[0].at) || (a.phone < b.phone ? -1 : 1));
    progress("done", { n: res.contacts.length });
    return res;
  }

  function nearest(cases, v, before, after) {
    const t = Date.parse(v.at);
    let best = "", bestD = -1;
    for (const c of cases) {
      const ct = Date.parse(c.at);
      if (c.facility_id !== v.facility_id || t < ct - before || t >= ct + after) continue;
      const d = Math.abs(t - ct);
      if (bestD < 0 || d < bestD) { best = c.at; bestD = d; }
    }
    return best;
  }

  async function resolve(opts, tc, visits, issuerAt, progress) {
    const out = new Map();
    const byKey = new Map();
    const safe = [];
    let sealed = 0, unopened = 0;
    for (const v of visits) {
      if (v.method === "qr" && v.sref) {
        if (!byKey.has(v.issuer_key_id)) byKey.set(v.issuer_key_id, []);
        byKey.get(v.issuer_key_id).push(v);
      } else if (v.method === "safe_number" && v.safe_number) {
        safe.push(v);
      } else if (v.contact) {
        sealed++;
        if (!opts.sealKey || !globalThis.kipassTrace) { unopened++; continue; }
        const r = globalThis.kipassTrace.openContact(opts.sealKey, v.contact);
        if (r.phone) out.set(v.id, { name: "", phone: normalizePhone(r.phone) });
        else unopened++;
      }
    }
    if (sealed) progress("opened", { n: sealed - unopened, of: sealed });
    const keys = opts.issuerKeys || {};
    for (const [kid, vs] of [...byKey.entries()].sort()) {
      progress("resolving", { kid, n: vs.length });
      const call = issuerAt(keys[kid] || opts.issuerURL);
      for (let i = 0; i < vs.length; i += MAX_RESOLVE) {
        const chunk = vs.slice(i, i + MAX_RESOLVE);
        const r = await call("POST", "/v1/trace/resolve", { ...tc, srefs: chunk.map((v) => v.sref), safe_numbers: [] });
        r.results.forEach((x, j) => { if (x.found) out.set(chunk[j].id, { name: x.name || "", phone: normalizePhone(x.phone) }); });
      }
    }
    if (safe.length) {
      progress("safeNumbers", { n: safe.length });
      const urls = [opts.issuerURL, ...Object.values(keys)].filter((u, i, a) => a.indexOf(u) === i);
      for (const url of urls) {
        const left = safe.filter((v) => !out.has(v.id));
        for (let i = 0; i < left.length; i += MAX_RESOLVE) {
          const chunk = left.slice(i, i + MAX_RESOLVE);
          const r = await issuerAt(url)("POST", "/v1/trace/resolve", { ...tc, srefs: [], safe_numbers: chunk.map((v) => v.safe_number) });
          r.results.forEach((x, j) => { if (x.found) out.set(chunk[j].id, { name: x.name || "", phone: normalizePhone(x.phone) }); });
        }
      }
    }
    return out;
  }

  const CSV_HEADER = ["contact", "name", "phone", "facility_id", "method", "visit_at", "case_visit_at", "offset_minutes"];
  function csvCell(s) {
    s = String(s);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }
  // csv returns the contact list as CSV, one row per exposure, as kipass trace --csv.
  function csv(res) {
    const rows = [CSV_HEADER];
    res.contacts.forEach((c, i) => {
      for (const e of c.exposures) {
        rows.push([i + 1, c.name, c.phone, e.facilityId, e.method, kstTime(e.at), kstTime(e.caseAt), e.offsetMin]);
      }
    });
    return rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
  }

  return { run, csv, kstTime, normalizePhone };
})();
