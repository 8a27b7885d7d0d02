// Herald's dashboard: a client of the API, plain JavaScript, no dependency.
// Every value from the server goes into the page as text (textContent), never
// as markup; an email preview goes into a sandboxed iframe (no scripts).
"use strict";

const TOKEN = "herald.token";
const $ = (id) => document.getElementById(id);
const SECTIONS = ["login", "messages", "detail", "funnel", "policy"];

function show(name) {
  for (const s of SECTIONS) $(s).hidden = s !== name;
  $("nav").hidden = name === "login";
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("active", a.id === "nav-" + name);
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fact(dl, name, value) {
  dl.append(el("dt", name), el("dd", value === null || value === undefined ? "-" : value));
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let doc = null;
  try { doc = await r.json(); } catch (e) { doc = null; }
  if (r.status === 401 && path !== "/api/crm/auth/token") {
    sessionStorage.removeItem(TOKEN);
    location.hash = "#/login";
  }
  if (!r.ok) {
    const msg = doc && doc.error ? doc.error.message : "HTTP " + r.status;
    throw new Error(msg);
  }
  return doc;
}

function when(ts) {
  if (!ts) return "-";
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// ---- sign in ----

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const doc = await api("POST", "/api/crm/auth/token", { api_key: $("api-key").value });
    sessionStorage.setItem(TOKEN, doc.access_token);
    $("api-key").value = "";
    location.hash = "#/messages";
  } catch (e) {
    $("login-error").textContent = "Sign-in refused: " + e.message;
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN);
  location.hash = "#/login";
});

// ---- messages ----

async function loadMessages() {
  show("messages");
  $("messages-error").textContent = "";
  const q = new URLSearchParams({ limit: "50" });
  const add = (k, id) => { const v = $(id).value.trim(); if (v) q.set(k, v); };
  add("status", "f-status"); add("channel", "f-channel"); add("message_type", "f-type");
  add("client_id", "f-client");
  const body = $("message-table").tBodies[0];
  try {
    const doc = await api("GET", "/api/crm/communications?" + q.toString());
    body.replaceChildren();
    for (const m of doc.items) {
      const tr = el("tr", null, "link");
      tr.dataset.id = m.id;
      tr.append(el("td", when(m.created_at)), el("td", m.client_id), el("td", m.message_type),
        el("td", m.urgency), el("td", m.channel || (m.strategy && m.strategy.primary_channel) || "-"));
      const st = el("td");
      st.append(el("span", m.status, "status " + m.status));
      tr.append(st);
      tr.addEventListener("click", () => { location.hash = "#/message/" + m.id; });
      body.append(tr);
    }
    if (doc.items.length === 0) {
      const tr = el("tr");
      const td = el("td", "No message matches.");
      td.colSpan = 6;
      tr.append(td);
      body.append(tr);
    }
  } catch (e) {
    $("messages-error").textContent = e.message;
  }
}

