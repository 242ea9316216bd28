// The map: Leaflet (vendored, /vendor/leaflet), no tiles — the area file is the map.
// Neighbourhoods filled by the officers available in them, NPU and cluster boundaries,
// officers (status by shape and colour), calls (diamonds by grade), the selected call's
// candidates. Pan and zoom are Leaflet's; labels are decluttered (the most important
// placed first, any that would overlap a placed one hidden); a legend names every colour
// and shape.

import { features, gradeOf, incidentInScope, nowMs, officerInScope, state } from "./state.js";
import {
  $, ROLE_TEXT, SHAPES, STATUS_TEXT, h, rings, s, shapePath, statusIcon, words, fmtAge, fmtTime,
} from "./util.js";

const L = window.L;
const STALE_FIX_MS = 5 * 60 * 1000;
const LABEL_H = 16;
const CHAR_W = 7.2;
const LEGEND_KEY = "sdo-console-legend";

let map = null;
let hooks = { select: () => {}, found: () => {} };
const areaLayers = new Map(); // neighbourhood id -> its polygon layer
const areaLabels = new Map(); // neighbourhood id -> label marker
const officerMarks = new Map(); // officer id -> {marker, key}
const incidentMarks = new Map(); // incident id -> {marker, key}
let outlines = null;
let lines = null;
let bounds = null;
let declutterDue = 0;
let fitPending = false; // a fit asked for while the map was hidden (no size): done when shown

export function initMap(el, callbacks) {
  hooks = { ...hooks, ...callbacks };
  map = L.map(el, {
    zoomSnap: 0.25, zoomDelta: 0.5, wheelPxPerZoomLevel: 90, attributionControl: false,
    minZoom: 9, maxZoom: 18, keyboard: false, boxZoom: true, inertia: false,
  });
  map.setView([52.52, -1.82], 11);
  const fit = L.control({ position: "topleft" });
  fit.onAdd = () => {
    const b = h("button", { type: "button", class: "map-fit", title: "fit the area worked (F)", "aria-label": "fit the map to the area worked" }, "⌂");
    L.DomEvent.disableClickPropagation(b);
    b.addEventListener("click", () => fitScope());
    return b;
  };
  fit.addTo(map);
  legend().addTo(map);
  lines = L.layerGroup().addTo(map);
  map.on("zoomend moveend resize", () => declutter(true));
  new ResizeObserver(() => {
    // hidden (another tab): leave Leaflet its last size, or showing the map again would
    // shift it by half the map (a resize from nothing, kept centred)
    if (!el.clientWidth || !el.clientHeight) return;
    map.invalidateSize();
    if (fitPending && el.clientWidth && el.clientHeight) { fitPending = false; fitScope(); }
  }).observe(el);
}

export function mapReady() { return !!(map && bounds); }

// -- areas ------------------------------------------------------------------------------

