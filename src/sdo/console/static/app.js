// SDO console page. Plain ES module, no build step, nothing loaded from elsewhere.
// Protocol: docs/console-protocol.md. The page keeps the picture the server describes
// (snapshot, then deltas) and renders it at most once per animation frame.

const $ = (sel) => document.querySelector(sel);
const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "sdo-console-token";
const SOUND_KEY = "sdo-console-sound"; // "off" if the SDO turned the chime off (this browser)
const CLIENT_STALE_S = 5; // no websocket message for this long: the connection is stale
const BACKOFF_MAX_S = 30;
const FRESH_S = 30; // an incident that arrives while the page is open is marked NEW this long
const STATUS_TEXT = {
  available: "available", en_route: "en route", at_scene: "at scene",
  committed: "committed", refreshment: "refreshment", off_duty: "off duty",
};

const state = {
  ws: null,
  hello: null,
  status: null,
  statusAt: 0, // performance.now() when the last status arrived
  lastMessageAt: 0,
  connected: false,
  retryAt: 0,
  attempt: 0,
  officers: new Map(),
  incidents: new Map(),
  recs: new Map(),
  alerts: new Map(),
  availability: {},
  minCover: {},
  deployments: [],
  areas: null,
  proj: null,
  selected: null,
  pending: new Map(), // request_id -> description
  form: null, // {kind: "override"|"decline", picked: Set}
  requestSeq: 0,
  fresh: new Map(), // incident_id -> performance.now() when it arrived live (not in a snapshot)
  areaProps: new Map(), // neighbourhood id -> its properties (from the areas message)
  find: { query: "", active: 0 }, // the officer finder: what is typed, the match chosen
  found: null, // officer_id shown on the map by the finder
  chimed: new Set(), // incidents whose wait at grade 1 was announced (or found on connecting)
  chimes: 0, // chimes sounded since the page loaded (the page shows it: #sound-btn data-chimes)
  audio: null, // the AudioContext, made at the first chime
};

const FIND_MAX = 8; // matches listed

// -- small DOM helpers ---------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
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

// Put ``children`` in ``container``, touching only what changed. The page renders on every
// batch of messages (several times a second while officers move): an element replaced
// between the press and the release of a click loses the click, and a hovered marker its
// tooltip. Same number of children: each whose markup changed is replaced, the others are
// left in place (their listeners are those of the same thing); otherwise all are replaced.
function reconcile(container, children) {
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
function onPress(fn) {
  return (ev) => { if (ev.button === 0) fn(); };
}

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

function fmtDuration(sec) {
  const neg = sec < 0;
  sec = Math.abs(Math.round(sec));
  const hh = Math.floor(sec / 3600), mm = Math.floor((sec % 3600) / 60), ss = sec % 60;
  const body = hh ? `${hh}:${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`
    : `${mm}:${String(ss).padStart(2, "0")}`;
  return (neg ? "-" : "") + body;
}

function metres(lon1, lat1, lon2, lat2) {
  // great-circle distance (for ordering and showing; the recommender computes its own)
  const r = Math.PI / 180, dlat = (lat2 - lat1) * r, dlon = (lon2 - lon1) * r;
  const a = Math.sin(dlat / 2) ** 2 + Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.sin(dlon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(a));
}

// Times as the control room reads them: UK local time (GMT, or BST in summer), not UTC.
const UK_TIME = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

function fmtTime(ms) {
  if (!Number.isFinite(ms)) return "–";
  return UK_TIME.format(new Date(ms));
}

// -- time ----------------------------------------------------------------------------
// Deadlines run on the feed's clock: the server's clock for a live feed, the event time
// for a replayed or simulated one (whose event time is far from the wall clock).

function nowMs() {
  const st = state.status;
  if (!st) return Date.now();
  const since = performance.now() - state.statusAt;
  const server = Date.parse(st.server_time);
  const event = st.event_time ? Date.parse(st.event_time) : NaN;
  if (Number.isFinite(event) && Math.abs(server - event) > 5 * 60 * 1000) return event + since;
  return server + since;
}

function gradeOf(inc) {
  const rec = state.recs.get(inc.incident_id);
  return (rec && rec.grade) || inc.grade || 0;
}

function deadlineOf(inc) {
  const grade = gradeOf(inc);
  const limits = (state.hello && state.hello.deadlines_s) || { 1: 900, 2: 3600 };
  const limit = limits[String(grade)];
  if (!limit) return null;
  const age = (nowMs() - Date.parse(inc.created_ts)) / 1000;
  const left = limit - age;
  const cls = left <= 0 ? "red" : left < limit / 3 ? "amber" : "ok";
  return { left, cls, limit };
}

// -- connection ----------------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function connect() {
  const tok = token();
  if (!tok) { showLogin(""); return; }
  $("#login").hidden = true;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  state.ws = ws;
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ type: "auth", token: tok }));
  });
  ws.addEventListener("message", (ev) => {
    state.lastMessageAt = performance.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    handle(msg);
  });
  ws.addEventListener("close", (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.connected = false;
    if (ev.reason === "authentication failed" || ev.reason === "authentication required") {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(ev.reason === "authentication failed" ? "That token was not accepted." : "Please log in.");
      return;
    }
    const delay = Math.min(BACKOFF_MAX_S, 2 ** state.attempt) * (0.75 + Math.random() * 0.5);
    state.attempt += 1;
    state.retryAt = performance.now() + delay * 1000;
    state.closeReason = ev.reason || `code ${ev.code}`;
    setTimeout(connect, delay * 1000);
    renderBanner();
  });
}

function showLogin(message) {
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#token").focus();
  renderBanner();
}

function send(msg) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
    toast("Not connected: the action was not sent.", false);
    return false;
  }
  state.ws.send(JSON.stringify(msg));
  return true;
}

