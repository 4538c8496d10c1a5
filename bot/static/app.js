// opsbot web console: the incident list, one incident's thread, live updates over SSE.
// No framework and no build step; every string from the API goes in as text, never as HTML.

const STATUSES = ["triggered", "acknowledged", "resolved"];
const FILTERS = ["all", ...STATUSES];
const SOURCES = ["live", "fallback", "cache", "offline", "static"];
const BOT_KINDS = new Set(["info", "diagnosis", "action", "approval", "ticket", "error", "postmortem", "page"]);
const SOURCE_HINTS = {
  live: "live: the primary LLM answered",
  fallback: "fallback: a fallback LLM provider answered",
  cache: "cache: a cached diagnosis of the same alert",
  offline: "offline: the rule-based engine, no LLM",
  static: "static: no diagnosis could be made; manual procedure",
};
const THEME_KEY = "opsbot.theme";
const FILTER_KEY = "opsbot.filter";
const LOGIN_PATH = "/api/login";
const REFRESH_DEBOUNCE_MS = 250;
const RECONNECT_MS = 5000;
const AGE_TICK_MS = 30_000;
const STATS_TICK_MS = 60_000;
const PENDING_TIMEOUT_MS = 45_000;
const TOAST_MS = 6000;
const NEAR_BOTTOM_PX = 120;

const storedFilter = localStorage.getItem(FILTER_KEY);
const state = {
  filter: FILTERS.includes(storedFilter) ? storedFilter : "all",
  incidents: null, // null until the first list arrives
  stats: null,
  selectedId: null,
  detail: null,
  rendered: new Map(), // message id -> what it was rendered from (see renderedFrom)
  provisional: [], // operators' messages echoed over SSE before they have a stored id
  unread: new Set(),
  events: null,
  connectedOnce: false,
  signingIn: null,
  pendingTimer: null,
};

const $ = (id) => document.getElementById(id);
const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

// ---------------------------------------------------------------- DOM and formatting

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child || child === 0));
  return node;
}

function token(value) {
  return String(value ?? "").toLowerCase().replace(/[^a-z0-9_-]/g, "");
}

function humanize(value) {
  return String(value ?? "").replaceAll("_", " ");
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, window.location.href);
    return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(label, url, props = {}) {
  const href = safeUrl(url);
  if (!href) return el("span", props, label);
  return el("a", { ...props, href, target: "_blank", rel: "noopener noreferrer" }, label);
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return null;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  const [big, unit, small, smallUnit] = s < 86400
    ? [Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "m"]
    : [Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h"];
  return small ? `${big}${unit} ${small}${smallUnit}` : `${big}${unit}`;
}

function secondsBetween(from, to) {
  return (new Date(to).getTime() - new Date(from).getTime()) / 1000;
}

function formatAge(iso) {
  const seconds = secondsBetween(iso, new Date());
  if (seconds < 45) return "now";
  return formatDuration(seconds).split(" ")[0];
}

// 24-hour clock: on-call hand-overs cross time zones and "04:08 PM" is slower to read at night.
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dateFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});

function formatClock(iso) {
  const date = new Date(iso);
  const today = date.toDateString() === new Date().toDateString();
  return (today ? clockFormat : dateFormat).format(date);
}

function timeEl(iso, props = {}) {
  if (!iso) return null;
  return el("time", { ...props, datetime: iso, title: new Date(iso).toLocaleString() }, formatClock(iso));
}

function ageEl(iso) {
  return el("time", { class: "age", datetime: iso, "data-age": iso, title: new Date(iso).toLocaleString() },
    formatAge(iso));
}

function initials(name) {
  const words = String(name || "?").trim().split(/\s+/);
  return words.slice(0, 2).map((word) => word[0].toUpperCase()).join("");
}

function statusPill(status, testid) {
  return el("span", { class: `pill status-${token(status)}`, "data-testid": testid }, status);
}

function toast(text) {
  const node = el("div", { class: "toast" }, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), TOAST_MS);
}

function report(error) {
  console.error(error);
  toast(error.message || String(error));
}

function debounced(fn) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => fn().catch(report), REFRESH_DEBOUNCE_MS);
  };
}

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("opsbot_csrf="));
  return cookie ? decodeURIComponent(cookie.slice("opsbot_csrf=".length)) : "";
}