export function buildAreas() {
  if (!map) return;
  for (const layer of areaLayers.values()) layer.remove();
  for (const m of areaLabels.values()) m.remove();
  areaLayers.clear();
  areaLabels.clear();
  if (outlines) outlines.forEach((l) => l.remove());
  const feats = features();
  const edges = new Map(); // segment -> {a, b, props}
  let all = null;
  for (const f of feats) {
    const p = f.properties;
    state.areaProps.set(p.id, p);
    const layer = L.geoJSON(f, {
      style: { className: "area cover-0", weight: 0.7, color: "#33424f", fillOpacity: 1 },
      interactive: true,
    });
    layer.eachLayer((poly) => {
      poly.on("add", () => {
        const el = poly.getElement();
        if (el) el.dataset.id = p.id;
      });
    });
    layer.bindTooltip(() => areaTip(p), { sticky: true, className: "map-tip", direction: "top" });
    layer.addTo(map);
    areaLayers.set(p.id, layer);
    const b = layer.getBounds();
    all = all ? all.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
    let cx = 0, cy = 0, n = 0;
    for (const ring of rings(f.geometry)) {
      for (let i = 0; i + 1 < ring.length; i += 1) {
        const a = ring[i].map((v) => v.toFixed(6)).join(","), c = ring[i + 1].map((v) => v.toFixed(6)).join(",");
        const key = a < c ? `${a}|${c}` : `${c}|${a}`;
        if (!edges.has(key)) edges.set(key, { a: ring[i], b: ring[i + 1], props: [] });
        edges.get(key).props.push(p);
        cx += ring[i][0]; cy += ring[i][1]; n += 1;
      }
    }
    if (n) {
      const label = L.marker([cy / n, cx / n], {
        interactive: false, keyboard: false,
        icon: L.divIcon({ className: "area-label", html: "", iconSize: null }),
      }).addTo(map);
      label.getElement().textContent = p.name;
      label.getElement().dataset.id = p.id;
      areaLabels.set(p.id, label);
    }
  }
  // Outlines: a segment is on an NPU (cluster) boundary unless both sides share the NPU (cluster).
  const npu = [], cluster = [];
  for (const { a, b, props } of edges.values()) {
    const seg = [[a[1], a[0]], [b[1], b[0]]];
    if (props.length < 2 || props[0].npu !== props[1].npu) npu.push(seg);
    if (props.length < 2 || props[0].cluster !== props[1].cluster) cluster.push(seg);
  }
  outlines = [
    L.polyline(cluster, { className: "outline-cluster", interactive: false, weight: 1.6, color: "#4aa3ff", dashArray: "6 4" }).addTo(map),
    L.polyline(npu, { className: "outline-npu", interactive: false, weight: 2.6, color: "#c9d4df" }).addTo(map),
  ];
  bounds = all;
  fitScope();
}

function scopeBounds() {
  if (!bounds) return null;
  if (!state.scope) return bounds;
  const [kind, id] = state.scope.split(":");
  let b = null;
  for (const [nid, layer] of areaLayers) {
    const p = state.areaProps.get(nid);
    if ((kind === "npu" ? p.npu : p.cluster) !== id) continue;
    b = b ? b.extend(layer.getBounds()) : L.latLngBounds(layer.getBounds().getSouthWest(), layer.getBounds().getNorthEast());
  }
  return b || bounds;
}

export function fitScope() {
  const b = scopeBounds();
  if (!map || !b) return;
  const el = map.getContainer();
  if (!el.clientWidth || !el.clientHeight) { fitPending = true; return; }
  map.invalidateSize();
  // the legend, when open, lies over the map's top right: keep the area clear of it
  const legendBox = document.getElementById("legend-body");
  const right = legendBox && !legendBox.hidden ? legendBox.parentElement.offsetWidth + 16 : 12;
  map.fitBounds(b, { paddingTopLeft: [12, 12], paddingBottomRight: [Math.min(right, map.getSize().x / 2), 12] });
}

export function showOfficer(id) {
  const o = state.officers.get(id);
  if (map && o && o.lat !== undefined && o.lat !== null) {
    map.panTo([o.lat, o.lon]);
  }
}

export function showIncident(id) {
  const inc = state.incidents.get(id);
  if (map && inc && !map.getBounds().pad(-0.05).contains([inc.lat, inc.lon])) map.panTo([inc.lat, inc.lon]);
}

function areaTip(p) {
  // the neighbourhood, its typology and named officer (with what they are doing now)
  if (!p) return "";
  const counts = state.availability[`nbhd:${p.id}`];
  const n = (counts && counts.total) || 0;
  const lines = [`${p.name} (${p.id}) · NPU ${p.npu} · cluster ${p.cluster} · typology ${p.typology}`];
  if (p.named_officer) {
    const o = state.officers.get(p.named_officer);
    lines.push(`named officer ${o ? `${o.callsign || o.officer_id} (${STATUS_TEXT[o.status] || o.status})` : p.named_officer}`);
  } else {
    lines.push("no named officer");
  }
  lines.push(`${n} officer(s) available here`);
  return h("div", { class: "area-tip" }, ...lines.map((line) => h("div", {}, line)));
}

// -- officers and calls --------------------------------------------------------------------

