// SDO console page. Plain ES modules, no build step, nothing loaded from elsewhere (the
// map library is vendored and served by the console). Protocol: docs/console-protocol.md.
// The page keeps the picture the server describes (snapshot, then deltas) and renders it
// at most once per animation frame. Layout: the queue and the alerts on the left (each
// scrolls on its own), the map and the boards in the middle, the selected call on the
// right: its header and recommendation at the top and the decision at the bottom, always
// in sight, what is long (candidates, the call's story) scrolling between them.

import { initBoard, onBoardClick, renderBoard } from "./board.js";
import {
  buildAreas, fitScope, initMap, mapReady, officerTip, renderMap, showIncident, showOfficer,
} from "./map.js";
import {
  callsign, canDecide, deadlineOf, features, gradeOf, incidentInScope, nowMs, placeOf,
  scopeText, state,
} from "./state.js";
import {
  $, ALERT_TEXT, DECISION_TEXT, RESPONSE_TEXT, ROLE_TEXT, STATUS_TEXT, areaAt, closeWords,
  fmtAge, fmtDuration, fmtTime, h, metres, onPress, reconcile, sentence, statusIcon, words,
} from "./util.js";

const TOKEN_KEY = "sdo-console-token";
const SOUND_KEY = "sdo-console-sound"; // "off" if the SDO turned the chime off (this browser)
const PENDING_KEY = "sdo-console-pending"; // requests not answered yet (survive a reload)
const SCOPE_KEY = "sdo-console-scope";
const CLIENT_STALE_S = 5; // no websocket message for this long: the connection is stale
const BACKOFF_MAX_S = 30;
const FRESH_S = 30; // a call that arrives while the page is open is marked NEW this long
const FIND_MAX = 8;
const CHANNEL = "BroadcastChannel" in window ? new BroadcastChannel("sdo-console") : null;

// -- connection ----------------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function connect() {
  const tok = token();
  if (!tok) { showLogin(""); return; }
  $("#login").hidden = true;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  state.ws = ws;
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token: tok })));
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
    if (["authentication failed", "authentication required"].includes(ev.reason) || ev.reason.startsWith("access changed")) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(ev.reason === "authentication failed" ? "That token was not accepted."
        : ev.reason.startsWith("access changed") ? "Your access was changed or removed: log in again with your current token."
          : "Please log in.");
      return;
    }
    const delay = Math.min(BACKOFF_MAX_S, 2 ** state.attempt) * (0.75 + Math.random() * 0.5);
    state.attempt += 1;
    state.retryAt = performance.now() + delay * 1000;
    state.closeReason = closeWords(ev.code, ev.reason);
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
    toast("Not connected: nothing was sent.", false);
    return false;
  }
  state.ws.send(JSON.stringify(msg));
  return true;
}

function requestId() {
  state.requestSeq += 1;
  const rnd = Math.random().toString(36).slice(2, 8);
  return `r${Date.now().toString(36)}-${rnd}-${state.requestSeq}`;
}

function savePending() {
  const rows = [...state.pending].map(([id, p]) => [id, { what: p.what, incident_id: p.incident_id }]);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(rows));
}

function loadPending() {
  try {
    for (const [id, p] of JSON.parse(sessionStorage.getItem(PENDING_KEY) || "[]")) state.pending.set(id, p);
  } catch { /* a broken entry is dropped */ }
}

// An action, remembered until the server answers it (and across a reconnection: then the
// page asks the server which of them Kafka holds, and says so).
function request(msg, what, incidentId, extra = {}) {
  const id = requestId();
  state.pending.set(id, { what, incident_id: incidentId, ...extra });
  savePending();
  if (!send({ ...msg, request_id: id })) {
    state.pending.delete(id);
    savePending();
    return null;
  }
  return id;
}

// -- messages ------------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "batch": // officers' and availability deltas, sent together (docs/console-protocol.md)
      for (const m of msg.messages) handle(m);
      return;
    case "hello":
      state.hello = msg;
      state.connected = true;
      state.attempt = 0;
      $("#user-name").textContent = msg.user;
      $("#user-role").textContent = msg.role;
      document.body.classList.toggle("viewer", !msg.can_decide);
      if (state.scope) send({ type: "work", scope: state.scope, request_id: "work" });
      if (state.pending.size) {
        send({ type: "resolve", request_id: "resolve", request_ids: [...state.pending.keys()].slice(0, 100) });
      }
      break;
    case "areas":
      state.areas = msg.geojson;
      state.minCover = msg.min_cover || {};
      state.placeOf.clear();
      buildWork();
      buildAreas();
      break;
    case "snapshot":
      state.officers = new Map(msg.officers.map((o) => [o.officer_id, o]));
      state.incidents = new Map(msg.incidents.map((i) => [i.incident_id, i]));
      state.recs = new Map(msg.recommendations.map((r) => [r.incident_id, r]));
      state.alerts = new Map(msg.alerts.map((a) => [`${a.kind}:${a.subject}`, a]));
      state.acks = new Map((msg.acks || []).map((a) => [`${a.kind}:${a.subject}`, a]));
      state.availability = msg.availability;
      state.minCover = msg.min_cover || state.minCover;
      state.deployments = msg.deployments.slice(-50).reverse();
      state.fresh.clear(); // what a (re)connection finds is not news
      state.chimed = new Set([...state.incidents.values()].filter(waitsAtGrade1).map((i) => i.incident_id));
      if (state.selected) askStory(state.selected);
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
        const isNew = !state.incidents.has(msg.incident.incident_id);
        if (isNew) state.fresh.set(msg.incident.incident_id, performance.now());
        state.incidents.set(msg.incident.incident_id, msg.incident);
        if (isNew) sayLater(msg.incident.incident_id);
        announce(msg.incident.incident_id);
      }
      break;
    case "recommendation":
      state.recs.set(msg.recommendation.incident_id, msg.recommendation);
      say(msg.recommendation.incident_id);
      announce(msg.recommendation.incident_id);
      break;
    case "alert": {
      const key = `${msg.alert.kind}:${msg.alert.subject}`;
      if (msg.alert.active === false) { state.alerts.delete(key); state.acks.delete(key); } else {
        // a grade 1 call past its deadline with nobody deployed: the chime again, once
        const known = state.alerts.has(key);
        state.alerts.set(key, msg.alert);
        const inc = state.incidents.get(msg.alert.subject);
        if (!known && msg.alert.kind === "unresourced" && inc && waitsAtGrade1(inc) && soundOn()) chime();
      }
      break;
    }
    case "alert_ack": {
      const key = `${msg.ack.kind}:${msg.ack.subject}`;
      if (msg.cleared) state.acks.delete(key); else state.acks.set(key, msg.ack);
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
    case "presence":
      state.presence = msg.sessions;
      break;
    case "timeline":
      story(msg);
      break;
    case "ack":
      answered(msg, true);
      break;
    case "error":
      answered(msg, false);
      break;
    case "resolved":
      resolved(msg.results || []);
      break;
    default:
      break;
  }
  schedule();
}