async function errorMessage(response) {
  const text = await response.text();
  let message = text.slice(0, 200) || response.statusText;
  try {
    const { error, problems } = JSON.parse(text); // the API answers {"error", "problems"?}
    if (typeof error === "string") message = problems?.length ? `${error}: ${problems.join("; ")}` : error;
  } catch {
    // not the API's JSON (a proxy's page, say): show the text itself
  }
  return `${response.status}: ${message}`;
}

// Any request answered 401 waits for the sign-in dialog, then is sent once more.
async function request(path, { method = "GET", json } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = {};
    const init = { method, headers, credentials: "same-origin" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    const response = await fetch(path, init);
    if (response.status === 401 && attempt === 0 && path !== LOGIN_PATH) {
      await signIn();
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    return response;
  }
}

async function getJson(path) {
  return (await request(path)).json();
}

function postJson(path, json) {
  return request(path, { method: "POST", json });
}

function incidentPath(id, suffix = "") {
  return `/api/incidents/${encodeURIComponent(id)}${suffix}`;
}

function signIn() {
  state.signingIn ??= new Promise((resolve) => {
    const dialog = $("login-dialog");
    const form = $("login-form");
    const user = $("login-user");
    const input = $("login-token");
    const error = $("login-error");
    const submit = async (event) => {
      event.preventDefault();
      error.textContent = "";
      const name = user.value.trim();
      try {
        await postJson(LOGIN_PATH, name ? { user: name, password: input.value } : { token: input.value });
      } catch (failure) {
        const refused = name ? "That name and password were not accepted." : "That token was not accepted.";
        error.textContent = failure.status === 401 ? refused : failure.message;
        input.select();
        return;
      }
      form.removeEventListener("submit", submit);
      input.value = "";
      dialog.close();
      state.signingIn = null;
      resolve();
    };
    form.addEventListener("submit", submit);
    dialog.showModal();
    input.focus();
  });
  return state.signingIn;
}

// ---------------------------------------------------------------- theme

function currentTheme() {
  return document.documentElement.dataset.theme ?? (darkQuery.matches ? "dark" : "light");
}

function showThemeButton() {
  const next = currentTheme() === "dark" ? "light" : "dark";
  $("theme-toggle").setAttribute("aria-label", `Use ${next} theme`);
}

function initTheme() {
  const stored = localStorage.getItem(THEME_KEY);
  if (stored === "light" || stored === "dark") document.documentElement.dataset.theme = stored;
  showThemeButton();
  darkQuery.addEventListener("change", showThemeButton);
  $("theme-toggle").addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem(THEME_KEY, next);
    showThemeButton();
  });
}

// ---------------------------------------------------------------- stats and chaos

function stat(value, label, { dot, alarm, optional, title } = {}) {
  const classes = ["stat", alarm && "alarm", optional && "optional"].filter(Boolean).join(" ");
  return el("span", { class: classes, title },
    dot && el("span", { class: "dot", style: `background: var(--${dot})` }),
    el("strong", {}, value ?? "—"), el("span", { class: "muted" }, label));
}

function renderStats(stats) {
  state.stats = stats;
  const incidents = stats.incidents ?? {};
  const diagnoses = stats.diagnoses ?? {};
  const outbox = stats.outbox ?? {};
  const sep = () => el("span", { class: "stat-sep optional", "aria-hidden": "true" });
  $("stats-panel").replaceChildren(
    stat(incidents.triggered ?? 0, "triggered", { dot: "red", alarm: incidents.triggered > 0 }),
    stat(incidents.acknowledged ?? 0, "acked", { dot: "amber" }),
    stat(incidents.resolved ?? 0, "resolved", { dot: "green", optional: true }),
    sep(),
    stat(formatDuration(stats.mtta_s), "MTTA", { title: "mean time to acknowledge" }),
    stat(formatDuration(stats.mttr_s), "MTTR", { title: "mean time to resolve" }),
    sep(),
    el("span", { class: "stat optional source-counts", title: "diagnoses by source" },
      SOURCES.map((source) => el("span", { class: `source-badge source-${source}`, title: SOURCE_HINTS[source] },
        `${source} ${diagnoses[source] ?? 0}`))),
    stat(outbox.pending ?? 0, "outbox", {
      optional: true, alarm: outbox.failed > 0, title: `${outbox.failed ?? 0} failed deliveries`,
    }),
    stat(stats.user_dropped_count ?? 0, "dropped", {
      alarm: stats.user_dropped_count > 0, title: "requests and alerts that never got an answer in chat",
    }),
    ...(stats.storms ?? []).map((storm) => stat(`⚡ ${storm.open}/${storm.incidents}`,
      `storm in ${storm.platform} ${storm.channel}`, {
        alarm: true,
        title: `since ${storm.since}: ${storm.incidents} new incidents in one digest message, ${storm.open} open`,
      })),
  );
  for (const status of STATUSES) {
    document.querySelector(`[data-count="${status}"]`).textContent = incidents[status] || "";
  }
  updateTitle();
}