$("filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadMessages(); });

// ---- one message ----

async function loadDetail(id) {
  show("detail");
  $("detail-error").textContent = "";
  for (const x of ["detail-facts", "detail-reasons", "timeline"]) $(x).replaceChildren();
  $("preview-frame").hidden = true;
  $("preview-text").textContent = "";
  $("preview-subject").textContent = "";
  $("preview-note").textContent = "";
  try {
    const m = await api("GET", "/api/crm/communications/" + encodeURIComponent(id));
    $("detail-title").textContent = m.message_type + " to " + m.client_id;
    const f = $("detail-facts");
    fact(f, "Status", m.status);
    fact(f, "Channel", m.channel || "-");
    fact(f, "Urgency", m.urgency);
    fact(f, "Plan", m.plan_id);
    fact(f, "Created", when(m.created_at));
    fact(f, "Chain", m.strategy ? [m.strategy.primary_channel].concat(m.strategy.fallback_channels || []).join(" → ") : "-");
    for (const r of (m.strategy && m.strategy.reasons) || []) $("detail-reasons").append(el("li", r));
    const items = [];
    for (const a of m.attempts || [])
      items.push({ at: a.at, text: "attempt " + a.attempt + " on " + a.channel + " (" + (a.provider || "") + "): " + a.status +
        (a.code ? " " + a.code : "") + (a.category ? " [" + a.category + "]" : "") + (a.message ? " — " + a.message : "") });
    for (const e of m.events || [])
      items.push({ at: e.at, text: e.type + (e.channel ? " on " + e.channel : "") + (e.message ? ": " + e.message : "") });
    items.sort((a, b) => String(a.at).localeCompare(String(b.at)));
    for (const it of items) {
      const li = el("li");
      li.append(el("span", when(it.at), "when"), el("span", it.text));
      $("timeline").append(li);
    }
    $("timeline").dataset.count = String(items.length);
    $("preview-tabs").dataset.id = id;
    await loadPreview(id, m.channel || (m.strategy && m.strategy.primary_channel) || "email");
  } catch (e) {
    $("detail-error").textContent = e.message;
  }
}

async function loadPreview(id, channel) {
  $("preview-frame").hidden = true;
  $("preview-text").textContent = "";
  $("preview-subject").textContent = "";
  try {
    const p = await api("GET", "/api/crm/communications/" + encodeURIComponent(id) + "/preview?channel=" + channel);
    $("preview-note").textContent = channel + ": " + p.note + ".";
    if (channel === "email") {
      $("preview-subject").textContent = "Subject: " + p.subject;
      $("preview-frame").srcdoc = p.html;
      $("preview-frame").hidden = false;
    } else {
      $("preview-text").textContent = p.text;
    }
  } catch (e) {
    $("preview-note").textContent = channel + ": " + e.message;
  }
}

for (const b of document.querySelectorAll("#preview-tabs button"))
  b.addEventListener("click", () => loadPreview($("preview-tabs").dataset.id, b.dataset.channel));

// ---- funnel ----

function drawFunnel(groups) {
  const c = $("funnel-chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const steps = ["reached", "delivered", "opened", "clicked"];
  const colors = ["#2f5bd3", "#3a8f5c", "#c7831f", "#9b3fb5"];
  const max = Math.max(1, ...groups.map((x) => x.reached || 0));
  const left = 150, top = 30, rowH = Math.max(24, Math.min(60, (c.height - top - 10) / Math.max(1, groups.length)));
  const barH = (rowH - 8) / steps.length;
  g.font = "13px system-ui, sans-serif";
  steps.forEach((s, i) => {
    g.fillStyle = colors[i];
    g.fillRect(left + i * 140, 8, 12, 12);
    g.fillStyle = "#1d2330";
    g.fillText(s === "reached" ? "sent" : s, left + i * 140 + 18, 19);
  });
  let drawn = 0;
  groups.forEach((grp, r) => {
    const y = top + r * rowH;
    g.fillStyle = "#1d2330";
    g.fillText(grp.key || "all", 8, y + rowH / 2);
    steps.forEach((s, i) => {
      const w = ((grp[s] || 0) / max) * (c.width - left - 20);
      g.fillStyle = colors[i];
      g.fillRect(left, y + i * barH, w, barH - 1);
      if (w > 0) drawn++;
    });
  });
  c.dataset.bars = String(drawn);
}

function rate(x) { return x === null || x === undefined ? "-" : (x * 100).toFixed(1) + "%"; }

async function loadFunnel() {
  show("funnel");
  $("funnel-error").textContent = "";
  const today = new Date().toISOString().slice(0, 10);
  if (!$("fn-to").value) $("fn-to").value = today;
  if (!$("fn-from").value) $("fn-from").value = new Date(Date.now() - 29 * 86400e3).toISOString().slice(0, 10);
  const q = new URLSearchParams({ from: $("fn-from").value, to: $("fn-to").value, group_by: $("fn-by").value });
  try {
    const doc = await api("GET", "/api/crm/analytics?" + q.toString());
    const groups = doc.groups || [];
    drawFunnel(groups);
    const body = $("funnel-table").tBodies[0];
    body.replaceChildren();
    for (const grp of groups.concat([Object.assign({ key: "all" }, doc.total)])) {
      const tr = el("tr");
      tr.append(el("td", grp.key), el("td", grp.reached), el("td", grp.delivered), el("td", grp.opened),
        el("td", grp.clicked), el("td", rate(grp.delivery_rate)), el("td", rate(grp.open_rate)),
        el("td", rate(grp.click_rate)));
      body.append(tr);
    }
    $("funnel-asof").textContent = "From the daily rollups" + (doc.as_of ? ", as of " + when(doc.as_of) : "") + ".";
  } catch (e) {
    $("funnel-error").textContent = e.message;
  }
}

$("funnel-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadFunnel(); });

// ---- policy ----

async function loadPolicy() {
  show("policy");
  $("policy-error").textContent = "";
  const st = $("policy-status");
  st.replaceChildren();
  try {
    const h = await api("GET", "/api/crm/health");
    const s = h.scripts || {};
    fact(st, "Scripts", s.status);
    fact(st, "Generation", s.generation);
    fact(st, "Last reload", s.loaded_at ? when(s.loaded_at) : "(an admin token shows it)");
    fact(st, "Files", s.scripts !== undefined ? s.scripts + " scripts, " + s.templates + " templates" : "-");
    fact(st, "Last error", s.error ? s.error + (s.error_at ? " (" + when(s.error_at) + ")" : "") : "none");
    const types = await api("GET", "/api/crm/message-types");
    const sel = $("pv-type");
    if (sel.options.length === 0)
      for (const t of types.message_types || []) sel.append(el("option", t.name));
  } catch (e) {
    $("policy-error").textContent = e.message;
  }
}

$("preview-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("policy-error").textContent = "";
  const out = $("pv-result");
  out.replaceChildren();
  $("pv-explanation").textContent = "";
  let prefs;
  try {
    prefs = JSON.parse($("pv-prefs").value || "{}");
  } catch (e) {
    $("policy-error").textContent = "Preferences: not JSON (" + e.message + ")";
    return;
  }
  const body = { message_type: $("pv-type").value, preferences: prefs };
  if ($("pv-urgency").value) body.urgency = $("pv-urgency").value;
  try {
    const d = await api("POST", "/api/crm/strategy/preview", body);
    fact(out, "Primary channel", d.strategy.primary_channel || "none");
    fact(out, "Fallbacks", (d.strategy.fallback_channels || []).join(", ") || "none");
    fact(out, "Send at", when(d.strategy.send_at));
    fact(out, "Digest", d.strategy.batch ? "yes" : "no");
    $("pv-explanation").textContent = d.explanation;
  } catch (e) {
    $("policy-error").textContent = e.message;
  }
});

// ---- routing ----

function route() {
  const h = location.hash || "#/messages";
  if (!sessionStorage.getItem(TOKEN) || h === "#/login") return show("login");
  const m = h.match(/^#\/message\/([0-9a-f-]{36})$/);
  if (m) return loadDetail(m[1]);
  if (h === "#/funnel") return loadFunnel();
  if (h === "#/policy") return loadPolicy();
  return loadMessages();
}

window.addEventListener("hashchange", route);
route();