function answered(msg, ok) {
  const p = state.pending.get(msg.request_id);
  if (msg.request_id === "work" || msg.request_id === "resolve") {
    if (!ok) toast(msg.error, false);
    return;
  }
  state.pending.delete(msg.request_id);
  savePending();
  if (!p) { if (!ok) toast(msg.error, false); return; }
  if (ok) {
    const already = msg.already_recorded ? " (it was already recorded)" : "";
    const short = msg.shortfalls && msg.shortfalls.length ? ` · recorded short: ${msg.shortfalls.join("; ")}` : "";
    result(p.incident_id, true, `Recorded: ${p.what}${already}${short}`);
    if (p.note) { /* the note comes back in the story */ }
  } else if (msg.code === "confirm" && p.form && state.selected === p.incident_id) {
    // the server says who is busy or off duty: the form again, asking to send anyway
    state.form = { ...p.form, picked: new Set(p.form.picked), problems: msg.problems || [], confirm: false };
    // decided meanwhile: sending again (confirmed) replaces the decision now shown
    if (msg.decision_event !== undefined) state.form.seen = msg.decision_event;
    $("#decide-reason").value = p.form.reason;
    result(p.incident_id, false, `Not sent: ${msg.error}`);
  } else {
    if (p.note && !$("#note-text").value) $("#note-text").value = p.note;
    result(p.incident_id, false, `Refused: ${p.what}: ${msg.error}`);
  }
}

function resolved(results) {
  // what became of the requests a lost connection left unanswered, from what Kafka holds
  for (const r of results) {
    const p = state.pending.get(r.request_id);
    if (!p) continue;
    if (r.outcome === "unknown") {
      result(p.incident_id, false, `Could not check yet whether "${p.what}" was recorded: see the call's story before sending it again`);
      continue;
    }
    state.pending.delete(r.request_id);
    if (r.outcome === "recorded") {
      result(p.incident_id, true, `Recorded before the connection dropped: ${p.what}`);
    } else {
      result(p.incident_id, false, `NOT recorded (the connection dropped first): ${p.what}. Send it again if it is still needed.`);
    }
  }
  savePending();
}

function result(incidentId, ok, text) {
  state.results.set(incidentId || "", { ok, text, at: Date.now() });
  toast(text, ok);
}

// -- the call's story ---------------------------------------------------------------------

function askStory(id) {
  state.timeline = { incident: id, entries: [] };
  if (state.connected) send({ type: "timeline", incident_id: id, request_id: `story-${id}` });
}

function story(msg) {
  if (msg.incident_id !== state.timeline.incident) return;
  const incoming = msg.entries || (msg.entry ? [msg.entry] : []);
  const seen = new Set(state.timeline.entries.map((e) => `${e.event_id}|${e.text}`));
  const entries = [...state.timeline.entries];
  for (const e of incoming) if (!seen.has(`${e.event_id}|${e.text}`)) entries.push(e);
  entries.sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
  state.timeline = { incident: msg.incident_id, entries };
}

// -- the grade 1 chime, and new calls said aloud -------------------------------------------

function waitsAtGrade1(inc) {
  return inc.state === "open" && !inc.decision && gradeOf(inc) === 1;
}

function soundOn() { return localStorage.getItem(SOUND_KEY) !== "off"; }

function announce(id) {
  // once per call, when a live message makes it a grade 1 call waiting (new, or regraded)
  const inc = state.incidents.get(id);
  if (!inc || !waitsAtGrade1(inc) || state.chimed.has(id)) return;
  state.chimed.add(id);
  if (soundOn()) chime();
}

const unsaid = new Set(); // new calls not said yet: they are said once graded

function sayLater(id) {
  // a new call is said with its grade, which comes with its recommendation a moment
  // later; without one within 3 s, it is said without
  unsaid.add(id);
  setTimeout(() => say(id), 3000);
}

function say(id) {
  // a screen reader hears each new call (the live region is assertive)
  if (!unsaid.delete(id)) return;
  const inc = state.incidents.get(id);
  if (!inc || !incidentInScope(inc)) return;
  const g = gradeOf(inc);
  $("#announcer").textContent = `New call ${id}${g ? `, grade ${g}` : ""}: ${words(inc.category)}`;
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
  if (state.mapOnly) { renderMap(); return; }
  renderSound();
  renderPresence();
  renderFind();
  renderQueue();
  renderAlerts();
  renderTabs();
  renderCoverStrip();
  if (state.tab === "map") renderMap();
  renderBoard();
  if (state.tab === "cover") renderAvailability();
  if (state.tab === "decisions") renderDecisions();
  renderPanel();
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
  banner.title = detail;
  document.body.classList.toggle("disconnected", !state.connected);
  document.body.classList.toggle("stale", state.connected && cls === "bad");
  $("#data-time").textContent = st && st.event_time ? fmtTime(Date.parse(st.event_time)) : "–";
}