export function officerTip(o, stale, now) {
  // what the officer is doing, then what they can do: transport, skills, shift end
  const doing = `${o.callsign || o.officer_id} · ${ROLE_TEXT[o.role] || words(o.role || "?")} · `
    + `${STATUS_TEXT[o.status] || o.status}${o.incident_id ? " → " + o.incident_id : ""}`;
  const can = [o.transport || "transport unknown"];
  if (o.skills && o.skills.length) can.push(o.skills.map(words).join(", "));
  if (o.shift_end) can.push(`shift ends ${fmtTime(Date.parse(o.shift_end))}`);
  if (stale) can.push(`last fix ${fmtAge((now - Date.parse(o.fix_ts)) / 1000)} ago`);
  return `${doing}\n${can.join(" · ")}`;
}

function officerIcon(o, stale, found, cand) {
  const shape = SHAPES[o.status] || "circle";
  const svg = s("svg", { width: 20, height: 20, viewBox: "-10 -10 20 20", "aria-hidden": "true" });
  if (found) svg.append(s("circle", { r: 9.5, class: "find-ring" }));
  svg.append(s("path", { d: shapePath(shape, found ? 6 : 6.5), class: `mark st-${o.status}${shape === "ring" ? " ring" : ""}` }));
  const div = h("div", {
    class: `officer st-${o.status}${stale ? " stale-fix" : ""}${found ? " found" : ""}${cand ? " cand" : ""}`,
    dataset: { id: o.officer_id },
  });
  div.append(svg, h("span", { class: "lbl" }, o.callsign || o.officer_id));
  return L.divIcon({ className: "mk", html: div, iconSize: [20, 20], iconAnchor: [10, 10] });
}

function incidentIcon(inc, g, selected, done) {
  const svg = s("svg", { width: 26, height: 26, viewBox: "-13 -13 26 26", "aria-hidden": "true" });
  svg.append(s("path", { d: shapePath("diamond", 12) }));
  svg.append(s("text", { x: 0, y: 4.5, "text-anchor": "middle" }, String(g || "?")));
  const div = h("div", {
    class: `incident g${g}${done ? " resourced" : ""}${selected ? " selected" : ""}`,
    dataset: { id: inc.incident_id },
  });
  div.append(svg, h("span", { class: "lbl" }, inc.incident_id));
  return L.divIcon({ className: "mk mk-inc", html: div, iconSize: [26, 26], iconAnchor: [13, 13] });
}

function setTitle(marker, text) {
  const el = marker.getElement();
  const inner = el && el.firstElementChild;
  if (inner && inner.getAttribute("title") !== text) inner.setAttribute("title", text);
}