async function loadStats() {
  renderStats(await getJson("/stats"));
}

function showChaos(enabled) {
  $("chaos-toggle").checked = enabled;
  $("chaos-banner").hidden = !enabled;
}

async function loadChaos() {
  showChaos((await getJson("/admin/chaos")).enabled);
}

async function toggleChaos(event) {
  const toggle = event.currentTarget;
  const wanted = toggle.checked;
  toggle.disabled = true;
  try {
    showChaos((await (await postJson("/admin/chaos", { enabled: wanted })).json()).enabled);
  } catch (error) {
    showChaos(!wanted);
    report(error);
  } finally {
    toggle.disabled = false;
  }
}

function updateTitle() {
  const triggered = state.stats?.incidents?.triggered;
  const parts = [triggered ? `(${triggered})` : null];
  if (state.detail) parts.push(`#${state.detail.short_id} ${state.detail.title} ·`);
  parts.push("opsbot");
  document.title = parts.filter(Boolean).join(" ");
}

// ---------------------------------------------------------------- incident list

function byUrgency(a, b) {
  const rank = STATUSES.indexOf(a.status) - STATUSES.indexOf(b.status);
  return rank || new Date(b.created_at) - new Date(a.created_at);
}

function incidentRow(incident) {
  return el("li", {},
    el("a", {
      class: "row",
      href: `#/incidents/${encodeURIComponent(incident.id)}`,
      "data-testid": "incident-row",
      "data-id": incident.id,
      "data-status": incident.status,
      "aria-current": incident.id === state.selectedId ? "true" : null,
    },
    el("span", { class: `sev-bar sev-${token(incident.severity)}`, title: `severity: ${incident.severity}` }),
    el("span", { class: "row-main" },
      el("span", { class: "row-top" },
        el("span", { class: "short-id" }, `#${incident.short_id}`),
        el("span", { class: "row-title", "data-testid": "row-title" }, incident.title),
        state.unread.has(incident.id) && el("span", { class: "unread", title: "new messages" })),
      el("span", { class: "row-bottom" },
        statusPill(incident.status, "row-status"),
        incident.service && el("span", { class: "service" }, incident.service),
        incident.alert_count > 1 && el("span", { title: "alerts" }, `×${incident.alert_count}`),
        ageEl(incident.created_at)))));
}

function renderList() {
  const focusedId = document.activeElement?.closest?.('[data-testid="incident-row"]')?.dataset.id;
  $("incident-list").replaceChildren(...(state.incidents ?? []).map(incidentRow));
  $("list-empty").hidden = state.incidents?.length !== 0;
  if (focusedId) rowFor(focusedId)?.focus();
}

function rowFor(id) {
  return document.querySelector(`[data-testid="incident-row"][data-id="${CSS.escape(String(id))}"]`);
}

async function loadList() {
  const filter = state.filter;
  const query = filter === "all" ? "" : `?status=${encodeURIComponent(filter)}`;
  const { incidents } = await getJson(`/api/incidents${query}`);
  if (filter !== state.filter) return;
  state.incidents = incidents.sort(byUrgency);
  renderList();
}

function setFilter(filter) {
  state.filter = filter;
  localStorage.setItem(FILTER_KEY, filter);
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === filter));
  }
  loadList().catch(report);
}

function moveRow(step) {
  const rows = [...document.querySelectorAll('[data-testid="incident-row"]')];
  if (!rows.length) return;
  let index = rows.indexOf(document.activeElement);
  if (index < 0) index = rows.findIndex((row) => row.dataset.id === state.selectedId);
  const next = index < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, index + step));
  rows[next].focus();
  rows[next].scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- diagnosis card

function confidenceEl(confidence) {
  const percent = Math.round((confidence ?? 0) * 100);
  return el("span", { class: "confidence", title: "confidence" },
    el("span", { class: "confidence-bar", "aria-hidden": "true" }, el("span", { style: `width: ${percent}%` })),
    `${percent}%`);
}

