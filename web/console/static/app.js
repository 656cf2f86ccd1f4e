// app.js: the console page: the form, the private key file, the trace run, the
// timeline picture, the contact table and the CSV download.
"use strict";

const $ = (id) => document.getElementById(id);
let sealKey = "";  // base64 raw X25519 private key; lives only in this page
let lastResult = null;
let lastCSV = "";
let csvURL = "";
let steps = [];

async function loadWasm() {
  const go = new Go();
  const r = await WebAssembly.instantiateStreaming(fetch("trace.wasm"), go.importObject);
  go.run(r.instance);
}

async function init() {
  applyLang();
  $("lang").addEventListener("click", () => { lang = lang === "ko" ? "en" : "ko"; applyLang(); renderProgress(); if (lastResult) render(lastResult); });
  const conf = await (await fetch("config.json", { cache: "no-store" })).json();
  $("central-url").value = conf.central_url || "";
  $("issuer-url").value = conf.issuer_url || "";
  window.consoleConfig = conf;
  $("by").addEventListener("change", () => $("case").classList.toggle("by-facility", $("by").value === "facility"));
  $("seal-key").addEventListener("change", async (ev) => {
    const f = ev.target.files[0];
    sealKey = "";
    if (!f) return;
    const text = (await f.text()).trim();
    let ok = false;
    try { ok = atob(text).length === 32; } catch (_) { ok = false; }
    if (ok) sealKey = text;
    $("key-state").dataset.i18n = ok ? "keyLoaded" : "keyBad";
    $("key-state").textContent = t($("key-state").dataset.i18n);
    $("key-state").classList.toggle("ok", ok);
    ev.target.value = ""; // the file input keeps nothing
  });
  $("case").addEventListener("submit", (ev) => { ev.preventDefault(); runTrace(); });
  loadWasm().catch((e) => console.error("trace.wasm", e));
}

function renderProgress(err) {
  const p = $("progress");
  p.textContent = steps.map(([k, a]) => "… " + t(k, a)).join("\n");
  if (err) {
    const e = document.createElement("div");
    e.className = "error";
    e.textContent = `${t("error")}: ${err}`;
    p.appendChild(e);
  }
}

async function runTrace() {
  steps = [];
  $("result").hidden = true;
  $("run").disabled = true;
  document.body.dataset.state = "running";
  const by = $("by").value;
  const opts = {
    centralURL: $("central-url").value.trim(), centralToken: $("central-token").value,
    issuerURL: $("issuer-url").value.trim(), issuerToken: $("issuer-token").value,
    issuerKeys: (window.consoleConfig || {}).issuer_keys || {}, sealKey,
    caseId: $("case-id").value.trim(), reason: $("reason").value.trim(), by,
    subject: $("subject").value.trim(), facility: $("facility").value.trim(), from: $("from").value.trim(), to: $("to").value.trim(),
    days: Number($("days").value) || 28, beforeMin: Number($("before").value), afterMin: Number($("after").value),
  };
  try {
    const res = await KipassTrace.run(opts, (k, a) => { steps.push([k, a]); renderProgress(); });
    lastResult = res;
    render(res);
    document.body.dataset.state = "done";
  } catch (e) {
    renderProgress(e.message === "noSubject" ? t("noSubject") : e.message);
    document.body.dataset.state = "error";
  } finally {
    $("run").disabled = false;
  }
}

function render(res) {
  $("result").hidden = false;
  $("count").textContent = `(${res.contacts.length}) — ` + t("summary", { cv: res.caseVisits.length, co: res.coVisits, un: res.unresolved });
  renderTimeline(res);
  const head = $("contacts").tHead, body = $("contacts").tBodies[0];
  head.replaceChildren(row("th", ["thNo", "thName", "thPhone", "thFacility", "thMethod", "thTimes", "thOffset"].map((k) => t(k))));
  body.replaceChildren(...res.contacts.map((c, i) => {
    const uniq = (xs) => xs.filter((x, j) => xs.indexOf(x) === j);
    return row("td", [
      String(i + 1), c.name || t("unnamed"), c.phone,
      uniq(c.exposures.map((e) => e.facilityId)).join(", "),
      uniq(c.exposures.map((e) => t("m_" + e.method))).join(", "),
      c.exposures.map((e) => KipassTrace.kstTime(e.at).slice(5, 16).replace("T", " ")).join(", "),
      c.exposures.map((e) => (e.offsetMin >= 0 ? "+" : "") + e.offsetMin + (lang === "ko" ? "분" : " min")).join(", "),
    ]);
  }));
  lastCSV = KipassTrace.csv(res);
  if (csvURL) URL.revokeObjectURL(csvURL);
  csvURL = URL.createObjectURL(new Blob(["\ufeff" + lastCSV], { type: "text/csv;charset=utf-8" }));
  $("csv").href = csvURL;
  $("csv").download = `contacts-${res.caseId.replace(/[^A-Za-z0-9_-]/g, "_")}.csv`;
}