// -- messages ------------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "hello":
      state.hello = msg;
      state.connected = true;
      state.attempt = 0;
      $("#user-name").textContent = msg.user;
      $("#user-role").textContent = msg.role;
      document.body.classList.toggle("viewer", !msg.can_decide);
      break;
    case "areas":
      state.areas = msg.geojson;
      state.minCover = msg.min_cover || {};
      buildMap();
      break;
    case "snapshot":
      state.officers = new Map(msg.officers.map((o) => [o.officer_id, o]));
      state.incidents = new Map(msg.incidents.map((i) => [i.incident_id, i]));
      state.recs = new Map(msg.recommendations.map((r) => [r.incident_id, r]));
      state.alerts = new Map(msg.alerts.map((a) => [`${a.kind}:${a.subject}`, a]));
      state.availability = msg.availability;
      state.minCover = msg.min_cover || state.minCover;
      state.deployments = msg.deployments.slice(-50).reverse();
      state.fresh.clear(); // what a (re)connection finds is not news
      state.chimed = new Set([...state.incidents.values()].filter(waitsAtGrade1).map((i) => i.incident_id));
      break;
    case "officer":
      state.officers.set(msg.officer.officer_id, msg.officer);
      break;
    case "incident":
      if (msg.incident.state === "closed") {
        state.incidents.delete(msg.incident.incident_id);
        state.recs.delete(msg.incident.incident_id);
        state.chimed.delete(msg.incident.incident_id);
        if (state.selected === msg.incident.incident_id) state.selected = null;
      } else {
        if (!state.incidents.has(msg.incident.incident_id)) {
          state.fresh.set(msg.incident.incident_id, performance.now());
        }
        state.incidents.set(msg.incident.incident_id, msg.incident);
        announce(msg.incident.incident_id);
      }
      break;
    case "recommendation":
      state.recs.set(msg.recommendation.incident_id, msg.recommendation);
      announce(msg.recommendation.incident_id);
      break;
    case "alert": {
      const key = `${msg.alert.kind}:${msg.alert.subject}`;
      if (msg.alert.active === false) state.alerts.delete(key);
      else {
        // a grade 1 call past its deadline with nobody deployed: the chime again, once
        const known = state.alerts.has(key);
        state.alerts.set(key, msg.alert);
        const inc = state.incidents.get(msg.alert.subject);
        if (!known && msg.alert.kind === "unresourced" && inc && waitsAtGrade1(inc) && soundOn()) chime();
      }
      break;
    }
    case "availability":
      state.availability[msg.key] = msg.counts;
      break;
    case "deployment":
      state.deployments.unshift(msg.deployment);
      state.deployments.length = Math.min(state.deployments.length, 50);
      break;
    case "status":
      state.status = msg;
      state.statusAt = performance.now();
      break;
    case "ack": {
      const what = state.pending.get(msg.request_id) || msg.decision;
      state.pending.delete(msg.request_id);
      toast(`Recorded: ${what} (${msg.incident_id})`, true);
      break;
    }
    case "error": {
      const what = state.pending.get(msg.request_id);
      state.pending.delete(msg.request_id);
      toast(`${what ? what + " refused: " : ""}${msg.error}`, false);
      break;
    }
    default:
      break;
  }
  schedule();
}

// -- the grade 1 chime ----------------------------------------------------------------

function waitsAtGrade1(inc) {
  return inc.state === "open" && !inc.decision && gradeOf(inc) === 1;
}

function soundOn() { return localStorage.getItem(SOUND_KEY) !== "off"; }

function announce(id) {
  // once per incident, when a live message makes it a grade 1 call waiting (new, or regraded)
  const inc = state.incidents.get(id);
  if (!inc || !waitsAtGrade1(inc) || state.chimed.has(id)) return;
  state.chimed.add(id);
  if (soundOn()) chime();
}

function chime() {
  // two short tones (Web Audio: no file to fetch); a browser that allows no sound before
  // the first click or key on the page stays silent until then
  state.chimes += 1;
  $("#sound-btn").dataset.chimes = String(state.chimes);
  try {
    const ctx = state.audio || (state.audio = new AudioContext());
    if (ctx.state === "suspended") ctx.resume();
    const t = ctx.currentTime;
    for (const [freq, at] of [[880, 0], [660, 0.22]]) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t + at);
      gain.gain.exponentialRampToValueAtTime(0.25, t + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + at);
      osc.stop(t + at + 0.21);
    }
  } catch (err) {
    // no audio device or no Web Audio: the title and the queue still say it
  }
}

function toggleSound() {
  localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
  renderSound();
}

function renderSound() {
  const button = $("#sound-btn"), on = soundOn();
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? "Sound on" : "Sound off";
}

// -- rendering -----------------------------------------------------------------------

let frame = 0;
function schedule() {
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
}

function render() {
  renderBanner();
  renderSound();
  renderFind();
  renderQueue();
  renderAlerts();
  renderMap();
  renderPanel();
  renderAvailability();
  renderDecisions();
}