function formatLatency(ms) {
  if (!ms) return null;
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function diagnosisMeta(diagnosis) {
  const tokens = (diagnosis.tokens?.prompt ?? 0) + (diagnosis.tokens?.completion ?? 0);
  return [
    diagnosis.model,
    formatLatency(diagnosis.latency_ms),
    tokens ? `${tokens.toLocaleString()} tokens` : null,
    diagnosis.tool_calls?.length > 0 ? `tools: ${diagnosis.tool_calls.join(", ")}` : null,
    diagnosis.cache_age_s !== null && diagnosis.cache_age_s !== undefined
      ? `cached ${formatDuration(diagnosis.cache_age_s)} ago` : null,
  ].filter(Boolean).join(" · ");
}

function proposedActionEl(proposed) {
  if (!proposed || proposed.action === "none") {
    return el("span", { class: "muted" }, "No safe automatic action: a person has to act.");
  }
  return el("span", {},
    el("span", { class: "proposed" }, humanize(proposed.action)),
    proposed.service ? ` ${proposed.service}` : "",
    proposed.replicas ? ` to ${proposed.replicas} replicas` : "");
}

function diagnosisCard(diagnosis) {
  const source = token(diagnosis.source) || "offline";
  const fields = [
    ["Root cause", diagnosis.root_cause],
    ["Evidence", diagnosis.evidence?.length > 0 && el("ul", { class: "evidence" },
      diagnosis.evidence.map((item) => el("li", {},
        el("span", { class: "tool" }, item.tool), el("code", {}, item.quote))))],
    ["Check first", diagnosis.checks?.length > 0 && el("ol", {}, diagnosis.checks.map((check) => el("li", {}, check)))],
    ["Mitigation", diagnosis.mitigation],
    ["Proposed", proposedActionEl(diagnosis.proposed_action)],
  ].filter(([, value]) => value);
  return el("div", { class: `diagnosis source-${source}` },
    el("div", { class: "diagnosis-head" },
      el("span", { class: `source-badge source-${source}`, "data-testid": "diagnosis-source", title: SOURCE_HINTS[source] },
        source),
      el("span", { class: "category" }, humanize(diagnosis.category)),
      confidenceEl(diagnosis.confidence),
      el("span", { class: "diagnosis-meta" }, diagnosisMeta(diagnosis))),
    el("p", { class: "diagnosis-summary" }, diagnosis.summary),
    diagnosis.past_fixes && el("p", { class: "past-fix" }, `↺ ${diagnosis.past_fixes}`),
    el("dl", { class: "diagnosis-fields" }, fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])));
}

// ---------------------------------------------------------------- thread

async function pressButton(event, spec) {
  const button = event.currentTarget;
  const group = [...button.parentElement.querySelectorAll("button")];
  for (const member of group) member.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await postJson(incidentPath(state.selectedId, "/buttons"), { action_id: spec.action_id, value: spec.value });
    button.textContent = `${spec.label} ✓`;
    showPending();
  } catch (error) {
    for (const member of group) member.disabled = false;
    report(error);
  } finally {
    button.removeAttribute("aria-busy");
  }
}

function messageItem(message) {
  const bot = BOT_KINDS.has(message.kind);
  const [linkLabel, linkUrl] = message.link ?? [];
  return el("li", {
    class: `message ${bot ? "bot" : "person"} kind-${token(message.kind)}`,
    "data-testid": "message",
    "data-kind": message.kind,
    "data-id": message.id,
  },
  el("div", { class: "avatar", "aria-hidden": "true" }, bot ? "ob" : initials(message.author)),
  el("div", { class: "message-body" },
    el("div", { class: "message-meta" },
      el("span", { class: "author" }, message.author || (bot ? "opsbot" : "someone")),
      timeEl(message.at),
      bot && message.kind !== "info" && el("span", { class: "kind" }, message.kind)),
    message.diagnosis
      ? diagnosisCard(message.diagnosis)
      : message.text && el("div", { class: "message-text", "data-testid": "message-text" }, inline(message.text)),
    message.buttons?.length > 0 && el("div", { class: "message-buttons" },
      message.buttons.map((spec) => el("button", {
        type: "button",
        class: `button ${token(spec.style)}`,
        "data-action-id": spec.action_id,
        "data-value": spec.value,
        onclick: (event) => pressButton(event, spec),
      }, spec.label))),
    linkUrl && link(`${linkLabel || linkUrl} ↗`, linkUrl, { class: "message-link" })));
}