export function renderMap() {
  if (!map || !bounds) return;
  for (const [nid, layer] of areaLayers) {
    const counts = state.availability[`nbhd:${nid}`];
    const n = Math.min((counts && counts.total) || 0, 3);
    const p = state.areaProps.get(nid);
    const out = state.scope && !((state.scope === `npu:${p.npu}`) || (state.scope === `cluster:${p.cluster}`));
    const cls = `area cover-${n}${out ? " out-of-scope" : ""}`;
    layer.eachLayer((poly) => {
      const el = poly.getElement();
      if (el && el.getAttribute("class") !== `${cls} leaflet-interactive`) el.setAttribute("class", `${cls} leaflet-interactive`);
    });
  }
  const now = nowMs();
  const sel = state.selected && state.incidents.get(state.selected);
  const rec = sel && state.recs.get(sel.incident_id);
  const cands = new Set(rec ? (rec.candidates || []).map((c) => c.officer_id) : []);
  const seen = new Set();
  for (const o of state.officers.values()) {
    if (o.lat === undefined || o.lat === null || o.lon === undefined || o.status === "off_duty") continue;
    const cand = cands.has(o.officer_id);
    if (!cand && state.found !== o.officer_id && !officerInScope(o)) continue;
    seen.add(o.officer_id);
    const stale = !!(o.fix_ts && now - Date.parse(o.fix_ts) > STALE_FIX_MS);
    const found = state.found === o.officer_id;
    const key = `${o.status}|${stale}|${found}|${cand}|${o.callsign}`;
    let m = officerMarks.get(o.officer_id);
    if (!m) {
      const marker = L.marker([o.lat, o.lon], { icon: officerIcon(o, stale, found, cand), keyboard: false, riseOnHover: true });
      marker.on("click", () => hooks.found(o.officer_id));
      marker.addTo(map);
      m = { marker, key, lat: o.lat, lon: o.lon };
      officerMarks.set(o.officer_id, m);
    }
    if (m.key !== key) { m.marker.setIcon(officerIcon(o, stale, found, cand)); m.key = key; }
    if (m.lat !== o.lat || m.lon !== o.lon) { m.marker.setLatLng([o.lat, o.lon]); m.lat = o.lat; m.lon = o.lon; }
    m.cand = cand;
    m.found = found;
    m.marker.setZIndexOffset(found ? 2000 : cand ? 1000 : 0);
    setTitle(m.marker, officerTip(o, stale, now));
  }
  for (const [id, m] of officerMarks) if (!seen.has(id)) { m.marker.remove(); officerMarks.delete(id); }
  const incSeen = new Set();
  for (const inc of state.incidents.values()) {
    if (inc.incident_id !== state.selected && !incidentInScope(inc)) continue;
    incSeen.add(inc.incident_id);
    const g = gradeOf(inc);
    const selected = state.selected === inc.incident_id;
    const done = inc.state !== "open" || !!inc.decision;
    const key = `${g}|${selected}|${done}`;
    let m = incidentMarks.get(inc.incident_id);
    if (!m) {
      const marker = L.marker([inc.lat, inc.lon], { icon: incidentIcon(inc, g, selected, done), keyboard: false });
      const pick = () => hooks.select(inc.incident_id);
      marker.on("click", pick);
      marker.on("mousedown", (ev) => { if (ev.originalEvent.button === 0) pick(); });
      marker.addTo(map);
      m = { marker, key };
      incidentMarks.set(inc.incident_id, m);
    } else if (m.key !== key) {
      m.marker.setIcon(incidentIcon(inc, g, selected, done));
      m.key = key;
    }
    m.marker.setZIndexOffset(selected ? 3000 : 1500 - g * 100);
    setTitle(m.marker, `${inc.incident_id} · grade ${g || "?"} · ${words(inc.category)}${done ? ` · ${inc.decision || inc.state}` : ""}`);
  }
  for (const [id, m] of incidentMarks) if (!incSeen.has(id)) { m.marker.remove(); incidentMarks.delete(id); }
  lines.clearLayers();
  if (sel && rec) {
    const recommended = new Set(rec.recommended || []);
    for (const c of rec.candidates || []) {
      const o = state.officers.get(c.officer_id);
      if (!o || o.lat === undefined || o.lat === null) continue;
      L.polyline([[sel.lat, sel.lon], [o.lat, o.lon]], {
        className: `cand-line${recommended.has(c.officer_id) ? " recommended" : ""}`, interactive: false,
        weight: recommended.has(c.officer_id) ? 2.4 : 1.2, color: recommended.has(c.officer_id) ? "#ffffff" : "#8aa4bd",
        dashArray: recommended.has(c.officer_id) ? null : "4 3",
      }).addTo(lines);
    }
  }
  declutter(false);
}

// -- labels ------------------------------------------------------------------------------

function declutter(now) {
  // at most four times a second while data moves; at once after a pan or zoom
  const t = performance.now();
  if (!now && t < declutterDue) return;
  declutterDue = t + 250;
  const size = map.getSize();
  // the calls' diamonds are obstacles: no label is written over one
  const placed = [];
  for (const m of incidentMarks.values()) {
    const pt = map.latLngToContainerPoint(m.marker.getLatLng());
    placed.push([pt.x - 12, pt.y - 12, pt.x + 12, pt.y + 12]);
  }
  const items = [];
  for (const [id, m] of incidentMarks) {
    const inc = state.incidents.get(id);
    const pri = id === state.selected ? 0 : 1 + gradeOf(inc || {}) / 10;
    items.push([pri, m.marker, 14]);
  }
  for (const [id, m] of officerMarks) {
    const pri = m.found ? 0 : m.cand ? 1.5 : 3;
    items.push([pri, m.marker, 11]);
  }
  const zoom = map.getZoom();
  for (const m of areaLabels.values()) items.push([zoom >= 11.5 ? 5 : 99, m, 0]);
  items.sort((a, b) => a[0] - b[0]);
  for (const [pri, marker, dx] of items) {
    const el = marker.getElement();
    if (!el) continue;
    const label = dx ? el.querySelector(".lbl") : el;
    if (!label) continue;
    const text = label.textContent || "";
    const pt = map.latLngToContainerPoint(marker.getLatLng());
    const w = text.length * CHAR_W + 6;
    const box = dx ? [pt.x + dx, pt.y - LABEL_H / 2, pt.x + dx + w, pt.y + LABEL_H / 2]
      : [pt.x - w / 2, pt.y - LABEL_H / 2, pt.x + w / 2, pt.y + LABEL_H / 2];
    const offscreen = box[2] < 0 || box[0] > size.x || box[3] < 0 || box[1] > size.y;
    const clash = pri >= 99 || placed.some((b) => b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3]);
    const show = pri === 0 || (!offscreen && !clash);
    label.classList.toggle("hidden-label", !show);
    if (show && !offscreen) placed.push(box);
  }
}

