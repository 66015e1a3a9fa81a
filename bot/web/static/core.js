/* tradebot dashboard: the shared parts (API calls, formatting, DOM helpers, live updates, actions).
   Plain JavaScript, no build step. Data is always inserted as text, never as HTML. */
"use strict";

const TB = (window.TB = {});

TB.csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
TB.page = document.body.dataset.page;
TB.symbol = document.body.dataset.symbol || "";

/* ------------------------------------------------------------------ API */

TB.api = async function (path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = TB.csrf;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("/api/v1" + path, {
    method: options.method || "GET",
    headers,
    credentials: "same-origin",
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("logged out");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
    throw new Error(detail || response.statusText);
  }
  return data;
};

/* ------------------------------------------------------------------ formatting */

TB.money = (v) =>
  v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
TB.signed = (v) => (v === null || v === undefined ? "–" : (v >= 0 ? "+" : "") + TB.money(v));
TB.pct = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits) + "%");
TB.qty = (v) => Number(v).toLocaleString("en-US", { maximumFractionDigits: 6 });
TB.time = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "") : "–");
TB.cls = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");

/* ------------------------------------------------------------------ DOM */

TB.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};

/* columns: [{label, value: row => text|Node, cls: row => class, num: right-aligned, wrap: long text}] */
TB.table = function (columns, rows, empty) {
  if (!rows.length) return TB.el("p", { class: "empty" }, empty || "Nothing yet.");
  const head = TB.el("tr", {}, columns.map((c) => TB.el("th", { class: c.num ? "num" : "" }, c.label)));
  const body = rows.map((row) =>
    TB.el(
      "tr",
      {},
      columns.map((c) =>
        TB.el("td", { class: [c.num ? "num" : "", c.wrap ? "wrap" : "", c.cls ? c.cls(row) : ""].join(" ").trim() || null, "data-label": c.label }, c.value(row))
      )
    )
  );
  return TB.el("div", { class: "scroll" }, TB.el("table", {}, TB.el("thead", {}, head), TB.el("tbody", {}, body)));
};

TB.card = (label, value, cls) => TB.el("div", { class: "card" }, TB.el("span", { class: "label" }, label), TB.el("span", { class: "value " + (cls || "") }, value));

TB.section = (title, ...content) => TB.el("section", {}, TB.el("h2", {}, title), ...content);

TB.replace = function (id, node) {
  const old = document.getElementById(id);
  node.id = id;
  if (old) old.replaceWith(node);
  else document.getElementById("app").append(node);
};

/* Toasts stack in one box, newest last, each on its own (never one over another); at most
   TOASTS_SHOWN at once, the oldest going first; a click dismisses one. */
TB.TOASTS_SHOWN = 4;
TB.toast = function (text, kind) {
  let stack = document.getElementById("toasts");
  if (!stack) {
    stack = TB.el("div", { id: "toasts", "aria-live": "polite" });
    document.body.append(stack);
  }
  const box = TB.el("div", { class: "toast " + (kind || ""), role: kind === "error" ? "alert" : "status" }, text);
  box.addEventListener("click", () => box.remove());
  stack.append(box);
  while (stack.children.length > TB.TOASTS_SHOWN) stack.firstElementChild.remove();
  setTimeout(() => box.remove(), kind === "error" ? 10000 : 6000);
};

/* ------------------------------------------------------------------ theme */

/* "auto" follows the system (prefers-color-scheme); "dark" and "light" are the trader's choice,
   kept in this browser. theme.js applies a choice before the page paints. */
TB.THEME_KEY = "tradebot.theme";
TB.onTheme = []; /* fn(dark): charts recolour themselves */
const systemDark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
TB.themeChoice = function () {
  try {
    const choice = localStorage.getItem(TB.THEME_KEY);
    return choice === "dark" || choice === "light" ? choice : "auto";
  } catch (e) {
    return "auto";
  }
};
TB.dark = () => (TB.themeChoice() === "auto" ? !!(systemDark && systemDark.matches) : TB.themeChoice() === "dark");
TB.applyTheme = function () {
  const choice = TB.themeChoice();
  if (choice === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
  const button = document.getElementById("theme");
  if (button) {
    button.textContent = "Theme: " + choice;
    button.title = choice === "auto" ? "following the system (" + (TB.dark() ? "dark" : "light") + "); click to change" : "click to change";
  }
  TB.onTheme.forEach((hook) => hook(TB.dark()));
};
TB.cycleTheme = function () {
  const next = { auto: "dark", dark: "light", light: "auto" }[TB.themeChoice()];
  try {
    if (next === "auto") localStorage.removeItem(TB.THEME_KEY);
    else localStorage.setItem(TB.THEME_KEY, next);
  } catch (e) { /* storage off: the choice lasts this page */ }
  TB.applyTheme();
};
if (systemDark) systemDark.addEventListener("change", () => TB.themeChoice() === "auto" && TB.applyTheme());

/* ------------------------------------------------------------------ status badge and banner */

/* Times on the simulated market's clock are labelled as such (the console and Telegram say
   "(simulated clock)" too): TB.simulated is set from /status before a page draws its tables. */
TB.simulated = false;
TB.SIMULATED_CLOCK = "simulated clock";
TB.clockLabel = (label) => (TB.simulated ? `${label} (${TB.SIMULATED_CLOCK})` : label);

TB.showStatus = function (status) {
  TB.simulated = status.mode === "sim";
  const clock = document.getElementById("clock");
  clock.hidden = !TB.simulated;
  if (TB.simulated) {
    const speed = status.clock_speed !== 1 ? `, ${status.clock_speed}x real time` : "";
    clock.textContent = `${TB.SIMULATED_CLOCK}: ${TB.time(status.now)} UTC${speed}`;
  }
  const badge = document.getElementById("badge");
  badge.textContent = status.mode.toUpperCase() + " · " + status.state;
  badge.className = "badge " + status.state.split(" ")[0] + (status.mode === "live" ? " live-money" : "");
  const banner = document.getElementById("banner");
  const notes = [];
  if (status.read_only) notes.push("Read-only: " + status.instance + ". This instance does not trade; actions are off.");
  if (status.paused) {
    const who = status.paused_by ? ` by ${status.paused_by}` : "";
    const since = status.paused_since ? ` since ${TB.time(status.paused_since)}${TB.simulated ? ` (${TB.SIMULATED_CLOCK})` : ""}` : "";
    const held = status.blocked_since_pause ? ` (${status.blocked_since_pause} entries held back)` : "";
    notes.push(`Paused${who}${since}: no new entries${held}. Stops, targets and exits keep working.`);
  }
  if (status.state.startsWith("halted")) notes.push("Halted: the daily loss limit was reached; new entries resume tomorrow (UTC).");
  banner.hidden = !notes.length;
  banner.textContent = notes.join(" ");
  TB.readOnly = status.read_only;
  document.body.classList.toggle("read-only", status.read_only);
};

/* ------------------------------------------------------------------ live updates */

TB.lastEventId = null;
TB.onEvent = []; /* page hooks: fn(event) */
TB.onLog = []; /* page hooks: fn(last_seq), when new log lines were written */
TB.onResearch = []; /* page hooks: fn(job), when a research job started, moved on or ended */
let refreshTimer = null;

TB.refreshSoon = function (delay = 150) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => TB.refresh().catch((e) => TB.toast(e.message, "error")), delay);
};