function renderPresence() {
  // who is on, and what each works (several windows of one user count once)
  const byUser = new Map();
  for (const s of state.presence) {
    const u = byUser.get(s.user) || { role: s.role, scopes: new Set() };
    if (s.scope) u.scopes.add(s.scope);
    byUser.set(s.user, u);
  }
  const chips = [...byUser].map(([user, u]) => h("span", {
    class: `who-chip${u.role === "viewer" ? " viewer" : ""}${state.hello && user === state.hello.user ? " me" : ""}`,
    dataset: { user }, title: `${user} (${u.role}) works ${u.scopes.size ? [...u.scopes].map(scopeText).join(", ") : "all areas"}`,
  }, user, h("span", { class: "muted" }, ` ${u.role === "viewer" ? "viewer" : u.scopes.size ? [...u.scopes].map(scopeText).join(", ") : "all"}`)));
  reconcile($("#presence"), chips);
}

function sortedCalls() {
  const all = [...state.incidents.values()];
  const pending = all.filter((i) => i.state === "open" && !i.decision);
  pending.sort((a, b) => (gradeOf(a) || 9) - (gradeOf(b) || 9)
    || Date.parse(a.created_ts) - Date.parse(b.created_ts));
  const resourced = all.filter((i) => !(i.state === "open" && !i.decision));
  resourced.sort((a, b) => Date.parse(b.decision_ts || b.ts) - Date.parse(a.decision_ts || a.ts));
  return { pending, resourced };
}

function timerEl(inc) {
  if (inc.decision || inc.state !== "open") {
    // decided or resourced: the countdown is the SDO's no longer (the story says the rest)
    const what = inc.decision ? words(inc.decision) : words(inc.state);
    return h("span", { class: "timer muted", title: "no longer waiting for a decision" }, what);
  }
  const d = deadlineOf(inc);
  if (!d) return h("span", { class: "timer muted", title: "no attendance deadline at this grade" }, "–");
  return h("span", { class: `timer ${d.cls}`, title: "time left to the attendance deadline" },
    d.left <= 0 ? `OVERDUE ${fmtDuration(-d.left)}` : fmtDuration(d.left));
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

function responseText(rec) {
  return rec ? RESPONSE_TEXT[rec.response] || sentence(rec.response) : "awaiting recommendation";
}

function renderQueue() {
  const { pending: everywhere, resourced } = sortedCalls();
  const pending = everywhere.filter(incidentInScope);
  const outside = everywhere.filter((i) => !incidentInScope(i));
  $("#pending-count").textContent = String(pending.length);
  const outsideG1 = outside.filter((i) => gradeOf(i) === 1).length;
  $("#outside").textContent = outside.length
    ? `+${outside.length} outside ${scopeText(state.scope)}${outsideG1 ? ` (${outsideG1} grade 1)` : ""}` : "";
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
    h("span", { class: "id" }, fresh ? h("span", { class: "new" }, "NEW") : null, inc.incident_id),
    timerEl(inc),
    h("span", { class: "cat" }, h("span", { class: "resp" }, responseText(rec)), ` · ${sentence(inc.category)}${inc.summary ? " · " + inc.summary : ""}`),
    whoEl(rec));
  }));
  const shown = resourced.filter(incidentInScope);
  $("#resourced-count").textContent = String(shown.length);
  reconcile($("#resourced"), shown.slice(0, 30).map((inc) => h("li", {
    class: `queue-item g${gradeOf(inc)}${state.selected === inc.incident_id ? " selected" : ""}`,
    dataset: { id: inc.incident_id }, onclick: () => select(inc.incident_id),
    onpointerdown: onPress(() => select(inc.incident_id)),
  }, h("span", { class: `grade g${gradeOf(inc)}` }, gradeOf(inc) || "?"),
  h("span", { class: "id" }, inc.incident_id, " ", h("span", { class: "muted" }, DECISION_TEXT[inc.decision] || words(inc.state))),
  h("span", { class: "muted" }, inc.decided_by || ""))));
}

function alertInScope(a) {
  if (!state.scope) return true;
  const inc = state.incidents.get(a.subject);
  if (inc) return incidentInScope(inc);
  const [kind, id] = state.scope.split(":");
  if (state.minCover[a.subject] !== undefined) {
    // a cluster's alert: in scope when it is the cluster, or lies in the NPU worked
    if (kind === "cluster") return a.subject === id;
    return features().some((f) => f.properties.cluster === a.subject && f.properties.npu === id);
  }
  const o = state.officers.get(a.subject);
  if (o) return kind === "npu" ? (o.npu || o.home_npu) === id : o.cluster === id;
  return true;
}

function renderAlerts() {
  const alerts = [...state.alerts.values()].filter(alertInScope);
  const acked = (a) => state.acks.has(`${a.kind}:${a.subject}`);
  alerts.sort((a, b) => acked(a) - acked(b) || Date.parse(b.ts) - Date.parse(a.ts));
  const fresh = alerts.filter((a) => !acked(a)).length;
  $("#alert-count").textContent = String(alerts.length);
  const badge = $("#alert-new");
  badge.textContent = `${fresh} new`;
  badge.hidden = !fresh;
  // an alert about a call on the page (unresourced, or its warning) opens it when clicked
  reconcile($("#alerts"), alerts.map((a) => {
    const ack = state.acks.get(`${a.kind}:${a.subject}`);
    const onCall = state.incidents.has(a.subject);
    const attrs = {
      class: `sev-${a.severity}${onCall ? " link" : ""}${ack ? " acked" : " unacked"}`,
      dataset: { incident: onCall ? a.subject : null, key: `${a.kind}:${a.subject}` },
    };
    if (onCall) {
      attrs.title = "open the call";
      attrs.onclick = (ev) => { if (!ev.target.closest("button")) select(a.subject); };
      attrs.onpointerdown = (ev) => { if (ev.button === 0 && !ev.target.closest("button")) select(a.subject); };
    }
    return h("li", attrs,
      h("div", { class: "alert-line" }, h("span", { class: "alert-kind" }, ALERT_TEXT[a.kind] || sentence(a.kind)), " · ", a.subject,
        h("span", { class: "muted" }, "  ", fmtTime(Date.parse(a.ts))),
        ack ? null : canDecide() ? h("button", {
          type: "button", class: "small ack", dataset: { kind: a.kind, subject: a.subject },
          "aria-label": `acknowledge the ${words(a.kind)} alert for ${a.subject}`,
        }, "Acknowledge") : null),
      h("div", { class: "muted" }, a.message, coverNow(a)),
      ack ? h("div", { class: "ack-by" }, `acknowledged by ${ack.by} at ${fmtTime(Date.parse(ack.ts))}`) : null);
  }));
}

