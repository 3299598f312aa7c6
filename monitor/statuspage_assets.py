"""The status page's stylesheet, script and icon, served from `/assets/` (never inline, so the
Content-Security-Policy needs no `unsafe-inline`). No external asset: it works air-gapped."""

from __future__ import annotations

FAVICON_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">\
<rect width="32" height="32" rx="7" fill="#111827"/>\
<path d="M9 17.5l4.5 4.5L23 11" fill="none" stroke="#4ade80" stroke-width="3.2" \
stroke-linecap="round" stroke-linejoin="round"/></svg>
"""

APP_CSS = """\
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --panel: #ffffff; --text: #1f2328; --muted: #5b6470; --line: #e3e6ea;
  --head: #f0f2f5; --accent: #2563eb; --shadow: 0 1px 2px rgba(16, 24, 40, .06);
  --expired-bg: #991b1b; --expired-fg: #ffffff;
  --missing-bg: #ede9fe; --missing-fg: #5b21b6;
  --not_found-bg: #334155; --not_found-fg: #ffffff;
  --critical-bg: #fee2e2; --critical-fg: #b91c1c;
  --warning-bg: #fef3c7; --warning-fg: #92400e;
  --unknown-bg: #eef1f4; --unknown-fg: #4b5563;
  --ok-bg: #dcfce7; --ok-fg: #166534;
  --expired: #991b1b; --missing: #7c3aed; --not_found: #334155; --critical: #dc2626;
  --warning: #d97706; --unknown: #9ca3af; --ok: #16a34a;
  --banner-bg: #fff7ed; --banner-fg: #9a3412; --banner-line: #fdba74;
  --offline-bg: #fef2f2; --offline-fg: #991b1b; --offline-line: #fca5a5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1216; --panel: #171b21; --text: #e6e8eb; --muted: #9aa3ad; --line: #2a3038;
    --head: #1d222a; --accent: #60a5fa; --shadow: none;
    --missing-bg: #2e1f57; --missing-fg: #c4b5fd;
    --not_found-bg: #475569;
    --critical-bg: #450a0a; --critical-fg: #fca5a5;
    --warning-bg: #422006; --warning-fg: #fcd34d;
    --unknown-bg: #262b33; --unknown-fg: #cbd2d9;
    --ok-bg: #052e16; --ok-fg: #86efac;
    --banner-bg: #3b1d0a; --banner-fg: #fed7aa; --banner-line: #9a3412;
    --offline-bg: #3f0d0d; --offline-fg: #fecaca; --offline-line: #b91c1c;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
a { color: var(--accent); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 12.5px; }
.top {
  display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px;
  padding: 14px 24px; background: var(--panel); border-bottom: 1px solid var(--line);
}
.brand { display: flex; align-items: baseline; gap: 10px; }
.brand h1 { margin: 0; font-size: 18px; font-weight: 650; letter-spacing: -.01em; }
.version { color: var(--muted); font-size: 12px; padding: 1px 8px; border: 1px solid var(--line);
  border-radius: 999px; }
.live { margin: 0; color: var(--muted); font-size: 13px; display: flex; align-items: center;
  gap: 6px; }
.live::before { content: ""; width: 8px; height: 8px; border-radius: 50%;
  background: var(--unknown); }
.live.on::before { background: var(--ok); }
.live.off::before { background: var(--critical); }
main { padding: 16px 24px 8px; max-width: 1400px; margin: 0 auto; }
.banner {
  margin: 0 0 10px; padding: 10px 14px; border-radius: 8px; font-weight: 500;
  background: var(--banner-bg); color: var(--banner-fg); border: 1px solid var(--banner-line);
}
.banner.offline { background: var(--offline-bg); color: var(--offline-fg);
  border-color: var(--offline-line); }
.health { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px;
  margin-bottom: 14px; }
.fig { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 14px; box-shadow: var(--shadow); min-width: 0; }
.fig h2 { margin: 0 0 4px; font-size: 11.5px; font-weight: 600; color: var(--muted);
  text-transform: uppercase; letter-spacing: .05em; }
.fig p { margin: 0; font-size: 15px; font-weight: 550; }
.fig .big { display: block; font-size: 22px; font-weight: 650; line-height: 1.2; }
.fig .sub, td .sub { display: block; font-size: 12.5px; font-weight: 400; color: var(--muted); }
.good { color: var(--ok); }
.bad { color: var(--critical); }
.api { list-style: none; margin: 0; padding: 0; font-size: 13.5px; }
.api li { overflow-wrap: anywhere; }
.api li::before { content: ""; display: inline-block; width: 8px; height: 8px;
  border-radius: 50%; margin-right: 6px; vertical-align: 1px; background: var(--unknown); }