TB.connect = function (attempt = 0) {
  const live = document.getElementById("live");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const query = TB.lastEventId === null ? "" : "?after=" + TB.lastEventId;
  const socket = new WebSocket(scheme + location.host + "/api/v1/ws" + query);
  socket.onopen = () => {
    attempt = 0;
    live.textContent = "live";
    live.className = "live on";
  };
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "hello") {
      if (TB.lastEventId !== null && data.last_id > TB.lastEventId) TB.refreshSoon();
      TB.lastEventId = data.last_id;
    } else if (data.type === "event") {
      TB.lastEventId = Math.max(TB.lastEventId || 0, data.event.id || 0);
      TB.onEvent.forEach((hook) => hook(data.event));
      TB.refreshSoon();
    } else if (data.type === "cycle") {
      TB.refreshSoon(300);
    } else if (data.type === "log") {
      TB.onLog.forEach((hook) => hook(data.last_seq));
    } else if (data.type === "research") {
      TB.onResearch.forEach((hook) => hook(data.job));
    }
  };
  socket.onclose = (event) => {
    live.textContent = "offline";
    live.className = "live off";
    if (event.code === 1008) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      return;
    }
    setTimeout(() => TB.connect(attempt + 1), Math.min(1000 * 2 ** attempt, 15000));
  };
};

/* ------------------------------------------------------------------ actions (confirmation step) */

TB.act = async function (path, body, method = "POST") {
  try {
    const answer = await TB.api(path, { method, body });
    if (answer.confirmation) TB.confirmDialog(answer.confirmation);
    else TB.toast(answer.text);
    TB.refreshSoon();
    return answer;
  } catch (error) {
    TB.toast(error.message, "error");
    return null;
  }
};

TB.confirmDialog = function (confirmation) {
  const dialog = document.getElementById("dialog");
  const seconds = TB.el("span", { class: "countdown" });
  // Counted from this answer with the browser's own clock: a browser whose clock is off from the
  // server's (or a server on a simulated clock) would otherwise close the dialog at once.
  const until = Date.now() + confirmation.expires_in * 1000;
  const tick = setInterval(() => {
    const left = Math.max(0, Math.round((until - Date.now()) / 1000));
    seconds.textContent = ` (${left} s)`;
    if (!left) close();
  }, 250);
  function close() {
    clearInterval(tick);
    dialog.hidden = true;
    dialog.replaceChildren();
  }
  async function answer(method) {
    close();
    try {
      const result = await TB.api("/confirmations/" + confirmation.id, { method });
      if (result.confirmation) {
        // The state changed since the question: nothing was done; the new question (which
        // says why, in its first line) is asked instead.
        TB.confirmDialog(result.confirmation);
      } else {
        TB.toast(result.text, method === "POST" ? "" : "muted");
      }
    } catch (error) {
      TB.toast(error.message, "error");
    }
    TB.refreshSoon();
  }
  dialog.replaceChildren(
    TB.el(
      "div",
      { class: "box", role: "dialog", "aria-modal": "true" },
      confirmation.replaces ? TB.el("p", { class: "replaces" }, confirmation.replaces) : null,
      TB.el("p", {}, confirmation.prompt, seconds),
      TB.el(
        "div",
        { class: "buttons" },
        TB.el("button", { class: "danger", id: "confirm", onclick: () => answer("POST") }, "Confirm"),
        TB.el("button", { id: "cancel", onclick: () => answer("DELETE") }, "Cancel")
      )
    )
  );
  dialog.hidden = false;
};

document.getElementById("theme").addEventListener("click", TB.cycleTheme);
TB.applyTheme();

document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": TB.csrf }, credentials: "same-origin" });
  location.href = "/login";
});
