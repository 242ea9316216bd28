// Small helpers shared by the page's modules: DOM building, formatting, words, shapes.

export const $ = (sel) => document.querySelector(sel);
export const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

// Put ``children`` in ``container``, touching only what changed. The page renders on every
// batch of messages (several times a second while officers move): an element replaced
// between the press and the release of a click loses the click, and a hovered marker its
// tooltip. Same number of children: each whose markup changed is replaced, the others are
// left in place (their listeners are those of the same thing); otherwise all are replaced.
export function reconcile(container, children) {
  const old = container.children;
  if (old.length !== children.length) {
    container.replaceChildren(...children);
    return;
  }
  for (let i = 0; i < children.length; i += 1) {
    if (old[i].outerHTML !== children[i].outerHTML) old[i].replaceWith(children[i]);
  }
}

// A press selects (not only a click): a click whose element is redrawn under the pointer
// still lands (see reconcile).
export function onPress(fn) {
  return (ev) => { if (ev.button === 0) fn(); };
}

export function fmtDuration(sec) {
  const neg = sec < 0;
  sec = Math.abs(Math.round(sec));
  const hh = Math.floor(sec / 3600), mm = Math.floor((sec % 3600) / 60), ss = sec % 60;
  const body = hh ? `${hh}:${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`
    : `${mm}:${String(ss).padStart(2, "0")}`;
  return (neg ? "-" : "") + body;
}

// An age in words a glance reads: "40 s", "12 min", "3 h 5 min".
export function fmtAge(sec) {
  if (!Number.isFinite(sec)) return "–";
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min`;
  return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
}

export function metres(lon1, lat1, lon2, lat2) {
  // great-circle distance (for ordering and showing; the recommender computes its own)
  const r = Math.PI / 180, dlat = (lat2 - lat1) * r, dlon = (lon2 - lon1) * r;
  const a = Math.sin(dlat / 2) ** 2 + Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.sin(dlon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(a));
}

// Times as the control room reads them: UK local time (GMT, or BST in summer), not UTC.
const UK_TIME = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

export function fmtTime(ms) {
  if (!Number.isFinite(ms)) return "–";
  return UK_TIME.format(new Date(ms));
}

// -- words -----------------------------------------------------------------------------
// The page shows words, never the wire's enumeration names.

export const STATUS_TEXT = {
  available: "available", en_route: "en route", at_scene: "at scene",
  committed: "committed", refreshment: "refreshment", off_duty: "off duty",
};
export const ROLE_TEXT = {
  response: "response", neighbourhood: "neighbourhood", pcso: "PCSO",
  investigator: "investigator", force_support: "force support", supervisor: "supervisor",
};
export const RESPONSE_TEXT = {
  emergency: "Emergency", priority: "Priority", scheduled: "Scheduled",
  neighbourhood: "Neighbourhood", investigator: "Investigator", signpost: "Signpost",
};
export const ALERT_TEXT = {
  cover_gap: "Cover gap", stale_location: "Stale location", unresourced: "Unresourced",
  unresourced_warning: "Unresourced soon",
};
export const DECISION_TEXT = { accepted: "accepted", overridden: "overridden", declined: "declined" };

// Any other name: its words ("criminal_damage" → "criminal damage"); "language:urdu" → "urdu speaker".
const ACRONYMS = new Set(["asb", "rtc", "ppu", "pcso", "npu", "cctv", "avl"]);

export function words(name) {
  if (name === null || name === undefined) return "";
  const text = String(name);
  if (text.startsWith("language:")) return `${text.slice(9)} speaker`;
  return text.split("_").map((w) => (ACRONYMS.has(w) ? w.toUpperCase() : w)).join(" ");
}

export function sentence(name) {
  const w = words(name);
  return w ? w[0].toUpperCase() + w.slice(1) : w;
}

// -- shapes ----------------------------------------------------------------------------
// An officer's status is told by shape and colour together (colour alone fails a
// colour-blind SDO and a grey screen): the map, the board, the legend use these.

export const SHAPES = {
  available: "circle", en_route: "triangle", at_scene: "square",
  committed: "hexagon", refreshment: "ring", off_duty: "cross",
};

export function shapePath(shape, r) {
  switch (shape) {
    case "triangle": return `M0,${-r * 1.15}L${r * 1.05},${r * 0.75}L${-r * 1.05},${r * 0.75}Z`;
    case "square": return `M${-r * 0.85},${-r * 0.85}h${r * 1.7}v${r * 1.7}h${-r * 1.7}Z`;
    case "hexagon": {
      const pts = [];
      for (let k = 0; k < 6; k += 1) {
        const a = Math.PI / 6 + (k * Math.PI) / 3;
        pts.push(`${(r * Math.cos(a)).toFixed(2)},${(r * Math.sin(a)).toFixed(2)}`);
      }
      return `M${pts.join("L")}Z`;
    }
    case "cross": return `M${-r},${-r * 0.4}h${r * 0.6}v${-r * 0.6}h${r * 0.8}v${r * 0.6}h${r * 0.6}v${r * 0.8}h${-r * 0.6}v${r * 0.6}h${-r * 0.8}v${-r * 0.6}h${-r * 0.6}Z`;
    case "diamond": return `M0,${-r}L${r},0L0,${r}L${-r},0Z`;
    default: return `M${-r},0a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0Z`;
  }
}

// A small SVG of a status's shape and colour (for lists, the board and the legend).
export function statusIcon(status, size = 14) {
  const shape = SHAPES[status] || "circle";
  const r = size / 2 - 2;
  const svg = s("svg", {
    width: size, height: size, viewBox: `${-size / 2} ${-size / 2} ${size} ${size}`,
    class: `icon st-${status}${shape === "ring" ? " ring" : ""}`, "aria-hidden": "true",
  });
  svg.append(s("path", { d: shapePath(shape, r) }));
  return svg;
}

export function rings(geom) {
  if (!geom) return [];
  if (geom.type === "Polygon") return geom.coordinates;
  if (geom.type === "MultiPolygon") return geom.coordinates.flat();
  return [];
}

// The properties of the neighbourhood a point falls in (null outside them all): the
// even-odd rule over all of a feature's rings (holes and parts alike), a horizontal ray
// from the point crossing them an odd number of times.
export function areaAt(features, lon, lat) {
  for (const f of features || []) {
    let inside = false;
    for (const ring of rings(f.geometry)) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
        const [xi, yi] = ring[i], [xj, yj] = ring[j];
        if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
      }
    }
    if (inside) return f.properties;
  }
  return null;
}

// What a websocket close code means, for the SDO (1006 alone says nothing to them).
export function closeWords(code, reason) {
  const said = reason ? `: ${reason}` : "";
  switch (code) {
    case 1000: return `the connection was closed${said}`;
    case 1001: return "the console is restarting or shutting down";
    case 1006: return "the connection to the console was lost (network, or the console stopped)";
    case 1008: return `the console refused the connection${said}`;
    case 1009: return "a message was too large for the console";
    case 1011: return "the console hit an error";
    case 1013: return `the console is busy${said}`;
    case 1015: return "the secure connection (TLS) failed";
    default: return `the connection closed (code ${code})${said}`;
  }
}