function row(tag, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const el = document.createElement(tag);
    el.textContent = c;
    tr.appendChild(el);
  }
  return tr;
}

const SVG = "http://www.w3.org/2000/svg";
const COLORS = { qr: "#1f6feb", phone: "#2da44e", safe_number: "#bf8700", manual: "#8250df" };

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// renderTimeline draws one lane per case visit (facility and time): the window around
// it, the case's visit in red and each overlapping visitor as a dot at its offset.
function renderTimeline(res) {
  const lanes = res.venue
    ? [{ facility_id: (res.contacts[0] && res.contacts[0].exposures[0].facilityId) || "", at: "" }]
    : res.caseVisits;
  const byLane = new Map(lanes.map((l, i) => [l.facility_id + "|" + l.at, i]));
  const dots = [];
  for (const c of res.contacts) {
    for (const e of c.exposures) {
      const i = byLane.get(e.facilityId + "|" + e.caseAt);
      if (i !== undefined || res.venue) dots.push({ lane: i || 0, e, c });
    }
  }
  let lo = -res.before, hi = res.after;
  if (res.venue) {
    const offs = dots.map((d) => d.e.offsetMin * 60000);
    lo = 0; hi = Math.max(3600000, ...offs);
  }
  const W = 960, left = 270, right = 20, top = 28, laneH = 24;
  const H = top + Math.max(1, lanes.length) * laneH + 10;
  const x = (ms) => left + ((ms - lo) / (hi - lo)) * (W - left - right);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("timeline") });
  for (let m = Math.ceil(lo / 1800000) * 30; m * 60000 <= hi; m += 30) {
    svg.appendChild(svgEl("line", { x1: x(m * 60000), x2: x(m * 60000), y1: top - 6, y2: H - 8, stroke: "#e1e7ee" }));
    svg.appendChild(svgEl("text", { x: x(m * 60000), y: top - 10, "font-size": 10, "text-anchor": "middle", fill: "#5b6b7b" },
      (m > 0 ? "+" : "") + m + (lang === "ko" ? "분" : "m")));
  }
  lanes.forEach((l, i) => {
    const y = top + i * laneH + laneH / 2;
    const label = l.facility_id + (l.at ? " " + KipassTrace.kstTime(l.at).slice(5, 16).replace("T", " ") : "");
    svg.appendChild(svgEl("text", { x: 4, y: y + 4, "font-size": 11, fill: "#1d2733" }, label));
    svg.appendChild(svgEl("rect", { x: x(lo), y: y - 7, width: x(hi) - x(lo), height: 14, fill: "#f0f3f6", rx: 3 }));
    if (!res.venue) {
      const mark = svgEl("line", { x1: x(0), x2: x(0), y1: y - 9, y2: y + 9, stroke: "#cf222e", "stroke-width": 3, class: "case-visit" });
      mark.appendChild(svgEl("title", {}, t("caseMark")));
      svg.appendChild(mark);
    }
  });
  for (const d of dots) {
    const y = top + d.lane * laneH + laneH / 2;
    const dot = svgEl("circle", { cx: x(d.e.offsetMin * 60000), cy: y, r: 5, fill: COLORS[d.e.method] || "#57606a", class: "contact-visit" });
    dot.appendChild(svgEl("title", {}, `${d.c.name || d.c.phone} · ${t("m_" + d.e.method)} · ${KipassTrace.kstTime(d.e.at).slice(11, 16)}`));
    svg.appendChild(dot);
  }
  $("timeline").replaceChildren(svg);
}

init();
