// The officer board: every officer on duty (callsign, role, status and time in it, the
// call they are on, the age of their last position, skills, where they are), sortable by
// any column and filtered by NPU, cluster, role, status or text; a row shows the officer
// on the map; an SDO changes a status from it (at scene, stand down, available).

import { canDecide, nowMs, officerInScope, state } from "./state.js";
import {
  $, ROLE_TEXT, STATUS_TEXT, fmtAge, h, reconcile, statusIcon, words,
} from "./util.js";

let hooks = { show: () => {}, select: () => {}, setStatus: () => {} };
const STATUS_ORDER = ["en_route", "at_scene", "committed", "available", "refreshment", "off_duty"];
const CHANGES = {
  at_scene: { label: "At scene", from: ["en_route"] },
  stand_down: { label: "Stand down", from: ["en_route", "at_scene"] },
  available: { label: "Available", from: ["at_scene", "committed", "refreshment"] },
};
const COLUMNS = [
  ["callsign", "Officer"], ["status", "Status"], ["since", "In status"],
  ["incident", "Call"], ["fix", "Last fix"], ["where", "Where"], ["skills", "Skills"],
];
const armed = new Map(); // officer id -> {change, until}: a second press confirms

export function initBoard(callbacks) {
  hooks = { ...hooks, ...callbacks };
  const head = $("#board thead tr");
  head.replaceChildren(...COLUMNS.map(([key, label]) => h("th", { scope: "col", class: `col-${key}` },
    h("button", { type: "button", class: "sort", dataset: { key }, "aria-label": `sort by ${label}` }, label))),
  h("th", { scope: "col" }, "Change"));
  head.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.sort");
    if (!b) return;
    const key = b.dataset.key;
    state.board.dir = state.board.sort === key ? -state.board.dir : 1;
    state.board.sort = key;
    hooks.render();
  });
  for (const name of ["npu", "cluster", "role", "status"]) {
    $(`#bf-${name}`).addEventListener("change", (ev) => { state.board[name] = ev.target.value; hooks.render(); });
  }
  $("#bf-text").addEventListener("input", (ev) => { state.board.text = ev.target.value; hooks.render(); });
  $("#bf-off").addEventListener("change", (ev) => { state.board.offDuty = ev.target.checked; hooks.render(); });
}

function options(select, values, all, label = (v) => v) {
  const want = ["", ...values];
  const have = [...select.options].map((o) => o.value);
  if (want.length === have.length && want.every((v, i) => v === have[i])) return;
  const current = select.value;
  select.replaceChildren(h("option", { value: "" }, all), ...values.map((v) => h("option", { value: v }, label(v))));
  select.value = want.includes(current) ? current : "";
}

function rowOf(o, now) {
  const since = o.status_ts ? (now - Date.parse(o.status_ts)) / 1000 : NaN;
  const fix = o.fix_ts ? (now - Date.parse(o.fix_ts)) / 1000 : NaN;
  return {
    o,
    callsign: o.callsign || o.officer_id,
    role: ROLE_TEXT[o.role] || words(o.role || ""),
    status: STATUS_ORDER.indexOf(o.status),
    since: Number.isFinite(since) ? since : -1,
    incident: o.incident_id || "",
    fix: Number.isFinite(fix) ? fix : Infinity,
    where: [o.npu || o.home_npu || "", o.cluster || "", o.neighbourhood || ""].join(" "),
    skills: (o.skills || []).join(" "),
  };
}

export function boardRows() {
  const f = state.board;
  const now = nowMs();
  const text = f.text.trim().toLowerCase();
  const rows = [];
  for (const o of state.officers.values()) {
    if (o.status === "off_duty" && !f.offDuty) continue;
    if (!officerInScope(o)) continue;
    if (f.npu && (o.npu || o.home_npu) !== f.npu) continue;
    if (f.cluster && o.cluster !== f.cluster) continue;
    if (f.role && o.role !== f.role) continue;
    if (f.status && o.status !== f.status) continue;
    const r = rowOf(o, now);
    if (text && !`${r.callsign} ${r.role} ${r.skills} ${r.incident} ${r.where}`.toLowerCase().includes(text)) continue;
    rows.push(r);
  }
  const key = f.sort;
  rows.sort((a, b) => {
    const x = a[key], y = b[key];
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return c * f.dir || a.callsign.localeCompare(b.callsign);
  });
  return rows;
}