function renderBanner() {
  const banner = $("#conn-banner");
  let cls = "bad", title = "NOT CONNECTED", detail = "";
  const sinceMsg = (performance.now() - state.lastMessageAt) / 1000;
  const st = state.status;
  if (!state.connected) {
    if (!token()) { title = "LOGGED OUT"; }
    else {
      title = "DISCONNECTED";
      const wait = Math.max(0, (state.retryAt - performance.now()) / 1000);
      detail = `${state.closeReason || "connecting"} · retry in ${wait.toFixed(0)} s · data frozen`;
    }
  } else if (sinceMsg > CLIENT_STALE_S) {
    title = "CONNECTION STALE";
    detail = `no message from the console for ${sinceMsg.toFixed(0)} s`;
  } else if (st) {
    const age = st.last_message_age_s;
    const ageText = age === null || age === undefined ? "no feed data yet" : `feed data ${age.toFixed(1)} s old`;
    switch (st.feed) {
      case "live": cls = "ok"; title = "LIVE"; detail = ageText; break;
      case "catching_up": cls = "warn"; title = "CATCHING UP"; detail = `${st.detail || ""} · ${ageText}`; break;
      case "lagging": cls = "warn"; title = "FEED LAGGING"; detail = `${st.detail || ""} · ${ageText}`; break;
      case "connecting": cls = "warn"; title = "CONNECTING TO KAFKA"; detail = st.detail || ""; break;
      case "quiet": title = "STALE FEED"; detail = `no feed messages · ${ageText}`; break;
      default: title = "FEED DOWN"; detail = `${st.detail || ""} · ${ageText}`; break;
    }
  }
  banner.className = `banner ${cls}`;
  $("#conn-state").textContent = title;
  $("#conn-detail").textContent = detail;
  document.body.classList.toggle("disconnected", !state.connected);
  document.body.classList.toggle("stale", state.connected && cls === "bad");
  $("#data-time").textContent = st && st.event_time ? fmtTime(Date.parse(st.event_time)) : "–";
}

function sortedPending() {
  const all = [...state.incidents.values()];
  const pending = all.filter((i) => i.state === "open" && !i.decision);
  pending.sort((a, b) => (gradeOf(a) || 9) - (gradeOf(b) || 9)
    || Date.parse(a.created_ts) - Date.parse(b.created_ts));
  const resourced = all.filter((i) => !(i.state === "open" && !i.decision));
  resourced.sort((a, b) => Date.parse(b.decision_ts || b.ts) - Date.parse(a.decision_ts || a.ts));
  return { pending, resourced };
}

function timerEl(inc) {
  const d = deadlineOf(inc);
  if (!d) return h("span", { class: "timer muted" }, "–");
  return h("span", { class: `timer ${d.cls}`, title: "time left to the attendance deadline" },
    d.left <= 0 ? `OVERDUE ${fmtDuration(-d.left)}` : fmtDuration(d.left));
}

function areaTip(p, available) {
  // the neighbourhood, its typology and named officer (with what they are doing now)
  if (!p) return "";
  const lines = [`${p.name} (${p.id}) · NPU ${p.npu} · cluster ${p.cluster} · typology ${p.typology}`];
  if (p.named_officer) {
    const o = state.officers.get(p.named_officer);
    lines.push(`named officer ${o ? `${o.callsign || o.officer_id} (${STATUS_TEXT[o.status] || o.status})` : p.named_officer}`);
  } else {
    lines.push("no named officer");
  }
  if (available !== undefined) lines.push(`${available} officer(s) available here`);
  return lines.join("\n");
}

function officerTip(o, stale, now) {
  // what the officer is doing, then what they can do: transport, skills, shift end
  const doing = `${o.callsign || o.officer_id} · ${(o.role || "?").replace(/_/g, " ")} · `
    + `${STATUS_TEXT[o.status] || o.status}${o.incident_id ? " → " + o.incident_id : ""}`;
  const can = [o.transport || "transport unknown"];
  if (o.skills && o.skills.length) can.push(o.skills.map((k) => k.replace(/_/g, " ")).join(", "));
  if (o.shift_end) can.push(`shift ends ${fmtTime(Date.parse(o.shift_end))}`);
  if (stale) can.push(`last fix ${fmtDuration((now - Date.parse(o.fix_ts)) / 1000)} ago`);
  return `${doing}\n${can.join(" · ")}`;
}

function whoEl(rec) {
  // who the recommendation sends and how soon, to triage the queue without opening each
  if (!rec) return null;
  if (!rec.recommended.length) {
    return rec.service ? h("span", { class: "who muted" }, `refer to ${rec.service}`)
      : h("span", { class: "who none" }, "no officer recommended");
  }
  const first = rec.candidates.find((c) => c.officer_id === rec.recommended[0]);
  const eta = first && first.eta_s !== null && first.eta_s !== undefined ? ` · ETA ${fmtDuration(first.eta_s)}` : "";
  return h("span", { class: "who" }, `→ ${rec.recommended.map(callsign).join(", ")}${eta}`);
}

function isFresh(id) {
  const at = state.fresh.get(id);
  if (at === undefined) return false;
  if (performance.now() - at < FRESH_S * 1000) return true;
  state.fresh.delete(id);
  return false;
}

function renderQueue() {
  const { pending, resourced } = sortedPending();
  $("#pending-count").textContent = String(pending.length);
  // the tab and the taskbar show the queue too: (pending, of which grade 1) SDO console
  const urgent = pending.filter((i) => gradeOf(i) === 1).length;
  document.title = pending.length
    ? `(${pending.length}${urgent ? `, ${urgent} grade 1` : ""}) SDO console` : "SDO console";
  reconcile($("#queue"), pending.map((inc) => {
    const g = gradeOf(inc);
    const rec = state.recs.get(inc.incident_id);
    const fresh = isFresh(inc.incident_id);
    return h("li", {
      class: `queue-item g${g}${state.selected === inc.incident_id ? " selected" : ""}${fresh ? " fresh" : ""}`,
      dataset: { id: inc.incident_id }, onclick: () => select(inc.incident_id),
      onpointerdown: onPress(() => select(inc.incident_id)),
    },
    h("span", { class: `grade g${g}` }, g || "?"),
    h("span", { class: "id" }, fresh ? h("span", { class: "new" }, "NEW") : null, inc.incident_id, " ",
      h("span", { class: "muted" }, rec ? rec.response : "awaiting recommendation")),
    timerEl(inc),
    h("span", { class: "cat" }, `${inc.category} · ${inc.summary || ""}`),
    whoEl(rec));
  }));
  reconcile($("#resourced"), resourced.slice(0, 20).map((inc) => h("li", {
    class: `queue-item g${gradeOf(inc)}${state.selected === inc.incident_id ? " selected" : ""}`,
    dataset: { id: inc.incident_id }, onclick: () => select(inc.incident_id),
    onpointerdown: onPress(() => select(inc.incident_id)),
  }, h("span", { class: `grade g${gradeOf(inc)}` }, gradeOf(inc) || "?"),
  h("span", { class: "id" }, inc.incident_id, " ", h("span", { class: "muted" }, inc.decision || inc.state)),
  h("span", { class: "muted" }, inc.decided_by || ""))));
}