function isNearBottom() {
  const scroller = $("incident-scroll");
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  const scroller = $("incident-scroll");
  scroller.scrollTop = scroller.scrollHeight;
}

// SSE and the detail view spell the same message with keys in another order: compare content.
function renderedFrom(message) {
  return JSON.stringify([message.kind, message.author, message.text, message.buttons, message.link, message.diagnosis]);
}

// Adds new messages and replaces changed ones; unchanged ones stay (with their button state).
// An operator's own message arrives over SSE without an id; its stored copy takes its place.
function upsertMessage(message, fresh) {
  const node = messageItem(message);
  if (fresh) node.classList.add("is-new");
  if (message.id === undefined || message.id === null) {
    state.provisional.push({ text: message.text, node });
    $("thread").append(node);
    return;
  }
  const json = renderedFrom(message);
  if (state.rendered.get(message.id) === json) return;
  let existing = $("thread").querySelector(`[data-testid="message"][data-id="${CSS.escape(String(message.id))}"]`);
  const echo = state.provisional.findIndex((item) => item.text === message.text);
  if (!existing && !BOT_KINDS.has(message.kind) && echo >= 0) {
    existing = state.provisional.splice(echo, 1)[0].node;
  }
  if (existing) existing.replaceWith(node);
  else $("thread").append(node);
  state.rendered.set(message.id, json);
}

function showPending() {
  $("pending").hidden = false;
  clearTimeout(state.pendingTimer);
  state.pendingTimer = setTimeout(hidePending, PENDING_TIMEOUT_MS);
}

function hidePending() {
  clearTimeout(state.pendingTimer);
  $("pending").hidden = true;
}

async function sendReply(text) {
  const id = state.selectedId;
  const input = $("reply-input");
  input.value = "";
  $("reply-send").disabled = true;
  try {
    await postJson(incidentPath(id, "/messages"), { text });
    showPending();
  } catch (error) {
    if (!input.value) input.value = text;
    report(error);
  } finally {
    $("reply-send").disabled = false;
  }
}

// ---------------------------------------------------------------- minimal Markdown (messages inline, postmortem blocks)