function coverNow(alert) {
  // a cover-gap alert says the count when it was raised; the cluster's count now beside it
  if (alert.kind !== "cover_gap" || state.minCover[alert.subject] === undefined) return null;
  const { have, min } = responseCover(alert.subject);
  return h("span", { class: "cover-now" }, ` · now ${have} / ${min}`);
}

function responseCover(cluster) {
  // a cluster's cover: its available response officers (as the worker's cover-gap alert
  // counts them), and its minimum (undefined if the area file gives none)
  const counts = state.availability[`cluster:${cluster}`] || {};
  return { have: counts["role:response"] || 0, min: state.minCover[cluster] };
}

function renderCoverStrip() {
  const chips = Object.keys(state.minCover).sort().map((cluster) => {
    const { have, min } = responseCover(cluster);
    const below = min !== undefined && have < min;
    return h("button", {
      type: "button", class: `cover-chip${below ? " below" : ""}`, dataset: { cluster },
      title: `${cluster}: ${have} response officer(s) available, minimum ${min}${below ? " — BELOW COVER" : ""}`,
    }, `${cluster} `, h("b", {}, `${have}/${min}`), below ? " ▼" : "");
  });
  reconcile($("#cover-strip"), chips);
}

function renderTabs() {
  for (const b of document.querySelectorAll("#tabs [role=tab]")) {
    const on = b.dataset.tab === state.tab;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
  }
  for (const [tab, id] of [["map", "#map-panel"], ["officers", "#officers-panel"], ["cover", "#cover-panel"], ["decisions", "#decisions-panel"]]) {
    $(id).hidden = state.tab !== tab;
  }
}

function showTab(tab) {
  state.tab = tab;
  renderTabs();
  schedule();
}

// -- finding an officer or a call ----------------------------------------------------

function findMatches(query) {
  // officers whose callsign (or id) holds what is typed and calls whose id does, those it
  // begins first; then officers with a skill that holds it ("taser", "urdu"), the
  // available first; each by name. A hit is {o: officer} or {inc: incident}.
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const hits = [];
  for (const o of state.officers.values()) {
    const name = (o.callsign || o.officer_id).toLowerCase();
    const at = name.indexOf(q);
    let rank = at === 0 ? 0 : at > 0 || o.officer_id.toLowerCase().includes(q) ? 1 : -1;
    const wordsQ = q.replace(/_/g, " ");
    if (rank < 0 && (o.skills || []).some((k) => k.replace(/_/g, " ").toLowerCase().includes(wordsQ))) {
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
  const head = `${inc.incident_id} · grade ${gradeOf(inc) || "?"} · ${words(inc.category)}`;
  const now = inc.state === "open" && !inc.decision ? "waiting"
    : inc.decision ? `${DECISION_TEXT[inc.decision]}${inc.decided_by ? " by " + inc.decided_by : ""}` : inc.state;
  return [head, inc.summary ? `${now} · ${inc.summary}` : now];
}

function whereText(o) {
  if (o.status === "off_duty") return "off duty: not on the map";
  if (o.lat === undefined || o.lon === undefined || o.lat === null) return "no position yet";
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
      onmousedown: (ev) => { ev.preventDefault(); pick(hit); },
    }, h("div", {}, lines[0]), h("div", { class: "sub" }, lines[1]));
  });
  if (!items.length) items.push(h("li", { class: "none" }, `no officer, skill or call matches “${query.trim()}”`));
  list.replaceChildren(...items);
  list.hidden = false;
}

function pick(hit) {
  if (hit.o) { showFound(hit.o.officer_id); return; }
  state.find = { query: "", active: 0 };
  $("#find").value = "";
  $("#find").blur();
  select(hit.inc.incident_id);
  keepSelectedInSight();
}

function showFound(id, fromChannel = false) {
  // mark the officer on the map (and keep the field's text); their job, if any, is selected
  const o = state.officers.get(id);
  state.found = id;
  if (o) $("#find").value = o.callsign || o.officer_id;
  state.find.query = "";
  $("#find").blur();
  if (!state.mapOnly && state.tab !== "map" && !mapWindowOpen()) showTab("map");
  showOfficer(id);
  if (!fromChannel) post({ type: "found", id });
  if (o && o.incident_id && state.incidents.has(o.incident_id)) select(o.incident_id, fromChannel);
  schedule();
}

function clearFind() {
  state.find = { query: "", active: 0 };
  state.found = null;
  $("#find").value = "";
  $("#find").blur();
  post({ type: "found", id: null });
  schedule();
}