function renderAlerts() {
  const alerts = [...state.alerts.values()].sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts));
  $("#alert-count").textContent = String(alerts.length);
  // an alert about an incident on the page (unresourced, or its warning) opens it when clicked
  reconcile($("#alerts"), alerts.map((a) => h("li", state.incidents.has(a.subject)
    ? { class: `sev-${a.severity} link`, dataset: { incident: a.subject }, title: "open the incident",
      onclick: () => select(a.subject), onpointerdown: onPress(() => select(a.subject)) }
    : { class: `sev-${a.severity}` },
    h("div", {}, h("span", { class: "alert-kind" }, a.kind.replace(/_/g, " ")), " · ", a.subject,
      h("span", { class: "muted" }, "  ", fmtTime(Date.parse(a.ts)))),
    h("div", { class: "muted" }, a.message, coverNow(a)))));
}

function coverNow(alert) {
  // a cover-gap alert says the count when it was raised; the cluster's count now beside it
  if (alert.kind !== "cover_gap" || state.minCover[alert.subject] === undefined) return null;
  const { have, min } = responseCover(alert.subject);
  return h("span", { class: "cover-now" }, ` · now ${have} / ${min}`);
}

// -- map -----------------------------------------------------------------------------
// Equirectangular projection around the areas' centre: x = lon·cos(lat0), y = -lat,
// scaled to the SVG's viewBox. Good to a fraction of a percent across a city.

function rings(geom) {
  if (!geom) return [];
  if (geom.type === "Polygon") return geom.coordinates;
  if (geom.type === "MultiPolygon") return geom.coordinates.flat();
  return [];
}

function buildMap() {
  const svg = $("#map");
  const feats = (state.areas && state.areas.features) || [];
  let minLon = Infinity, maxLon = -Infinity, minLat = Infinity, maxLat = -Infinity;
  for (const f of feats) for (const ring of rings(f.geometry)) for (const [lon, lat] of ring) {
    minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
    minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
  }
  if (!Number.isFinite(minLon)) return;
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const W = 1000, scale = W / ((maxLon - minLon) * k || 1), H = (maxLat - minLat) * scale || 1000;
  const pad = 20;
  // room below the areas for the legend, which lies over the map's bottom edge
  const below = pad + 0.09 * (H + 2 * pad);
  state.proj = (lon, lat) => [pad + (lon - minLon) * k * scale, pad + (maxLat - lat) * scale];
  svg.setAttribute("viewBox", `0 0 ${W + 2 * pad} ${H + pad + below}`);
  const P = state.proj;
  const pathOf = (geom) => rings(geom).map((ring) => "M" + ring.map(([x, y]) => P(x, y).map((v) => v.toFixed(1)).join(",")).join("L") + "Z").join("");
  const areasLayer = $("#layer-areas"), labels = $("#layer-labels");
  areasLayer.replaceChildren();
  labels.replaceChildren();
  const edges = new Map(); // segment key -> [props...]
  for (const f of feats) {
    const p = f.properties;
    const el = s("path", { d: pathOf(f.geometry), class: "area", "data-id": p.id });
    el.append(s("title", {}, areaTip(p, undefined)));
    state.areaProps.set(p.id, p);
    areasLayer.append(el);
    let cx = 0, cy = 0, n = 0;
    for (const ring of rings(f.geometry)) {
      for (let i = 0; i + 1 < ring.length; i += 1) {
        const a = ring[i].map((v) => v.toFixed(6)).join(","), b = ring[i + 1].map((v) => v.toFixed(6)).join(",");
        const key = a < b ? `${a}|${b}` : `${b}|${a}`;
        if (!edges.has(key)) edges.set(key, { a: ring[i], b: ring[i + 1], props: [] });
        edges.get(key).props.push(p);
        const [x, y] = P(ring[i][0], ring[i][1]); cx += x; cy += y; n += 1;
      }
    }
    if (n) labels.append(s("text", { x: (cx / n).toFixed(1), y: (cy / n).toFixed(1), class: "area-label" }, p.name));
  }
  // Outlines: a segment is on an NPU (cluster) boundary unless both sides share the NPU (cluster).
  let npuD = "", clusterD = "";
  for (const { a, b, props } of edges.values()) {
    const seg = `M${P(a[0], a[1]).map((v) => v.toFixed(1)).join(",")}L${P(b[0], b[1]).map((v) => v.toFixed(1)).join(",")}`;
    if (props.length < 2 || props[0].npu !== props[1].npu) npuD += seg;
    if (props.length < 2 || props[0].cluster !== props[1].cluster) clusterD += seg;
  }
  $("#layer-outlines").replaceChildren(s("path", { d: clusterD, class: "outline-cluster" }), s("path", { d: npuD, class: "outline-npu" }));
}

function diamond(x, y, r) {
  return `M${x},${y - r}L${x + r},${y}L${x},${y + r}L${x - r},${y}Z`;
}