.api li.r-ok::before { background: var(--ok); }
.api li.r-degraded::before { background: var(--warning); }
.api li.r-unreachable::before { background: var(--critical); }
.api .ws { font-weight: 600; }
.filters { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 16px;
  margin-bottom: 8px; }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; border: 0; margin: 0; padding: 0; }
.tiles legend { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); }
.tile {
  position: relative; display: inline-flex; align-items: center; gap: 7px; cursor: pointer;
  padding: 5px 10px; border-radius: 999px; background: var(--panel);
  border: 1px solid var(--line); user-select: none; box-shadow: var(--shadow);
}
.tile input { position: absolute; opacity: 0; width: 1px; height: 1px; margin: 0; }
.tile .dot { width: 10px; height: 10px; border-radius: 50%; background: var(--c); }
.tile .name { font-weight: 500; }
.tile .count { font-weight: 700; font-variant-numeric: tabular-nums; min-width: 1ch; }
.tile:has(input:not(:checked)) { opacity: .45; background: transparent; box-shadow: none; }
.tile:has(input:not(:checked)) .name { text-decoration: line-through; }
.tile:has(input:focus-visible) { outline: 2px solid var(--accent); outline-offset: 2px; }
.s-expired { --c: var(--expired); } .s-missing { --c: var(--missing); }
.s-not_found { --c: var(--not_found); } .s-critical { --c: var(--critical); }
.s-warning { --c: var(--warning); } .s-unknown { --c: var(--unknown); } .s-ok { --c: var(--ok); }
.search { display: flex; align-items: center; gap: 8px; flex: 1 1 260px; }
.search label { color: var(--muted); font-weight: 500; }
.search input {
  flex: 1; min-width: 0; padding: 7px 10px; font: inherit; color: inherit;
  background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
}
.search input:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
.search button, .search .clear {
  padding: 7px 12px; font: inherit; border-radius: 8px; border: 1px solid var(--line);
  background: var(--panel); color: var(--text); text-decoration: none; cursor: pointer;
}
.js .apply { display: none; }
.shown { margin: 4px 0 8px; color: var(--muted); font-size: 13px; }
.table-wrap { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  overflow: hidden; box-shadow: var(--shadow); }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 11.5px; font-weight: 600; color: var(--muted);
  text-transform: uppercase; letter-spacing: .05em; background: var(--head);
  padding: 9px 12px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 8px 12px; border-bottom: 1px solid var(--line); vertical-align: top;
  overflow-wrap: anywhere; }
tbody tr:last-child td { border-bottom: 0; }
tbody tr:hover td { background: var(--head); }
td.c-state { box-shadow: inset 3px 0 0 var(--c); white-space: nowrap; }
td.c-name { font-weight: 600; }
td.c-id code { color: var(--muted); }
td.c-exp, td.c-poll { white-space: nowrap; }
td.c-err { color: var(--muted); font-size: 13px; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12.5px;
  font-weight: 600; white-space: nowrap; }
.badge.s-expired { background: var(--expired-bg); color: var(--expired-fg); }
.badge.s-missing { background: var(--missing-bg); color: var(--missing-fg); }
.badge.s-not_found { background: var(--not_found-bg); color: var(--not_found-fg); }
.badge.s-critical { background: var(--critical-bg); color: var(--critical-fg); }
.badge.s-warning { background: var(--warning-bg); color: var(--warning-fg); }
.badge.s-unknown { background: var(--unknown-bg); color: var(--unknown-fg); }
.badge.s-ok { background: var(--ok-bg); color: var(--ok-fg); }
.empty { margin: 0; padding: 18px; text-align: center; color: var(--muted); }
.foot { max-width: 1400px; margin: 0 auto; padding: 8px 24px 24px; color: var(--muted);
  font-size: 12.5px; }