function onFindKey(ev) {
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

// -- the selected call ---------------------------------------------------------------------

function select(id, fromChannel = false) {
  if (state.selected !== id) {
    state.form = null;
    // Accept acts on the selection: focused for one call, it must not take an Enter
    // meant for nothing on another
    const accept = $("#btn-accept");
    if (document.activeElement === accept) accept.blur();
    state.selected = id;
    askStory(id);
    if (!fromChannel) post({ type: "select", id });
    showIncident(id);
    // drawn at once: a key pressed right after the click acts on this call
    renderPanel();
  }
  schedule();
}

function keepSelectedInSight() {
  requestAnimationFrame(() => {
    const el = document.querySelector(".queue-item.selected");
    if (el) el.scrollIntoView({ block: "nearest" });
  });
}

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
  $("#rec-title").textContent = `${inc.incident_id} · ${sentence(inc.category)}`;
  const place = placeOf(inc);
  $("#rec-sub").textContent = [inc.summary, place ? `${place.name} (${place.npu})` : null,
    `received ${fmtTime(Date.parse(inc.created_ts))}`, inc.state === "open" ? null : words(inc.state)].filter(Boolean).join(" · ");
  reconcile($("#rec-deadline"), deadlineOf(inc) || inc.decision || inc.state !== "open" ? [timerEl(inc)] : []);
  const needs = [...(inc.required_skills || []).map(words), inc.officers_required > 1 ? `${inc.officers_required} officers` : null].filter(Boolean);
  $("#rec-response").textContent = rec
    ? `${responseText(rec)}${needs.length ? ` · needs ${needs.join(", ")}` : ""}`
    : `Awaiting recommendation${needs.length ? ` · needs ${needs.join(", ")}` : ""}`;
  $("#rec-why").textContent = rec && rec.reasons.length ? rec.reasons.slice(0, 2).join("; ") : "";
  reconcile($("#rec-sends"), [sendsEl(rec)]);
  reconcile($("#rec-reasons"), (rec ? rec.reasons : []).map((r) => h("li", {}, r)));
  const t = inc.thrive || {};
  reconcile($("#rec-thrive"), [
    ...["threat", "harm", "risk", "vulnerability"].map((k) => h("span", { class: `chip ${t[k]}` }, `${k}: ${t[k]}`)),
    ...["investigation", "engagement", "prevention"].filter((k) => t[k]).map((k) => h("span", { class: "chip" }, k)),
    ...(inc.ongoing ? [h("span", { class: "chip high" }, "ongoing")] : []),
    ...(inc.offender_present ? [h("span", { class: "chip high" }, "offender present")] : []),
    ...(inc.required_skills || []).map((k) => h("span", { class: "chip" }, `needs ${words(k)}`))]);
  const svc = $("#rec-service");
  svc.hidden = !(rec && rec.service);
  svc.textContent = rec && rec.service ? `Signpost to: ${rec.service}` : "";
  const recommended = new Set(rec ? rec.recommended : []);
  const form = state.form;
  reconcile($("#cands tbody"), (rec ? rec.candidates : []).flatMap((c, i) => {
    const o = state.officers.get(c.officer_id);
    const box = h("input", {
      type: "checkbox", "aria-label": `pick ${c.callsign}`, disabled: !(form && form.kind === "override"),
      checked: form && form.kind === "override" && form.picked.has(c.officer_id),
      onchange: (ev) => { if (ev.target.checked) form.picked.add(c.officer_id); else form.picked.delete(c.officer_id); form.problems = []; renderForm(); },
    });
    const why = (c.reasons || []).join("; ");
    return [h("tr", { class: recommended.has(c.officer_id) ? "recommended" : "", dataset: { id: c.officer_id } },
      h("td", {}, box), h("td", {}, i + 1), h("td", { class: "cs" }, c.callsign), h("td", {}, ROLE_TEXT[c.role] || words(c.role)),
      h("td", { class: "st" }, o ? [statusIcon(o.status, 12), " ", STATUS_TEXT[o.status]] : "–"),
      h("td", {}, c.eta_s === null || c.eta_s === undefined ? "–" : fmtDuration(c.eta_s)),
      h("td", {}, c.distance_m === null || c.distance_m === undefined ? "–" : `${(c.distance_m / 1000).toFixed(1)} km`)),
    h("tr", { class: "why-row", dataset: { for: c.officer_id } }, h("td", {}), h("td", { colspan: 6, title: why }, h("div", {}, why)))];
  }));
  reconcile($("#rec-shortfalls"), (rec && rec.shortfalls ? rec.shortfalls : []).map((x) => h("li", {}, x)));
  renderStory(inc);
  const decided = $("#rec-decided");
  decided.hidden = !inc.decision;
  decided.textContent = inc.decision ? `${sentence(DECISION_TEXT[inc.decision] || inc.decision)} by ${inc.decided_by} at ${fmtTime(Date.parse(inc.decision_ts))}${inc.assigned && inc.assigned.length ? " → " + inc.assigned.map(callsign).join(", ") : ""}` : "";
  const res = state.results.get(inc.incident_id);
  const resEl = $("#rec-result");
  resEl.hidden = !res;
  if (res) {
    resEl.className = `result ${res.ok ? "ok" : "err"}`;
    resEl.textContent = `${fmtTime(res.at)} ${res.text}`;
  }
  const can = canDecide();
  const awaiting = inc.state === "open" && !inc.decision;
  // a signpost names nobody by design: accepting it refers the call to the service
  $("#btn-accept").disabled = !(can && awaiting && rec && (rec.recommended.length || rec.service));
  $("#btn-override").disabled = !(can && inc.state !== "closed");
  $("#btn-decline").disabled = !(can && awaiting);
  $("#viewer-note").hidden = !(state.hello && !state.hello.can_decide);
  $("#note-form").hidden = !can;
  renderForm();
}