function renderMap() {
  const P = state.proj;
  if (!P) return;
  for (const el of $("#layer-areas").children) {
    const counts = state.availability[`nbhd:${el.dataset.id}`];
    const n = (counts && counts.total) || 0;
    el.setAttribute("class", `area cover-${Math.min(n, 3)}`);
    const tip = el.firstChild, text = areaTip(state.areaProps.get(el.dataset.id), n);
    if (tip && tip.textContent !== text) tip.textContent = text;
  }
  const staleMs = 5 * 60 * 1000;
  const now = nowMs();
  const officers = [];
  for (const o of state.officers.values()) {
    if (o.lat === undefined || o.lon === undefined || o.status === "off_duty") continue;
    const [x, y] = P(o.lon, o.lat);
    const stale = o.fix_ts && now - Date.parse(o.fix_ts) > staleMs;
    const found = state.found === o.officer_id;
    const g = s("g", { class: `officer${stale ? " stale-fix" : ""}${found ? " found" : ""}`, "data-id": o.officer_id, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` });
    if (found) g.append(s("circle", { r: 20, class: "find-ring" }));
    g.append(s("circle", { r: 8, class: `st-${o.status}` }));
    g.append(s("text", { x: 11, y: 5 }, o.callsign || o.officer_id));
    g.append(s("title", {}, officerTip(o, stale, now)));
    officers.push(g);
  }
  // the one found last, on top of the others
  officers.sort((a, b) => (a.dataset.id === state.found) - (b.dataset.id === state.found));
  reconcile($("#layer-officers"), officers);
  const incs = [];
  for (const inc of state.incidents.values()) {
    const [x, y] = P(inc.lon, inc.lat);
    const g = gradeOf(inc);
    const el = s("g", {
      class: `incident g${g}${inc.state !== "open" || inc.decision ? " resourced" : ""}${state.selected === inc.incident_id ? " selected" : ""}`,
      "data-id": inc.incident_id,
    });
    el.append(s("path", { d: diamond(x, y, 13) }));
    el.append(s("text", { x: x + 15, y: y - 9 }, inc.incident_id));
    el.append(s("title", {}, `${inc.incident_id} · grade ${g || "?"} · ${inc.category}`));
    el.addEventListener("click", () => select(inc.incident_id));
    el.addEventListener("pointerdown", onPress(() => select(inc.incident_id)));
    incs.push(el);
  }
  reconcile($("#layer-incidents"), incs);
  const lines = [];
  const sel = state.selected && state.incidents.get(state.selected);
  const rec = sel && state.recs.get(sel.incident_id);
  if (sel && rec) {
    const [ix, iy] = P(sel.lon, sel.lat);
    const recommended = new Set(rec.recommended || []);
    for (const c of rec.candidates || []) {
      const o = state.officers.get(c.officer_id);
      if (!o || o.lat === undefined) continue;
      const [ox, oy] = P(o.lon, o.lat);
      lines.push(s("line", { x1: ix, y1: iy, x2: ox, y2: oy, class: `cand-line${recommended.has(c.officer_id) ? " recommended" : ""}` }));
    }
  }
  reconcile($("#layer-lines"), lines);
}

// -- finding an officer or an incident -----------------------------------------------------

function findMatches(query) {
  // officers whose callsign (or id) holds what is typed and incidents whose id does, those
  // it begins first; then officers with a skill that holds it ("taser", "urdu"), the
  // available first; each by name. A hit is {o: officer} or {inc: incident}.
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const hits = [];
  for (const o of state.officers.values()) {
    const name = (o.callsign || o.officer_id).toLowerCase();
    const at = name.indexOf(q);
    let rank = at === 0 ? 0 : at > 0 || o.officer_id.toLowerCase().includes(q) ? 1 : -1;
    // a skill as the panel shows it ("needs mental_health") or in words ("mental health")
    const words = q.replace(/_/g, " ");
    if (rank < 0 && (o.skills || []).some((k) => k.replace(/_/g, " ").toLowerCase().includes(words))) {
      rank = o.status === "available" ? 2 : 3;
    }
    if (rank >= 0) hits.push([rank, name, { o }]);
  }
  for (const inc of state.incidents.values()) {
    const name = inc.incident_id.toLowerCase();
    const at = name.indexOf(q);
    if (at >= 0) hits.push([at === 0 ? 0 : 1, name, { inc }]);
  }
  hits.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return hits.slice(0, FIND_MAX).map((hit) => hit[2]);
}

function incidentText(inc) {
  // what the finder says of an incident: its grade and kind; waiting, or what was decided
  const head = `${inc.incident_id} · grade ${gradeOf(inc) || "?"} · ${inc.category}`;
  const now = inc.state === "open" && !inc.decision ? "waiting"
    : inc.decision ? `${inc.decision}${inc.decided_by ? " by " + inc.decided_by : ""}` : inc.state;
  return [head, inc.summary ? `${now} · ${inc.summary}` : now];
}

function whereText(o) {
  // what the finder says of where an officer is (the map shows only those on duty with a fix)
  if (o.status === "off_duty") return "off duty: not on the map";
  if (o.lat === undefined || o.lon === undefined) return "no position yet";
  const age = o.fix_ts ? (nowMs() - Date.parse(o.fix_ts)) / 1000 : null;
  return age === null ? "on the map" : `fix ${fmtDuration(Math.max(0, age))} ago`;
}

function renderFind() {
  const list = $("#find-results");
  const { query } = state.find;
  if (!query.trim() || document.activeElement !== $("#find")) {
    list.hidden = true;
    return;
  }
  const hits = findMatches(query);
  state.find.active = Math.min(state.find.active, Math.max(0, hits.length - 1));
  const items = hits.map((hit, n) => {
    const { o, inc } = hit;
    let lines;
    if (o) {
      const [doing, can] = officerTip(o, false, nowMs()).split("\n");
      lines = [doing, `${whereText(o)} · ${can}`];
    } else {
      lines = incidentText(inc);
    }
    return h("li", {
      class: `${inc ? "incident " : ""}${n === state.find.active ? "active" : ""}`,
      "data-id": o ? o.officer_id : inc.incident_id,
      role: "option",
      // (mousedown: before the field loses the focus and the list hides)
      onmousedown: (ev) => { ev.preventDefault(); pick(hit); },
    }, h("div", {}, lines[0]), h("div", { class: "sub" }, lines[1]));
  });
  if (!items.length) items.push(h("li", { class: "none" }, `no officer, skill or incident matches “${query.trim()}”`));
  list.replaceChildren(...items);
  list.hidden = false;
}

function pick(hit) {
  if (hit.o) { showFound(hit.o.officer_id); return; }
  // an incident: opened (and kept in sight in its list); the field is cleared
  state.find = { query: "", active: 0 };
  $("#find").value = "";
  $("#find").blur();
  select(hit.inc.incident_id);
  requestAnimationFrame(() => {
    const el = document.querySelector(".queue-item.selected");
    if (el) el.scrollIntoView({ block: "nearest" });
  });
}

function showFound(id) {
  // mark the officer on the map (and keep the field's text); their job, if any, is selected
  const o = state.officers.get(id);
  state.found = id;
  if (o) $("#find").value = o.callsign || o.officer_id;
  state.find.query = "";
  $("#find").blur();
  if (o && o.incident_id && state.incidents.has(o.incident_id)) select(o.incident_id);
  schedule();
}

function clearFind() {
  state.find = { query: "", active: 0 };
  state.found = null;
  $("#find").value = "";
  $("#find").blur();
  schedule();
}

function onFindKey(ev) {
  // the field's own keys; none reaches the page's (see onKey)
  const hits = findMatches(state.find.query);
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    const last = Math.max(0, hits.length - 1);
    state.find.active = Math.min(last, Math.max(0, state.find.active + (ev.key === "ArrowDown" ? 1 : -1)));
    schedule();
  } else if (ev.key === "Enter") {
    if (hits.length) pick(hits[state.find.active]);
  } else if (ev.key === "Escape") {
    clearFind();
  } else {
    ev.stopPropagation();
    return;
  }
  ev.preventDefault();
  ev.stopPropagation();
}

// -- recommendation panel ----------------------------------------------------------------

function select(id) {
  if (state.selected !== id) {
    state.form = null;
    // Accept acts on the selection: focused for one incident, it must not take an Enter
    // meant for nothing on another
    const accept = $("#btn-accept");
    if (document.activeElement === accept) accept.blur();
  }
  state.selected = id;
  schedule();
}

function canDecide() { return !!(state.hello && state.hello.can_decide && state.connected); }

function renderPanel() {
  const inc = state.selected && state.incidents.get(state.selected);
  $("#rec-empty").hidden = !!inc;
  $("#rec").hidden = !inc;
  if (!inc) return;
  const rec = state.recs.get(inc.incident_id);
  const g = gradeOf(inc);
  const gradeEl = $("#rec-grade");
  gradeEl.className = `grade g${g}`;
  gradeEl.textContent = g || "?";
  $("#rec-title").textContent = `${inc.incident_id} · ${inc.category}`;
  $("#rec-sub").textContent = `${inc.summary || ""} · created ${fmtTime(Date.parse(inc.created_ts))} · ${inc.state}`;
  $("#rec-deadline").replaceChildren(...(deadlineOf(inc) ? [h("span", { class: "muted" }, "Deadline: "), timerEl(inc)] : []));
  $("#rec-response").textContent = rec ? `${rec.response} · policy ${rec.policy.name} ${rec.policy.version}` : "awaiting recommendation…";
  reconcile($("#rec-reasons"), (rec ? rec.reasons : []).map((r) => h("li", {}, r)));
  const t = inc.thrive || {};
  $("#rec-thrive").replaceChildren(
    ...["threat", "harm", "risk", "vulnerability"].map((k) => h("span", { class: `chip ${t[k]}` }, `${k}: ${t[k]}`)),
    ...["investigation", "engagement", "prevention"].filter((k) => t[k]).map((k) => h("span", { class: "chip" }, k)),
    ...(inc.ongoing ? [h("span", { class: "chip high" }, "ongoing")] : []),
    ...(inc.offender_present ? [h("span", { class: "chip high" }, "offender present")] : []),
    ...(inc.required_skills || []).map((k) => h("span", { class: "chip" }, `needs ${k}`)));
  const svc = $("#rec-service");
  svc.hidden = !(rec && rec.service);
  svc.textContent = rec && rec.service ? `Signpost to: ${rec.service}` : "";
  const recommended = new Set(rec ? rec.recommended : []);
  const form = state.form;
  reconcile($("#cands tbody"), (rec ? rec.candidates : []).map((c, i) => {
    const box = h("input", {
      type: "checkbox", "aria-label": `pick ${c.callsign}`, disabled: !(form && form.kind === "override"),
      checked: form && form.kind === "override" && form.picked.has(c.officer_id),
      onchange: (ev) => { if (ev.target.checked) form.picked.add(c.officer_id); else form.picked.delete(c.officer_id); renderForm(); },
    });
    return h("tr", { class: recommended.has(c.officer_id) ? "recommended" : "", dataset: { id: c.officer_id } },
      h("td", {}, box), h("td", {}, i + 1), h("td", {}, c.callsign), h("td", {}, c.role),
      h("td", {}, c.eta_s === null || c.eta_s === undefined ? "–" : fmtDuration(c.eta_s)),
      h("td", {}, c.distance_m === null || c.distance_m === undefined ? "–" : `${(c.distance_m / 1000).toFixed(1)} km`),
      h("td", { class: "why" }, (c.reasons || []).join("; ")));
  }));
  $("#rec-shortfalls").replaceChildren(...(rec && rec.shortfalls ? rec.shortfalls : []).map((x) => h("li", {}, x)));
  const decided = $("#rec-decided");
  decided.hidden = !inc.decision;
  decided.textContent = inc.decision ? `${inc.decision} by ${inc.decided_by} at ${fmtTime(Date.parse(inc.decision_ts))}${inc.assigned && inc.assigned.length ? " → " + inc.assigned.map(callsign).join(", ") : ""}` : "";
  const can = canDecide();
  const awaiting = inc.state === "open" && !inc.decision;
  // a signpost names nobody by design: accepting it refers the call to the service
  $("#btn-accept").disabled = !(can && awaiting && rec && (rec.recommended.length || rec.service));
  $("#btn-override").disabled = !(can && inc.state !== "closed");
  $("#btn-decline").disabled = !(can && awaiting);
  $("#viewer-note").hidden = !(state.hello && !state.hello.can_decide);
  renderForm();
}

function callsign(id) {
  const o = state.officers.get(id);
  return (o && o.callsign) || id;
}

function areaAt(lon, lat) {
  // the properties of the neighbourhood a point falls in (null outside them all): the
  // even-odd rule over all of a feature's rings (holes and parts alike, see rings()), a
  // horizontal ray from the point crossing them an odd number of times
  for (const f of (state.areas && state.areas.features) || []) {
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

function responseCover(cluster) {
  // a cluster's cover: its available response officers (as the worker's cover-gap alert
  // counts them), and its minimum (undefined if the area file gives none)
  const counts = state.availability[`cluster:${cluster}`] || {};
  return { have: counts["role:response"] || 0, min: state.minCover[cluster] };
}

function coverWarnings(ids) {
  // what sending these officers would do to their response clusters' cover (CONTRACT §3:
  // cover must not collapse); the SDO may still send them
  const taken = new Map();
  for (const id of ids) {
    const o = state.officers.get(id);
    if (!o || o.role !== "response" || o.status !== "available" || o.lon == null || o.lat == null) continue;
    const area = areaAt(o.lon, o.lat);
    if (area && area.cluster) taken.set(area.cluster, (taken.get(area.cluster) || 0) + 1);
  }
  const out = [];
  for (const [cluster, n] of taken) {
    const { have, min } = responseCover(cluster);
    if (min !== undefined && have - n < min) {
      out.push(`cluster ${cluster} would have ${Math.max(0, have - n)} available response officer(s), below its minimum cover of ${min}`);
    }
  }
  return out;
}

function renderForm() {
  const form = state.form;
  const el = $("#decide-form");
  el.hidden = !form;
  if (!form) return;
  $("#pick-wrap").hidden = form.kind !== "override";
  const warnings = form.kind === "override" ? coverWarnings(form.picked) : [];
  const cover = $("#decide-cover");
  cover.hidden = !warnings.length;
  if (cover.textContent !== warnings.join("")) cover.replaceChildren(...warnings.map((w) => h("li", {}, w)));
  if (form.kind === "override") {
    const names = [...form.picked].map(callsign);
    $("#decide-what").textContent = names.length ? `Deploy instead: ${names.join(", ")}` : "Tick candidates or add officers, and give a reason.";
    const select = $("#pick-officer");
    const current = new Set([...select.options].map((o) => o.value));
    // nearest to the incident first (straight line), those with no fix last
    const inc = state.incidents.get(state.selected);
    const away = (o) => (inc && o.lon !== undefined && o.lat !== undefined && o.lon !== null && o.lat !== null
      ? metres(o.lon, o.lat, inc.lon, inc.lat) : Infinity);
    const avail = [...state.officers.values()]
      .filter((o) => o.status === "available" && !form.picked.has(o.officer_id))
      .map((o) => ({ o, m: away(o) }))
      .sort((a, b) => a.m - b.m || (a.o.callsign || "").localeCompare(b.o.callsign || ""));
    const wanted = new Set(["", ...avail.map(({ o }) => o.officer_id)]);
    if (current.size !== wanted.size || [...wanted].some((v) => !current.has(v))) {
      select.replaceChildren(h("option", { value: "" }, "— available officers, nearest first —"),
        ...avail.map(({ o, m }) => h("option", { value: o.officer_id },
          `${o.callsign || o.officer_id} (${(o.role || "?").replace(/_/g, " ")}${o.npu ? ", " + o.npu : ""}`
          + `${Number.isFinite(m) ? `, ${(m / 1000).toFixed(1)} km` : ", no fix"})`)));
    }
  } else {
    $("#decide-what").textContent = "Decline: no deployment. A reason is required.";
  }
  $("#decide-submit").disabled = !canDecide() || !$("#decide-reason").value.trim()
    || (form.kind === "override" && form.picked.size === 0);
}

function openForm(kind) {
  state.form = { kind, picked: new Set() };
  $("#decide-reason").value = "";
  schedule();
  setTimeout(() => $("#decide-reason").focus(), 0);
}

function act(kind, extra) {
  const inc = state.incidents.get(state.selected);
  if (!inc) return;
  const rec = state.recs.get(inc.incident_id);
  state.requestSeq += 1;
  const requestId = `r${Date.now().toString(36)}-${state.requestSeq}`;
  const msg = { type: kind, incident_id: inc.incident_id, request_id: requestId, ...extra };
  if (rec) msg.recommendation_id = rec.recommendation_id;
  state.pending.set(requestId, `${kind} ${inc.incident_id}`);
  if (send(msg)) { state.form = null; schedule(); }
}

function toast(text, ok) {
  const el = h("div", { class: `toast ${ok ? "ok" : "err"}` }, text);
  $("#toasts").prepend(el);
  setTimeout(() => el.remove(), ok ? 6000 : 12000);
}

function renderAvailability() {
  const av = state.availability;
  const rows = (prefix) => Object.entries(av).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]);
  // a cluster's cover (responseCover), the other roles listed beside
  $("#av-cluster tbody").replaceChildren(...rows("cluster:").map(([id, c]) => {
    const { have, min } = responseCover(id);
    const below = min !== undefined && have < min;
    return h("tr", { "data-id": id }, h("td", {}, id),
      h("td", { class: `cover ${below ? "below" : "okcover"}` }, `${have} / ${min ?? "–"}`),
      h("td", { class: "muted" }, roleSummary(c)));
  }));
  $("#av-npu tbody").replaceChildren(...rows("npu:").map(([id, c]) => h("tr", {}, h("td", {}, id), h("td", {}, c.total || 0), h("td", { class: "muted" }, roleSummary(c)))));
  const roles = {}, skills = {};
  for (const [, c] of rows("npu:")) {
    for (const [k, v] of Object.entries(c)) {
      if (k.startsWith("role:")) roles[k.slice(5)] = (roles[k.slice(5)] || 0) + v;
      if (k.startsWith("skill:")) skills[k.slice(6)] = (skills[k.slice(6)] || 0) + v;
    }
  }
  const table = (obj) => Object.entries(obj).sort((a, b) => b[1] - a[1]).map(([k, v]) => h("tr", {}, h("td", {}, k.replace(/_/g, " ")), h("td", {}, v)));
  $("#av-role tbody").replaceChildren(...table(roles));
  $("#av-skill tbody").replaceChildren(...table(skills));
}

function roleSummary(c) {
  return Object.entries(c).filter(([k]) => k.startsWith("role:")).map(([k, v]) => `${k.slice(5)} ${v}`).join(" · ");
}

function renderDecisions() {
  $("#decisions").replaceChildren(...state.deployments.slice(0, 15).map((d) => h("li", {},
    h("span", { class: "muted" }, fmtTime(Date.parse(d.ts)), " "),
    `${d.by} ${d.decision} ${d.incident_id}`,
    d.officer_ids && d.officer_ids.length ? ` → ${d.officer_ids.map(callsign).join(", ")}` : "",
    d.reason ? h("span", { class: "muted" }, ` (${d.reason})`) : "")));
}

// -- keyboard ------------------------------------------------------------------------
// An SDO works the queue from the keyboard: move through the pending incidents, then
// accept (two keys: A puts the focus on Accept, Enter presses it), override or decline.

function toggleKeys(show) {
  const el = $("#keys");
  el.hidden = show === undefined ? !el.hidden : !show;
}

function step(delta) {
  const { pending } = sortedPending();
  if (!pending.length) return;
  const at = pending.findIndex((i) => i.incident_id === state.selected);
  const next = at < 0 ? (delta > 0 ? 0 : pending.length - 1)
    : Math.min(pending.length - 1, Math.max(0, at + delta));
  select(pending[next].incident_id);
  // once rendered, keep the selected item in sight in a long queue
  requestAnimationFrame(() => {
    const el = document.querySelector(`#queue .queue-item.selected`);
    if (el) el.scrollIntoView({ block: "nearest" });
  });
}

function press(id) {
  const button = $(id);
  if (!button.disabled && !$("#rec").hidden) button.click();
}

function onKey(ev) {
  if (ev.key === "Escape") {
    if (!$("#keys").hidden) toggleKeys(false);
    else if (state.form) { state.form = null; schedule(); }
    else if (state.found) clearFind();
    return;
  }
  if (!$("#keys").hidden && ev.key !== "?") return; // the help is open: only ? and Esc
  const t = ev.target;
  const typing = t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey || !$("#login").hidden) return;
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (key === "j" || key === "ArrowDown") step(1);
  else if (key === "k" || key === "ArrowUp") step(-1);
  else if (key === "a") {
    const accept = $("#btn-accept");
    if (!accept.disabled && !$("#rec").hidden) accept.focus();
  } else if (key === "o") press("#btn-override");
  else if (key === "d") press("#btn-decline");
  else if (key === "?") toggleKeys();
  else if (key === "/") { $("#find").focus(); $("#find").select(); }
  else if (key === "m") toggleSound();
  else return;
  ev.preventDefault();
}