function inline(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/\*\*([^*]+)\*\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)/g)) {
    parts.push(text.slice(last, match.index));
    if (match[1]) parts.push(el("strong", {}, match[1]));
    else if (match[2]) parts.push(el("code", {}, match[2]));
    else parts.push(link(match[3], match[4]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

function renderMarkdown(markdown) {
  const blocks = [];
  let list = null;
  let paragraph = null;
  let code = null;
  for (const line of markdown.split("\n")) {
    if (code) {
      if (line.startsWith("```")) code = null;
      else code.append(`${line}\n`);
      continue;
    }
    const heading = line.match(/^(#{1,4})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*]|(\d+)\.)\s+(.*)$/);
    if (line.startsWith("```")) {
      code = el("code");
      blocks.push(el("pre", {}, code));
      list = paragraph = null;
    } else if (heading) {
      blocks.push(el(`h${heading[1].length + 2}`, {}, inline(heading[2])));
      list = paragraph = null;
    } else if (item) {
      const tag = item[1] ? "OL" : "UL";
      if (list?.tagName !== tag) blocks.push((list = el(tag.toLowerCase())));
      list.append(el("li", {}, inline(item[2])));
      paragraph = null;
    } else if (!line.trim()) {
      list = paragraph = null;
    } else if (paragraph) {
      paragraph.append(" ", ...inline(line));
    } else {
      blocks.push((paragraph = el("p", {}, inline(line))));
      list = null;
    }
  }
  return blocks;
}

async function loadPostmortem(incident) {
  const section = $("postmortem-section");
  section.hidden = incident.status !== "resolved";
  if (section.hidden) return;
  let markdown = null;
  try {
    markdown = await (await request(incidentPath(incident.id, "/postmortem"))).text();
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  if (incident.id !== state.selectedId) return;
  $("postmortem").replaceChildren(...(markdown
    ? renderMarkdown(markdown)
    : [el("p", { class: "muted" }, "The postmortem is being written…")]));
}

// ---------------------------------------------------------------- incident view

function timesEl(incident) {
  const entry = (name, at, tookFrom, by) => at && el("div", {},
    el("dt", {}, name),
    el("dd", {}, timeEl(at), by && ` by ${by}`, tookFrom
      ? el("span", { class: "took" }, ` · after ${formatDuration(secondsBetween(tookFrom, at))}`)
      : el("span", { class: "took" }, " · ", ageEl(at), " ago")));
  return [
    entry("Started", incident.created_at),
    entry("Acknowledged", incident.acknowledged_at, incident.created_at, incident.acknowledged_by),
    entry("Resolved", incident.resolved_at, incident.created_at, incident.resolved_by),
  ];
}

function ticketEl(ticket) {
  if (ticket.key) return el("li", {}, link(`${ticket.key} ↗`, ticket.url));
  const who = ticket.assignee ? ` for ${ticket.assignee}` : "";
  return el("li", {}, el("span", { class: `ticket-${token(ticket.state)}`, title: ticket.error },
    `ticket${who}: ${ticket.state ?? "pending"}`));
}

function renderIncident(incident) {
  $("incident-short-id").textContent = `#${incident.short_id}`;
  $("incident-title").textContent = incident.title;
  $("incident-status").className = `pill status-${token(incident.status)}`;
  $("incident-status").textContent = incident.status;
  $("incident-severity").className = `severity sev-${token(incident.severity)}`;
  $("incident-severity").textContent = incident.severity;
  $("incident-service").replaceChildren(...(incident.service
    ? [el("span", { class: "muted" }, "service "), el("strong", {}, incident.service)] : []));
  $("incident-source").textContent = incident.source ? `via ${incident.source}` : "";
  $("incident-alerts").textContent = `${incident.alert_count} alert${incident.alert_count === 1 ? "" : "s"}`;
  $("incident-labels").replaceChildren(...Object.entries(incident.labels ?? {}).map(([key, value]) =>
    el("li", { class: "label" }, `${key}=`, el("b", {}, value))));
  $("incident-times").replaceChildren(...timesEl(incident).filter(Boolean));
  $("incident-tickets").replaceChildren(...(incident.tickets ?? []).map(ticketEl));
  const timeline = incident.timeline ?? [];
  $("timeline-section").hidden = timeline.length === 0;
  $("timeline-section").querySelector("summary").textContent = `Timeline (${timeline.length})`;
  $("timeline").replaceChildren(...timeline.map((event) => el("li", {},
    timeEl(event.at), el("span", { class: "kind" }, humanize(event.kind)),
    event.actor && el("span", { class: "muted" }, `${event.actor}: `), event.text)));
  updateTitle();
}

async function loadIncident(id) {
  const wasNearBottom = isNearBottom();
  const firstLoad = state.rendered.size === 0;
  const detail = await getJson(incidentPath(id));
  if (id !== state.selectedId) return;
  state.detail = detail;
  renderIncident(detail);
  $("incident").hidden = false;
  for (const message of detail.messages ?? []) upsertMessage(message, !firstLoad);
  if (firstLoad || wasNearBottom) scrollToBottom();
  $("thread").setAttribute("aria-live", "polite");
  await loadPostmortem(detail);
}

function openIncident(id) {
  if (id !== state.selectedId) {
    state.selectedId = id;
    state.detail = null;
    state.rendered.clear();
    state.provisional = [];
    // Filling the thread of another incident is not news: keep screen readers quiet meanwhile.
    $("thread").setAttribute("aria-live", "off");
    $("thread").replaceChildren();
    $("postmortem-section").hidden = true;
    $("incident").hidden = true;
    hidePending();
  }
  state.unread.delete(id);
  $("empty-view").hidden = true;
  document.body.classList.add("has-incident");
  renderList();
  loadIncident(id).catch((error) => {
    report(error);
    if (error.status === 404) window.location.hash = "#/";
  });
}

function closeIncident() {
  state.selectedId = null;
  state.detail = null;
  state.rendered.clear();
  state.provisional = [];
  $("incident").hidden = true;
  $("empty-view").hidden = false;
  document.body.classList.remove("has-incident");
  hidePending();
  renderList();
  updateTitle();
}

function route() {
  const match = window.location.hash.match(/^#\/incidents\/(.+)$/);
  if (match) openIncident(decodeURIComponent(match[1]));
  else closeIncident();
}

// ---------------------------------------------------------------- live updates

const refreshList = debounced(loadList);
const refreshStats = debounced(loadStats);
const refreshIncident = debounced(async () => {
  if (state.selectedId) await loadIncident(state.selectedId);
});

function setConnection(connection, text) {
  $("connection").dataset.state = connection;
  $("connection").textContent = text;
}

function onMessageEvent({ incident_id: incidentId, message }) {
  if (incidentId === state.selectedId) {
    const follow = isNearBottom();
    upsertMessage(message, true);
    if (follow) scrollToBottom();
    if (BOT_KINDS.has(message.kind)) hidePending();
    if (message.kind === "postmortem") refreshIncident();
  } else {
    state.unread.add(incidentId);
    renderList();
  }
}

function onIncidentEvent({ id }) {
  refreshList();
  refreshStats();
  if (id === state.selectedId) refreshIncident();
}

function onStatsEvent(stats) {
  if (stats?.incidents) renderStats(stats);
  else refreshStats();
}

// EventSource retries by itself after network errors; a refused stream (e.g. 401) closes it,
// so probe with an API request (which can ask for the token) and connect again.
function recoverEvents() {
  setTimeout(() => loadList().then(connectEvents, recoverEvents), RECONNECT_MS);
}

function connectEvents() {
  state.events?.close();
  const source = new EventSource("/api/events");
  state.events = source;
  const handle = (handler) => (event) => handler(JSON.parse(event.data));
  source.addEventListener("open", () => {
    setConnection("live", "Live");
    if (state.connectedOnce) {
      refreshList();
      refreshStats();
      refreshIncident();
    }
    state.connectedOnce = true;
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      setConnection("reconnecting", "Reconnecting…");
    } else if (state.events === source) {
      setConnection("offline", "Offline");
      recoverEvents();
    }
  });
  source.addEventListener("incident", handle(onIncidentEvent));
  source.addEventListener("message", handle(onMessageEvent));
  source.addEventListener("stats", handle(onStatsEvent));
  source.addEventListener("storm", refreshStats);
}

// ---------------------------------------------------------------- keyboard

function isTyping(target) {
  return target instanceof HTMLElement
    && target.matches("textarea, select, [contenteditable], input:not([type=checkbox]):not([type=radio])");
}

function onKeydown(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  if (event.key === "Escape") {
    if (isTyping(event.target)) event.target.blur();
    else if (state.selectedId) window.location.hash = "#/";
    else return;
    (rowFor(state.selectedId ?? "") ?? document.querySelector('[data-testid="incident-row"]'))?.focus();
    return;
  }
  if (isTyping(event.target)) return;
  const actions = {
    j: () => moveRow(1),
    k: () => moveRow(-1),
    "/": () => state.selectedId && $("reply-input").focus(),
    r: () => state.selectedId && $("reply-input").focus(),
    a: () => state.detail?.status === "triggered" && sendReply("ack"),
    "?": () => $("help-dialog").showModal(),
    1: () => setFilter(FILTERS[0]),
    2: () => setFilter(FILTERS[1]),
    3: () => setFilter(FILTERS[2]),
    4: () => setFilter(FILTERS[3]),
  };
  if (!(event.key in actions)) return;
  event.preventDefault();
  actions[event.key]();
}

function onReplyKeydown(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("reply-form").requestSubmit();
  }
}

// ---------------------------------------------------------------- start

function bind() {
  document.addEventListener("keydown", onKeydown);
  window.addEventListener("hashchange", route);
  $("login-dialog").addEventListener("cancel", (event) => event.preventDefault());
  $("help-toggle").addEventListener("click", () => $("help-dialog").showModal());
  $("back").addEventListener("click", () => { window.location.hash = "#/"; });
  $("chaos-toggle").addEventListener("change", toggleChaos);
  $("reply-input").addEventListener("keydown", onReplyKeydown);
  $("reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("reply-input").value.trim();
    if (text && state.selectedId) sendReply(text);
  });
  for (const chip of document.querySelectorAll("[data-insert]")) {
    chip.addEventListener("click", () => {
      $("reply-input").value = chip.dataset.insert;
      $("reply-input").focus();
    });
  }
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => setFilter(button.dataset.filter));
  }
}

function tickAges() {
  for (const node of document.querySelectorAll("[data-age]")) node.textContent = formatAge(node.dataset.age);
}

function start() {
  initTheme();
  bind();
  setFilter(state.filter);
  route();
  loadStats().catch(report);
  loadChaos().catch(report);
  connectEvents();
  setInterval(tickAges, AGE_TICK_MS);
  setInterval(() => loadStats().catch(report), STATS_TICK_MS);
}

start();