function sendsEl(rec) {
  if (!rec) return h("span", { class: "muted" }, "no recommendation yet");
  if (!rec.recommended.length) {
    return rec.service ? h("span", {}, `Refer to ${rec.service}`) : h("span", { class: "none" }, "No officer to recommend");
  }
  const parts = rec.recommended.map((id) => {
    const c = rec.candidates.find((x) => x.officer_id === id);
    const eta = c && c.eta_s !== null && c.eta_s !== undefined ? ` (ETA ${fmtDuration(c.eta_s)})` : "";
    return `${callsign(id)}${eta}`;
  });
  return h("span", {}, h("b", {}, "Recommends "), parts.join(", "),
    rec.shortfalls && rec.shortfalls.length ? h("span", { class: "warn-text" }, ` · short: ${rec.shortfalls.join("; ")}`) : null);
}

function renderStory(inc) {
  const entries = state.timeline.incident === inc.incident_id ? state.timeline.entries : [];
  $("#story-count").textContent = String(entries.length);
  reconcile($("#story"), entries.map((e) => h("li", { class: `st-${e.kind}`, dataset: { kind: e.kind } },
    h("span", { class: "when" }, fmtTime(Date.parse(e.ts))), " ",
    e.kind === "note" ? h("span", { class: "by" }, `${e.by}: `) : null,
    h("span", { class: "text" }, e.text))));
}