// -- wiring --------------------------------------------------------------------------

function wire() {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tok = $("#token").value.trim();
    if (!tok) return;
    sessionStorage.setItem(TOKEN_KEY, tok);
    $("#token").value = "";
    if (state.ws) state.ws.close();
    connect();
  });
  $("#logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    const ws = state.ws;
    state.ws = null;
    state.connected = false;
    if (ws) ws.close(1000, "logged out");
    showLogin("Logged out.");
  });
  $("#btn-accept").addEventListener("click", () => act("accept", {}));
  $("#btn-override").addEventListener("click", () => openForm("override"));
  $("#btn-decline").addEventListener("click", () => openForm("decline"));
  $("#decide-cancel").addEventListener("click", () => { state.form = null; schedule(); });
  $("#decide-reason").addEventListener("input", renderForm);
  $("#pick-officer").addEventListener("change", (ev) => {
    if (state.form && ev.target.value) { state.form.picked.add(ev.target.value); ev.target.value = ""; schedule(); }
  });
  $("#decide-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = state.form;
    if (!form) return;
    const reason = $("#decide-reason").value.trim();
    if (!reason) return;
    if (form.kind === "override") act("override", { officer_ids: [...form.picked], reason });
    else act("decline", { reason });
  });
  document.addEventListener("keydown", onKey);
  const find = $("#find");
  find.addEventListener("keydown", onFindKey);
  find.addEventListener("input", () => {
    state.find = { query: find.value, active: 0 };
    if (!find.value) state.found = null;
    schedule();
  });
  find.addEventListener("focus", () => { state.find.query = find.value; schedule(); });
  find.addEventListener("blur", schedule);
  $("#keys-btn").addEventListener("click", () => toggleKeys());
  $("#sound-btn").addEventListener("click", toggleSound);
  $("#keys-close").addEventListener("click", () => toggleKeys(false));
  // Timers, data age and staleness change with time alone: re-render once a second.
  setInterval(schedule, 1000);
}

wire();
render();
connect();