// -- legend ------------------------------------------------------------------------------

function swatch(cls) {
  return h("span", { class: `swatch ${cls}`, "aria-hidden": "true" });
}

function lineKey(cls) {
  const svg = s("svg", { width: 26, height: 10, viewBox: "0 0 26 10", "aria-hidden": "true" });
  svg.append(s("line", { x1: 1, y1: 5, x2: 25, y2: 5, class: cls }));
  return svg;
}

function legend() {
  const ctl = L.control({ position: "topright" });
  ctl.onAdd = () => {
    const body = h("div", { class: "legend-body", id: "legend-body" },
      h("div", { class: "lg-title" }, "Officers (shape and colour)"),
      ...["available", "en_route", "at_scene", "committed", "refreshment"].map((st) =>
        h("div", { class: "lg-row", dataset: { key: `status:${st}` } }, statusIcon(st, 14), STATUS_TEXT[st])),
      h("div", { class: "lg-row", dataset: { key: "stale" } }, h("span", { class: "stale-key", "aria-hidden": "true" }), "red dashed edge: no position for 5 min"),
      h("div", { class: "lg-title" }, "Calls (◆ by grade)"),
      ...[1, 2, 3, 4].map((g) => h("div", { class: "lg-row", dataset: { key: `grade:${g}` } }, swatch(`inc-key g${g}`), `grade ${g}`)),
      h("div", { class: "lg-row", dataset: { key: "resourced" } }, swatch("inc-key g1 faded"), "faded: decided / resourced"),
      h("div", { class: "lg-title" }, "Neighbourhood fill: officers available"),
      h("div", { class: "lg-row fills", dataset: { key: "fill" } },
        ...[0, 1, 2, 3].map((n) => h("span", { class: "fill-key" }, swatch(`cover-${n}`), n === 3 ? "3+" : String(n)))),
      h("div", { class: "lg-title" }, "Lines"),
      h("div", { class: "lg-row", dataset: { key: "npu" } }, lineKey("outline-npu"), "NPU boundary"),
      h("div", { class: "lg-row", dataset: { key: "cluster" } }, lineKey("outline-cluster"), "response cluster boundary"),
      h("div", { class: "lg-row", dataset: { key: "candidate" } }, lineKey("cand-line"), "candidate for the selected call"),
      h("div", { class: "lg-row", dataset: { key: "recommended" } }, lineKey("cand-line recommended"), "recommended for it"));
    const toggle = h("button", { type: "button", class: "small legend-toggle", "aria-expanded": "true", "aria-controls": "legend-body" }, "Legend");
    const show = (open) => {
      body.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = open ? "Legend ▾" : "Legend ▸";
    };
    toggle.addEventListener("click", () => {
      show(body.hidden);
      sessionStorage.setItem(LEGEND_KEY, body.hidden ? "closed" : "open");
    });
    // open where the map has room for it (or as the SDO last left it)
    const kept = sessionStorage.getItem(LEGEND_KEY);
    show(kept ? kept === "open" : map.getSize().x >= 900);
    const box = h("div", { class: "legend", id: "legend" }, toggle, body);
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    return box;
  };
  return ctl;
}