function changeButtons(o) {
  if (!canDecide()) return [];
  const now = performance.now();
  const arm = armed.get(o.officer_id);
  return Object.entries(CHANGES).filter(([, c]) => c.from.includes(o.status)).map(([change, c]) => {
    const confirming = arm && arm.change === change && arm.until > now;
    return h("button", {
      type: "button", class: `small change${confirming ? " confirm" : ""}`,
      dataset: { change, officer: o.officer_id },
      title: confirming ? "press again to confirm" : `${c.label}: ${o.callsign || o.officer_id}`,
    }, confirming ? `Confirm ${c.label.toLowerCase()}` : c.label);
  });
}

export function renderBoard() {
  const panel = $("#officers-panel");
  if (panel.hidden) {
    $("#board-count").textContent = String(boardRows().length);
    return;
  }
  const officers = [...state.officers.values()];
  options($("#bf-npu"), [...new Set(officers.map((o) => o.npu || o.home_npu).filter(Boolean))].sort(), "all NPUs");
  options($("#bf-cluster"), [...new Set(officers.map((o) => o.cluster).filter(Boolean))].sort(), "all clusters");
  options($("#bf-role"), [...new Set(officers.map((o) => o.role).filter(Boolean))].sort(), "all roles", (v) => ROLE_TEXT[v] || words(v));
  options($("#bf-status"), STATUS_ORDER.filter((st) => officers.some((o) => o.status === st)), "all statuses", (v) => STATUS_TEXT[v]);
  for (const b of document.querySelectorAll("#board thead button.sort")) {
    const on = b.dataset.key === state.board.sort;
    b.classList.toggle("on", on);
    b.parentElement.setAttribute("aria-sort", on ? (state.board.dir > 0 ? "ascending" : "descending") : "none");
  }
  const rows = boardRows();
  $("#board-count").textContent = String(rows.length);
  reconcile($("#board tbody"), rows.map((r) => {
    const o = r.o;
    const staleFix = r.fix > 300;
    return h("tr", {
      dataset: { id: o.officer_id }, class: state.found === o.officer_id ? "found" : "",
      title: "show on the map",
    },
    h("td", { class: "cs", title: (o.skills || []).map(words).join(", ") || "no skills recorded" },
      r.callsign, h("div", { class: "sub" }, r.role)),
    h("td", { class: "st" }, statusIcon(o.status, 13), " ", STATUS_TEXT[o.status] || o.status,
      // (the server asks to confirm sending an officer past their shift's end)
      o.status !== "off_duty" && o.shift_end && Date.parse(o.shift_end) <= nowMs()
        ? h("div", { class: "sub shift-ended" }, "shift ended") : null),
    h("td", { class: "num" }, r.since >= 0 ? fmtAge(r.since) : "–"),
    h("td", {}, o.incident_id ? h("a", { href: "#", class: "inc-link", dataset: { incident: o.incident_id } }, o.incident_id) : "–"),
    o.transport === "desk" && !Number.isFinite(r.fix)
      ? h("td", { class: "num muted", title: "works at a desk: no position" }, "desk")
      : h("td", { class: `num${staleFix ? " stale" : ""}` }, Number.isFinite(r.fix) ? fmtAge(r.fix) : "no fix"),
    h("td", { class: "muted", title: [o.npu || o.home_npu, o.cluster, o.neighbourhood].filter(Boolean).join(" · ") },
      [o.cluster || o.npu || o.home_npu, o.neighbourhood].filter(Boolean).join(" · ") || "–"),
    h("td", { class: "skills" }, (o.skills || []).map(words).join(", ") || "–"),
    h("td", { class: "changes" }, ...changeButtons(o)));
  }));
}

export function onBoardClick(ev) {
  const link = ev.target.closest("a.inc-link");
  if (link) { ev.preventDefault(); hooks.select(link.dataset.incident); return; }
  const button = ev.target.closest("button.change");
  if (button) {
    const { officer, change } = button.dataset;
    const arm = armed.get(officer);
    const now = performance.now();
    if (arm && arm.change === change && arm.until > now) {
      armed.delete(officer);
      hooks.setStatus(officer, change);
    } else {
      armed.set(officer, { change, until: now + 4000 });
      setTimeout(() => hooks.render(), 4100);
    }
    hooks.render();
    return;
  }
  const row = ev.target.closest("tr[data-id]");
  if (row) hooks.show(row.dataset.id);
}