function coverWarnings(ids) {
  // what sending these officers would do to their response clusters' cover (CONTRACT §3:
  // cover must not collapse); the SDO may still send them
  const taken = new Map();
  for (const id of ids) {
    const o = state.officers.get(id);
    if (!o || o.role !== "response" || o.status !== "available" || o.lon == null || o.lat == null) continue;
    const area = areaAt(features(), o.lon, o.lat);
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

function conflicts(inc, ids) {
  // what the server will ask to confirm (sdo.console.rules): officers off duty, on a break
  // below grade 1, or busy with another call
  const out = [];
  for (const id of ids) {
    const o = state.officers.get(id);
    if (!o) continue;
    const name = o.callsign || o.officer_id;
    if (o.status === "off_duty") out.push(`${name} is off duty`);
    else if (["en_route", "at_scene", "committed"].includes(o.status) && o.incident_id !== inc.incident_id) {
      out.push(`${name} is ${STATUS_TEXT[o.status]}${o.incident_id ? ` (${o.incident_id})` : ""}`);
    } else if (o.status === "refreshment" && gradeOf(inc) !== 1) {
      out.push(`${name} is on a refreshment break (only a grade 1 call may take them)`);
    } else if (o.shift_end && Date.parse(o.shift_end) <= nowMs()) {
      out.push(`${name}'s shift has ended`);
    }
  }
  return out;
}

function needsText(inc, ids) {
  // what the call needs, and what the officers picked lack (recorded as shortfalls)
  const picked = [...ids].map((id) => state.officers.get(id)).filter(Boolean);
  const held = new Set(picked.flatMap((o) => o.skills || []));
  const skills = inc.required_skills || [];
  const parts = [`Needs ${inc.officers_required || 1} officer(s)${skills.length ? ` with ${skills.map(words).join(", ")}` : ""}`];
  const missing = skills.filter((k) => !held.has(k)).map(words);
  const short = [];
  if (picked.length && picked.length < (inc.officers_required || 1)) short.push(`only ${picked.length} picked`);
  if (missing.length && picked.length) short.push(`nobody picked holds ${missing.join(", ")}`);
  return { text: parts[0], short };
}

function renderForm() {
  const form = state.form;
  const el = $("#decide-form");
  el.hidden = !form;
  $("#actions").hidden = !!form;
  if (!form) return;
  const inc = state.incidents.get(state.selected);
  if (!inc) return;
  const override = form.kind === "override";
  $("#pick-wrap").hidden = !override;
  const warnings = override ? coverWarnings(form.picked) : [];
  const cover = $("#decide-cover");
  cover.hidden = !warnings.length;
  if (cover.textContent !== warnings.join("")) cover.replaceChildren(...warnings.map((w) => h("li", {}, w)));
  const problems = override ? [...new Set([...(form.problems || []), ...conflicts(inc, form.picked)])] : [];
  const probEl = $("#decide-problems");
  probEl.hidden = !problems.length;
  if (probEl.textContent !== problems.join("")) probEl.replaceChildren(...problems.map((p) => h("li", {}, p)));
  $("#anyway-wrap").hidden = !problems.length;
  if (!problems.length) $("#send-anyway").checked = false;
  const needs = $("#decide-needs");
  if (override) {
    const n = needsText(inc, form.picked);
    reconcile(needs, [h("span", {}, n.text), ...(n.short.length ? [h("span", { class: "warn-text" }, ` · short: ${n.short.join("; ")} (recorded)`)] : [])]);
    const names = [...form.picked].map(callsign);
    $("#decide-what").textContent = names.length ? `Send instead: ${names.join(", ")}` : "Tick candidates or add officers, and give a reason.";
    const select = $("#pick-officer");
    const current = new Set([...select.options].map((o) => o.value));
    // nearest to the call first (straight line), those with no fix last
    const away = (o) => (o.lon !== undefined && o.lat !== undefined && o.lon !== null && o.lat !== null
      ? metres(o.lon, o.lat, inc.lon, inc.lat) : Infinity);
    const onDuty = [...state.officers.values()]
      .filter((o) => o.status !== "off_duty" && !form.picked.has(o.officer_id))
      .map((o) => ({ o, m: away(o) }))
      .sort((a, b) => a.m - b.m || (a.o.callsign || "").localeCompare(b.o.callsign || ""));
    const avail = onDuty.filter(({ o }) => o.status === "available");
    const busy = onDuty.filter(({ o }) => o.status !== "available");
    const wanted = new Set(["", ...onDuty.map(({ o }) => o.officer_id)]);
    const label = ({ o, m }) => `${o.callsign || o.officer_id} (${o.status === "available" ? "" : `${STATUS_TEXT[o.status]}${o.incident_id ? " " + o.incident_id : ""}, `}`
      + `${ROLE_TEXT[o.role] || words(o.role || "?")}${o.npu || o.home_npu ? ", " + (o.npu || o.home_npu) : ""}`
      + `${Number.isFinite(m) ? `, ${(m / 1000).toFixed(1)} km` : ", no fix"}`
      + `${(o.skills || []).length ? `; ${o.skills.map(words).join(", ")}` : ""})`;
    if (current.size !== wanted.size || [...wanted].some((v) => !current.has(v))) {
      // the free first (nearest first); then the busy, whom sending needs a confirmation
      select.replaceChildren(h("option", { value: "" }, "— officers on duty, nearest first —"),
        h("optgroup", { label: "available" }, ...avail.map((x) => h("option", { value: x.o.officer_id }, label(x)))),
        ...(busy.length ? [h("optgroup", { label: "busy: send anyway needs a reason" },
          ...busy.map((x) => h("option", { value: x.o.officer_id }, label(x))))] : []));
    }
  } else {
    needs.replaceChildren();
    $("#decide-what").textContent = "Decline: nobody is sent. A reason is required.";
  }
  $("#decide-submit").disabled = !canDecide() || !$("#decide-reason").value.trim()
    || (override && form.picked.size === 0) || (problems.length > 0 && !$("#send-anyway").checked);
  $("#decide-submit").textContent = problems.length ? "Send anyway" : "Confirm";
}

function openForm(kind) {
  // the decision the form is opened on: an override sent after another decision (another
  // SDO's, the dispatcher's) must confirm replacing it (the server checks seen_decision)
  const inc = state.incidents.get(state.selected);
  state.form = { kind, picked: new Set(), problems: [], seen: inc ? inc.decision_event || null : null };
  $("#decide-reason").value = "";
  $("#send-anyway").checked = false;
  // shown and focused at once: what the SDO types next is the reason, not keys
  renderPanel();
  $("#decide-reason").focus();
}

function act(kind, extra) {
  const inc = state.incidents.get(state.selected);
  if (!inc) return;
  const rec = state.recs.get(inc.incident_id);
  const msg = { type: kind, incident_id: inc.incident_id, ...extra };
  if (rec) msg.recommendation_id = rec.recommendation_id;
  const names = (extra.officer_ids || []).map(callsign);
  const what = kind === "accept" ? `accept ${inc.incident_id}` : kind === "override"
    ? `override ${inc.incident_id} → ${names.join(", ")}` : `decline ${inc.incident_id}`;
  const form = state.form ? { kind: state.form.kind, picked: [...state.form.picked], reason: extra.reason || "", seen: state.form.seen } : null;
  if (request(msg, what, inc.incident_id, { form })) { state.form = null; schedule(); }
}

function submitForm() {
  const form = state.form;
  if (!form || $("#decide-submit").disabled) return;
  const reason = $("#decide-reason").value.trim();
  if (!reason) return;
  if (form.kind === "override") {
    act("override", { officer_ids: [...form.picked], reason, send_anyway: $("#send-anyway").checked, seen_decision: form.seen });
  } else {
    act("decline", { reason });
  }
}

function submitNote() {
  const inc = state.incidents.get(state.selected);
  const text = $("#note-text").value.trim();
  if (!inc || !text || !canDecide()) return;
  if (request({ type: "note", incident_id: inc.incident_id, text }, `note on ${inc.incident_id}`, inc.incident_id, { note: text })) {
    $("#note-text").value = "";
  }
}

function setStatus(officerId, change) {
  const o = state.officers.get(officerId);
  const name = (o && o.callsign) || officerId;
  request({ type: "set_status", officer_id: officerId, change }, `${words(change)}: ${name}`, o && o.incident_id);
}

function ackAlert(kind, subject) {
  request({ type: "ack_alert", kind, subject }, `acknowledge ${words(kind)} ${subject}`, state.incidents.has(subject) ? subject : null);
}

function toast(text, ok) {
  const el = h("div", { class: `toast ${ok ? "ok" : "err"}`, role: ok ? "status" : "alert" }, text);
  $("#toasts").prepend(el);
  while ($("#toasts").children.length > 4) $("#toasts").lastChild.remove();
  setTimeout(() => el.remove(), ok ? 6000 : 12000);
}

function renderAvailability() {
  const av = state.availability;
  const rows = (prefix) => Object.entries(av).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]);
  reconcile($("#av-cluster tbody"), rows("cluster:").map(([id, c]) => {
    const { have, min } = responseCover(id);
    const below = min !== undefined && have < min;
    return h("tr", { "data-id": id }, h("td", {}, id),
      h("td", { class: `cover ${below ? "below" : "okcover"}` }, `${have} / ${min ?? "–"}`),
      h("td", { class: "muted" }, roleSummary(c)));
  }));
  reconcile($("#av-npu tbody"), rows("npu:").map(([id, c]) => h("tr", {}, h("td", {}, id), h("td", {}, c.total || 0), h("td", { class: "muted" }, roleSummary(c)))));
  const roles = {}, skills = {};
  for (const [, c] of rows("npu:")) {
    for (const [k, v] of Object.entries(c)) {
      if (k.startsWith("role:")) roles[k.slice(5)] = (roles[k.slice(5)] || 0) + v;
      if (k.startsWith("skill:")) skills[k.slice(6)] = (skills[k.slice(6)] || 0) + v;
    }
  }
  const table = (obj, label) => Object.entries(obj).sort((a, b) => b[1] - a[1]).map(([k, v]) => h("tr", {}, h("td", {}, label(k)), h("td", {}, v)));
  reconcile($("#av-role tbody"), table(roles, (k) => ROLE_TEXT[k] || words(k)));
  reconcile($("#av-skill tbody"), table(skills, words));
}

function roleSummary(c) {
  return Object.entries(c).filter(([k]) => k.startsWith("role:")).map(([k, v]) => `${ROLE_TEXT[k.slice(5)] || words(k.slice(5))} ${v}`).join(" · ");
}

