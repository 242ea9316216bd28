// The picture the page keeps (what the server describes: snapshot, then deltas), and what
// is derived from it: grades, deadlines, the feed's clock, the part of the area worked.

import { areaAt } from "./util.js";

export const state = {
  ws: null,
  hello: null,
  status: null,
  statusAt: 0, // performance.now() when the last status arrived
  lastMessageAt: 0,
  connected: false,
  retryAt: 0,
  attempt: 0,
  closeReason: "",
  officers: new Map(),
  incidents: new Map(),
  recs: new Map(),
  alerts: new Map(), // "kind:subject" -> alert
  acks: new Map(), // "kind:subject" -> acknowledgement
  availability: {},
  minCover: {},
  deployments: [],
  areas: null,
  areaProps: new Map(), // neighbourhood id -> its properties
  placeOf: new Map(), // incident id -> the neighbourhood properties it falls in (or null)
  selected: null,
  pending: new Map(), // request_id -> {what, msg, incident_id, sent}
  results: new Map(), // incident id -> the last answer about it {ok, text, at}
  form: null, // {kind: "override"|"decline", picked: Set, problems: [], confirm: false}
  requestSeq: 0,
  fresh: new Map(), // incident_id -> performance.now() when it arrived live (not in a snapshot)
  find: { query: "", active: 0 },
  found: null, // officer_id shown on the map
  chimed: new Set(),
  chimes: 0,
  audio: null,
  timeline: { incident: null, entries: [] }, // the selected call's story
  presence: [],
  scope: null, // "npu:ID" | "cluster:ID" | null (all)
  tab: "map",
  board: { sort: "status", dir: 1, npu: "", cluster: "", role: "", status: "", text: "", offDuty: false },
  mapOnly: false,
};

// Deadlines run on the feed's clock: the server's clock for a live feed, the event time
// for a replayed or simulated one (whose event time is far from the wall clock).
export function nowMs() {
  const st = state.status;
  if (!st) return Date.now();
  const since = performance.now() - state.statusAt;
  const server = Date.parse(st.server_time);
  const event = st.event_time ? Date.parse(st.event_time) : NaN;
  if (Number.isFinite(event) && Math.abs(server - event) > 5 * 60 * 1000) return event + since;
  return server + since;
}

export function gradeOf(inc) {
  const rec = state.recs.get(inc.incident_id);
  return (rec && rec.grade) || inc.grade || 0;
}

export function deadlineOf(inc) {
  const grade = gradeOf(inc);
  const limits = (state.hello && state.hello.deadlines_s) || { 1: 900, 2: 3600 };
  const limit = limits[String(grade)];
  if (!limit) return null;
  // a call stamped a little ahead of this clock has not started its time yet: never more
  // time left than the deadline allows
  const age = Math.max(0, (nowMs() - Date.parse(inc.created_ts)) / 1000);
  const left = limit - age;
  const cls = left <= 0 ? "red" : left < limit / 3 ? "amber" : "ok";
  return { left, cls, limit };
}

export function callsign(id) {
  const o = state.officers.get(id);
  return (o && o.callsign) || id;
}

export function features() {
  return (state.areas && state.areas.features) || [];
}

export function placeOf(inc) {
  // the neighbourhood a call falls in (looked up once per call)
  if (!state.placeOf.has(inc.incident_id)) {
    state.placeOf.set(inc.incident_id, areaAt(features(), inc.lon, inc.lat));
  }
  return state.placeOf.get(inc.incident_id);
}

// The part of the area this SDO works (``work``): an NPU or a response cluster, or all.
export function inScope(npu, cluster) {
  if (!state.scope) return true;
  const [kind, id] = state.scope.split(":");
  return kind === "npu" ? npu === id : cluster === id;
}

export function incidentInScope(inc) {
  if (!state.scope) return true;
  const p = placeOf(inc);
  return !!p && inScope(p.npu, p.cluster);
}

export function officerInScope(o) {
  if (!state.scope) return true;
  // where they are (their last fix), else their home NPU
  if (o.npu || o.cluster) return inScope(o.npu, o.cluster);
  return inScope(o.home_npu, null);
}

export function scopeText(scope) {
  if (!scope) return "all areas";
  const [kind, id] = scope.split(":");
  return kind === "npu" ? `NPU ${id}` : `cluster ${id}`;
}

export function canDecide() {
  return !!(state.hello && state.hello.can_decide && state.connected);
}