@media (max-width: 1000px) {
  .health { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}
@media (max-width: 720px) {
  .top, main, .foot { padding-left: 12px; padding-right: 12px; }
  .health { gap: 8px; }
  .table-wrap { background: transparent; border: 0; box-shadow: none; }
  table, tbody, tr, td { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  tbody tr { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
    margin-bottom: 10px; padding: 6px 0; box-shadow: inset 4px 0 0 var(--c); }
  tbody tr:hover td { background: transparent; }
  td, tbody tr:last-child td { border: 0; padding: 3px 14px; display: grid;
    grid-template-columns: 9.5em minmax(0, 1fr); gap: 8px; white-space: normal; }
  td::before { content: attr(data-label); color: var(--muted); font-size: 12px;
    font-weight: 500; }
  td.c-state { box-shadow: none; }
  td > * { grid-column: 2; justify-self: start; }
  td.c-err:empty { display: none; }
}
"""

APP_JS = r"""// The status page's script: it only filters and refreshes; the server renders the page.
// Every value is set as text (textContent), never parsed as markup: agent names are untrusted.
(() => {
  "use strict";
  const d = document;
  d.documentElement.classList.add("js");
  const $ = (id) => d.getElementById(id);
  const REFRESH_MS = Number(d.body.dataset.refreshMs) || 5000;
  const TIMEOUT_MS = Math.max(1500, REFRESH_MS - 500);
  const form = $("filters");
  const input = $("q");
  const boxes = Array.from(form.querySelectorAll("input[type=checkbox][name=state]"));
  const tbody = d.querySelector("#agents tbody");
  const live = $("live");
  const offline = $("offline");
  let lastOk = Date.now();
  let failingSince = null;

  const UNITS = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  const span = (seconds) => {
    const left = Math.floor(Math.abs(seconds));
    for (let i = 0; i < UNITS.length; i++) {
      const [unit, size] = UNITS[i];
      if (left >= size || unit === "s") {
        let text = `${Math.floor(left / size)} ${unit}`;
        if (i + 1 < UNITS.length) {
          const [smallUnit, smallSize] = UNITS[i + 1];
          const small = Math.floor((left % size) / smallSize);
          if (small) text += ` ${small} ${smallUnit}`;
        }
        return text;
      }
    }
    return "";
  };
  const ago = (seconds) => (seconds < 1 ? "just now" : `${span(seconds)} ago`);
  const when = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
  const clock = (ms) => `${new Date(ms).toISOString().slice(11, 19)} UTC`;
  const NO_EXPIRY = {
    link: "never expires", missing: "no shareable link", not_found: "agent not found",
  };
  const timeLeft = (row) => {
    const left = row.seconds_left;
    if (left === null) return NO_EXPIRY[row.answer] || "not known yet";
    if (left <= 0) return left > -1 ? "expired just now" : `expired ${span(left)} ago`;
    return `in ${span(left)}`;
  };
  const errorText = (row) => {
    if (row.last_error === null) return "";
    return row.last_error_detail ? `${row.last_error}: ${row.last_error_detail}` : row.last_error;
  };
  const searchText = (row) => [
    row.workspace, row.agent_name, row.agent_id, row.state, row.state_label,
    row.last_error || "", row.last_error_detail || "",
  ].join(" ").toLowerCase();

  const el = (tag, className, text) => {
    const node = d.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const timeEl = (iso) => {
    const node = el("time", "", when(iso));
    node.dateTime = iso;
    return node;
  };
  const cell = (className, label, ...children) => {
    const td = el("td", className);
    td.dataset.label = label;
    td.append(...children);
    return td;
  };

  const buildRow = (row) => {
    const tr = el("tr", `s-${row.state}`);
    tr.dataset.state = row.state;
    tr.dataset.search = searchText(row);
    const badge = el("span", `badge s-${row.state}`, row.state_label);
    const expires = row.expires_at ? [timeEl(row.expires_at)] : [];
    const success = row.last_success_at
      ? [timeEl(row.last_success_at), el("span", "sub", ago(row.last_success_age_seconds))]
      : [el("span", "sub", "never")];
    tr.append(
      cell("c-state", "State", badge),
      cell("c-ws", "Workspace", row.workspace),
      cell("c-name", "Name", row.agent_name),
      cell("c-id", "Agent ID", el("code", "", row.agent_id)),
      cell("c-exp", "Expires", ...expires, el("span", "sub", timeLeft(row))),
      cell("c-poll", "Last successful poll", ...success),
      cell("c-err", "Last error", errorText(row)),
    );
    return tr;
  };

  const chosen = () => {
    const terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    const checked = boxes.filter((b) => b.checked).map((b) => b.value);
    return { terms, states: checked.length === boxes.length ? null : checked };
  };

  const writeUrl = (filter) => {
    const params = new URLSearchParams();
    if (filter.states !== null) {
      if (filter.states.length) filter.states.forEach((s) => params.append("state", s));
      else params.append("state", "");
    }
    const query = input.value.trim();
    if (query) params.set("q", query);
    const search = params.toString();
    const url = location.pathname + (search ? `?${search}` : "");
    if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  };

  const apply = () => {
    const filter = chosen();
    let shown = 0;
    const rows = Array.from(tbody.rows);
    for (const tr of rows) {
      const ok = (filter.states === null || filter.states.includes(tr.dataset.state))
        && filter.terms.every((t) => tr.dataset.search.includes(t));
      tr.hidden = !ok;
      if (ok) shown += 1;
    }
    $("shown").textContent = `Showing ${shown} of ${rows.length} agents`;
    $("empty").hidden = !(rows.length > 0 && shown === 0);
    $("none").hidden = rows.length > 0;
    writeUrl(filter);
  };

  const banners = (status) => {
    const found = [];
    if (status.stale) {
      const age = status.last_cycle_age_seconds;
      const since = age === null
        ? "no full poll cycle has finished yet"
        : `the last full poll cycle finished ${ago(age)}`;
      found.push(`The monitor's knowledge is stale: ${since}, but one is expected every ` +
        `${span(status.poll_interval_seconds)}.`);
    }
    if (!status.config_reload.ok) {
      found.push("The last config reload failed: the monitor runs on the previous config " +
        "(see its log for the problems).");
    }
    for (const ws of status.workspaces) {
      if (ws.reachability === "unreachable") {
        const reasons = Object.entries(ws.last_errors).map(([k, v]) => `${v} ${k}`).join(", ");
        found.push(`The API of workspace ${ws.name} cannot be reached: the last poll of all ` +
          `${ws.polled} agents failed (${reasons}).`);
      }
    }
    return found.map((text) => el("p", "banner", text));
  };

  const renderStatus = (status) => {
    $("f-version").textContent = `v${status.version}`;
    $("f-agents").replaceChildren(
      el("span", "big", String(status.agents)), el("span", "sub", `${status.alerting} alerting`),
    );
    const cycle = status.last_cycle_at
      ? [timeEl(status.last_cycle_at), el("span", "sub", ago(status.last_cycle_age_seconds))]
      : [el("span", "", "not yet"), el("span", "sub", "the first cycle is running")];
    $("f-cycle").replaceChildren(...cycle);
    const reload = status.config_reload;
    const config = [reload.ok ? el("span", "good", "OK") : el("span", "bad", "Failed")];
    if (reload.last_success_at) {
      config.push(el("span", "sub", `loaded ${ago(reload.last_success_age_seconds)}`));
    }
    $("f-config").replaceChildren(...config);
    $("f-api").replaceChildren(...status.workspaces.map((ws) => {
      const li = el("li", `r-${ws.reachability}`);
      const text = ws.reachability === "pending"
        ? "not polled yet" : `${ws.answered}/${ws.polled} answering`;
      li.append(el("span", "ws", ws.name), ` ${text}`);
      return li;
    }));
    for (const [state, count] of Object.entries(status.states)) {
      const node = d.querySelector(`[data-count="${CSS.escape(state)}"]`);
      if (node) node.textContent = String(count);
    }
    $("banners").replaceChildren(...banners(status));
  };

  const getJson = async (path, signal) => {
    const response = await fetch(path, {
      cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal,
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  };

  const showLive = () => {
    if (failingSince === null) {
      live.className = "live on";
      live.textContent = `Live · updated ${ago((Date.now() - lastOk) / 1000)}`;
    } else {
      live.className = "live off";
      live.textContent = `Offline · last update ${clock(lastOk)}`;
    }
  };

  const refresh = async () => {
    const control = new AbortController();
    const timer = setTimeout(() => control.abort(), TIMEOUT_MS);
    try {
      const [agents, status] = await Promise.all([
        getJson("/api/v1/agents", control.signal), getJson("/api/v1/status", control.signal),
      ]);
      tbody.replaceChildren(...agents.agents.map(buildRow));
      renderStatus(status);
      apply();
      lastOk = Date.now();
      failingSince = null;
      d.body.dataset.refreshes = String(Number(d.body.dataset.refreshes || 0) + 1);
      offline.hidden = true;
    } catch (error) {
      if (failingSince === null) failingSince = Date.now();
      const why = error && error.name === "AbortError" ? "no answer in time"
        : (error && /^HTTP /.test(error.message) ? error.message : "connection failed");
      offline.textContent = `Cannot reach the monitor (${why}) since ${clock(failingSince)}. ` +
        `The figures below are from ${clock(lastOk)} and may be out of date.`;
      offline.hidden = false;
    } finally {
      clearTimeout(timer);
      showLive();
      setTimeout(refresh, REFRESH_MS);
    }
  };

  input.addEventListener("input", apply);
  boxes.forEach((box) => box.addEventListener("change", apply));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  apply();
  showLive();
  setInterval(showLive, 1000);
  setTimeout(refresh, REFRESH_MS);
})();
"""