function renderDecisions() {
  reconcile($("#decisions"), state.deployments.slice(0, 50).map((d) => h("li", { dataset: { incident: d.incident_id } },
    h("span", { class: "muted" }, fmtTime(Date.parse(d.ts)), " "),
    `${d.by} ${DECISION_TEXT[d.decision] || d.decision} ${d.incident_id}`,
    d.officer_ids && d.officer_ids.length ? ` → ${d.officer_ids.map(callsign).join(", ")}` : "",
    d.reason ? h("span", { class: "muted" }, ` (${d.reason})`) : "",
    d.shortfalls && d.shortfalls.length ? h("span", { class: "warn-text" }, ` · ${d.shortfalls.join("; ")}`) : "")));
}

// -- the area worked ---------------------------------------------------------------------

function buildWork() {
  const select = $("#work");
  const npus = [...new Set(features().map((f) => f.properties.npu))].sort();
  const clusters = [...new Set(features().map((f) => f.properties.cluster))].sort();
  select.replaceChildren(h("option", { value: "" }, "all areas"),
    h("optgroup", { label: "NPU" }, ...npus.map((n) => h("option", { value: `npu:${n}` }, `NPU ${n}`))),
    h("optgroup", { label: "Response cluster" }, ...clusters.map((c) => h("option", { value: `cluster:${c}` }, `cluster ${c}`))));
  if (state.scope && ![...select.options].some((o) => o.value === state.scope)) state.scope = null;
  select.value = state.scope || "";
}

function setScope(scope, fromChannel = false) {
  state.scope = scope || null;
  if (state.scope) sessionStorage.setItem(SCOPE_KEY, state.scope); else sessionStorage.removeItem(SCOPE_KEY);
  $("#work").value = state.scope || "";
  if (!state.mapOnly) send({ type: "work", scope: state.scope, request_id: "work" });
  if (!fromChannel) post({ type: "scope", scope: state.scope });
  fitScope();
  schedule();
}

// -- the map in a window of its own --------------------------------------------------------

let mapWindow = null;
function mapWindowOpen() { return !!(mapWindow && !mapWindow.closed); }

function post(msg) { if (CHANNEL) CHANNEL.postMessage(msg); }

if (CHANNEL) {
  CHANNEL.onmessage = (ev) => {
    const m = ev.data || {};
    if (m.type === "select" && m.id && state.incidents.has(m.id)) select(m.id, true);
    else if (m.type === "found") { if (m.id) showFound(m.id, true); else { state.found = null; schedule(); } }
    else if (m.type === "scope") setScope(m.scope, true);
  };
}

// -- keyboard ------------------------------------------------------------------------
// An SDO works the queue from the keyboard: move through the pending calls, then accept
// (two keys: A puts the focus on Accept, Enter presses it), override or decline.

function toggleKeys(show) {
  const el = $("#keys");
  el.hidden = show === undefined ? !el.hidden : !show;
}

function step(delta) {
  const pending = sortedCalls().pending.filter(incidentInScope);
  if (!pending.length) return;
  const at = pending.findIndex((i) => i.incident_id === state.selected);
  const next = at < 0 ? (delta > 0 ? 0 : pending.length - 1)
    : Math.min(pending.length - 1, Math.max(0, at + delta));
  select(pending[next].incident_id);
  keepSelectedInSight();
}

function press(id) {
  const button = $(id);
  if (!button.disabled && !$("#rec").hidden && !button.closest("[hidden]")) button.click();
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
    if (!accept.disabled && !$("#rec").hidden && !$("#actions").hidden) accept.focus();
  } else if (key === "o") press("#btn-override");
  else if (key === "d") press("#btn-decline");
  else if (key === "n") { if (!$("#rec").hidden && !$("#note-form").hidden) $("#note-text").focus(); }
  else if (key === "v") showTab("map");
  else if (key === "b") showTab("officers");
  else if (key === "c") showTab("cover");
  else if (key === "f") { showTab("map"); fitScope(); }
  else if (key === "w") $("#work").focus();
  else if (key === "?") toggleKeys();
  else if (key === "/") { $("#find").focus(); $("#find").select(); }
  else if (key === "m") toggleSound();
  else return;
  ev.preventDefault();
}

// Enter records a reason or a note; Shift+Enter is a new line.
function enterSubmits(field, submit) {
  field.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
  });
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
  $("#send-anyway").addEventListener("change", renderForm);
  $("#pick-officer").addEventListener("change", (ev) => {
    if (state.form && ev.target.value) { state.form.picked.add(ev.target.value); state.form.problems = []; ev.target.value = ""; schedule(); }
  });
  $("#decide-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitForm(); });
  enterSubmits($("#decide-reason"), submitForm);
  $("#note-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitNote(); });
  enterSubmits($("#note-text"), submitNote);
  $("#alerts").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.ack");
    if (b) ackAlert(b.dataset.kind, b.dataset.subject);
  });
  $("#tabs").addEventListener("click", (ev) => {
    const b = ev.target.closest("[role=tab]");
    if (b) showTab(b.dataset.tab);
  });
  $("#cover-strip").addEventListener("click", () => showTab("cover"));
  $("#board").addEventListener("click", onBoardClick);
  $("#work").addEventListener("change", (ev) => setScope(ev.target.value));
  $("#map-window").addEventListener("click", () => {
    mapWindow = window.open(`${location.pathname}?view=map`, "sdo-console-map", "popup,width=1200,height=900");
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

state.mapOnly = new URLSearchParams(location.search).get("view") === "map";
document.body.classList.toggle("map-only", state.mapOnly);
state.scope = sessionStorage.getItem(SCOPE_KEY) || null;
loadPending();
initMap($("#map"), { select: (id) => select(id), found: (id) => showFound(id) });
initBoard({ render: schedule, show: (id) => showFound(id), select: (id) => select(id), setStatus });
wire();
render();
connect();
