// Shared by every page: safe DOM building, the control API client, the live stream.
// Every value shown comes from the simulator's public /api/v1 and is hostile input: it is only
// ever placed with textContent / attribute setters, never parsed as HTML.
"use strict";

const Sim = (() => {
  const body = document.body;
  const baseUrl = body.dataset.baseUrl || location.origin;

  /** Build an element: attrs are set as attributes (never on* handlers), children as text or nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (/^on/i.test(key)) throw new Error("event handlers are attached with addEventListener");
      // URL-bearing attributes other than href never carry data here.
      if (/^(src|srcdoc|action|formaction|style)$/i.test(key)) throw new Error(`attribute ${key} is not allowed`);
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "href") {
        const safe = safeUrl(value);
        if (safe) node.setAttribute("href", safe);
      } else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** The URL when it is http(s), else null: javascript:, data: and friends never become links. */
  function safeUrl(raw) {
    if (typeof raw !== "string" || raw.startsWith("/")) {
      return typeof raw === "string" && !raw.startsWith("//") ? raw : null;
    }
    try {
      const url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  /** An attachment: a link for http(s) URLs, plain text otherwise. */
  function attachment(item) {
    const name = item.name || item.url || "attachment";
    const url = safeUrl(item.url);
    if (url && /^https?:/i.test(url)) {
      return el("a", { class: "attachment", href: url, target: "_blank", rel: "noopener noreferrer" }, name, " ↗");
    }
    return el("span", { class: "attachment inert", title: "not an http(s) link: shown as text" }, name, " ", el("code", {}, item.url || ""));
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body && (body.detail || body.error) ? [body.error, body.detail].filter(Boolean).join(": ") : `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  /** No HTTP answer at all: the simulator is stopped, restarting or unreachable. */
  class Unreachable extends Error {
    constructor(cause) {
      super(`The simulator is not answering at ${location.origin}: is \`planfix-sim serve\` running?`);
      this.status = 0;
      this.cause = cause;
    }
  }

  // With an admin token set, the server's guard leaves an HttpOnly cookie after one visit to
  // /?admin_token=…: fetch and EventSource send it by themselves, so pages never handle it.

  /** Call the control API with JSON; throws ApiError with the server's error text. */
  async function api(method, path, payload) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    let text;
    try {
      response = await fetch(path, init);
      text = await response.text();
    } catch (error) {
      // fetch rejects only when no answer came: say which server is gone, not "Failed to fetch".
      throw new Unreachable(error);
    }
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = { error: text };
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  let toastTimer = null;
  function toast(message, kind) {
    const node = document.getElementById("toast");
    if (!node) return;
    node.textContent = message;
    node.dataset.kind = kind || "error";
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (node.hidden = true), 6000);
  }

  /** Report a failed action to the user; never swallow it silently. */
  function report(error) {
    toast(error && error.message ? error.message : String(error), "error");
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      // Clipboard API needs a secure context; fall back to a selected textarea.
      const area = el("textarea", { class: "sr-only" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    toast("Copied", "ok");
  }

  function time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false })
      : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
  }

  function timeNode(iso) {
    return el("time", { datetime: iso || "", title: iso || "" }, time(iso));
  }

  // -- the selected integration ------------------------------------------------------------
  const picker = document.getElementById("integration");
  const STORE_KEY = "planfix-sim.integration";
  const listeners = [];

  function integration() {
    return picker ? picker.value : body.dataset.integration || "";
  }

  function onIntegration(fn) {
    listeners.push(fn);
  }

  /** The menu cuts long names: its title carries the selected one whole, for hover. */
  function titlePicker() {
    const selected = picker.selectedOptions[0];
    picker.title = selected && selected.value ? selected.textContent : "";
  }

  async function refreshIntegrations() {
    const items = await api("GET", "/api/v1/integrations?reveal=1");
    const keep = integration();
    clear(picker);
    if ("allowAll" in body.dataset) picker.append(el("option", { value: "" }, "all integrations"));
    for (const item of items) picker.append(el("option", { value: item.id, title: item.name }, item.name));
    const gone = keep !== "" && !items.some((i) => String(i.id) === String(keep));
    if (!gone) picker.value = keep;
    titlePicker();
    updateHowto(items);
    if (gone) {
      // The selected integration was deleted: move to the first one, everywhere on the page.
      localStorage.setItem(STORE_KEY, picker.value);
      live.connect();
      for (const fn of listeners) fn(integration());
    }
    return items;
  }

  const integrationListeners = [];

  /** Call `fn(current)` with the selected integration each time the list is (re)loaded. */
  function onIntegrations(fn) {
    integrationListeners.push(fn);
  }

  /** The integration's URL as the simulator posts to it ({base_url} filled in). */
  function replyUrl(item) {
    return String(item.url || "").split("{base_url}").join(baseUrl);
  }

  /** Whether `url` is the fake chat's webhook of this simulator (whatever its query string). */
  function isFakeChat(url) {
    const path = url.split(/[?#]/, 1)[0];
    return [baseUrl, location.origin].some((origin) => path === `${origin}/fake-chat/webhook`);
  }

  function updateHowto(items) {
    const current = items.find((i) => String(i.id) === String(integration())) || items[0];
    if (!current) return;
    document.getElementById("howto-token").textContent = current.planfix_token;
    // The planfix_token is shown to be copied; a secret in the reply URL's query is not.
    const url = maskText(replyUrl(current), [current.token, current.planfix_token]);
    document.getElementById("howto-url").textContent = url;
    for (const fn of integrationListeners) fn(current);
  }

  // -- masking, as the server's security.mask_text does it ---------------------------------
  const MASK = "\u2026";
  const secretParams = (body.dataset.secretParams || "").split(/\s+/).filter(Boolean);
  const escaped = secretParams.map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const querySecret = escaped.length
    ? new RegExp(`([?&](?:${escaped.join("|")})=)([^&#\\s"'<>]+)`, "gi")
    : null;

  /** `303cb962ac59075b964b07152d234b70` → `303c…4b70`; short values are hidden whole. */
  function maskSecret(value) {
    if (!value) return value;
    return value.length < 12 ? MASK : `${value.slice(0, 4)}${MASK}${value.slice(-4)}`;
  }

  /** `text` with secret query-string values and the given secret values masked. */
  function maskText(text, secrets) {
    let out = text;
    if (querySecret) out = out.replace(querySecret, (_, name, value) => name + maskSecret(value));
    for (const secret of secrets || []) {
      if (secret && secret.length >= 6) out = out.split(secret).join(maskSecret(secret));
    }
    return out;
  }

  if (picker) {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved && [...picker.options].some((o) => o.value === saved)) picker.value = saved;
    titlePicker();
    picker.addEventListener("change", () => {
      titlePicker();
      localStorage.setItem(STORE_KEY, picker.value);
      refreshIntegrations().catch(report);
      live.connect();
      for (const fn of listeners) fn(integration());
    });
  }

  // -- the live stream ---------------------------------------------------------------------
  // EventSource reconnects by itself and sends Last-Event-ID, so the server replays what was
  // missed; on every (re)open the page also refetches, which covers events dropped by retention.
  const live = (() => {
    const handlers = [];
    const badge = document.getElementById("live");
    let source = null;
    let lastId = 0;
    let opened = false;

    function state(name, label) {
      if (!badge) return;
      badge.dataset.state = name;
      badge.textContent = label;
    }

    function dispatch(event) {
      if (event.lastEventId) lastId = Math.max(lastId, Number(event.lastEventId) || 0);
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      for (const fn of handlers) fn(event.type, data);
    }

    const KINDS = [
      "message.in", "message.out", "message.delivery", "message.status", "task.created",
      "task.renamed", "task.completed", "task.reopened", "contact.created", "contact.updated",
      "journal", "integration.created", "integration.changed", "integration.deleted",
      "faults.changed", "reset",
      "inbox", "delivery", "employee.changed", "message",
    ];

    function connect() {
      if (source) source.close();
      const query = new URLSearchParams();
      if (integration()) query.set("integration", integration());
      if (lastId) query.set("last_event_id", String(lastId));
      state("connecting", "connecting…");
      source = new EventSource("/api/v1/events?" + query.toString());
      source.addEventListener("open", () => {
        state("live", "live");
        // Catch up on anything the stream could not replay.
        for (const fn of handlers) fn("open", { reconnect: opened });
        opened = true;
      });
      source.addEventListener("error", () => {
        state("down", "reconnecting…");
        if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
      });
      for (const kind of KINDS) source.addEventListener(kind, dispatch);
    }

    return {
      connect,
      on(fn) {
        handlers.push(fn);
      },
      get lastId() {
        return lastId;
      },
    };
  })();

  /** Run `fn` at most once per `ms`, after the last call: many events, one refetch. */
  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  /** Enter submits the textarea's form; Shift+Enter keeps the new line. */
  function enterSends(textarea) {
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        textarea.form.requestSubmit();
      }
    });
  }

  /** A removable row of inputs (attachment name+url, data_ field+value). */
  let rowCount = 0;
  function pairRow(container, first, second, kind) {
    rowCount += 1;
    const id = `${container.id}-${rowCount}`;
    const a = el("input", { id: `${id}-a`, class: `pair-a ${kind}`, placeholder: first });
    const b = el("input", { id: `${id}-b`, class: `pair-b ${kind}`, placeholder: second });
    const remove = el("button", { type: "button", class: "ghost icon", title: "Remove", "aria-label": "Remove" }, "×");
    const row = el(
      "div",
      { class: "pair" },
      el("label", { for: `${id}-a`, class: "sr-only" }, first),
      a,
      el("label", { for: `${id}-b`, class: "sr-only" }, second),
      b,
      remove,
    );
    remove.addEventListener("click", () => row.remove());
    container.append(row);
    a.focus();
    return row;
  }

  function pairs(container) {
    return [...container.querySelectorAll(".pair")]
      .map((row) => [row.querySelector(".pair-a").value.trim(), row.querySelector(".pair-b").value])
      .filter(([a, b]) => a || b.trim());
  }

  function attachmentsOf(container) {
    return pairs(container).map(([name, url]) => ({ name: name || url, url: url.trim() }));
  }

  for (const button of document.querySelectorAll(".add-attachment")) {
    button.addEventListener("click", () => {
      const target = document.getElementById(button.dataset.target);
      pairRow(target, "file name", "https://… url", "attachment");
    });
  }

  for (const button of document.querySelectorAll("[data-copy-from]")) {
    button.addEventListener("click", () => {
      copyText(document.getElementById(button.dataset.copyFrom).textContent.trim());
    });
  }

  // Every page drops a deleted integration from its menu (and leaves it, if it was selected).
  live.on((kind) => {
    if (kind === "integration.deleted" && picker) refreshIntegrations().catch(report);
  });

  document.addEventListener("DOMContentLoaded", () => {
    if (picker) refreshIntegrations().catch(report);
    setTimeout(live.connect, 0);
  });

  return {
    el, clear, safeUrl, attachment, api, toast, report, copyText, time, timeNode,
    integration, onIntegration, onIntegrations, refreshIntegrations, replyUrl, isFakeChat,
    maskText, live, debounce, enterSends,
    pairRow, pairs, attachmentsOf, baseUrl, ApiError, Unreachable,
  };
})();
