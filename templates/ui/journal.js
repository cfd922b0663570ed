// The journal: every exchange in both directions, live, with raw fields, notes, curl and export.
"use strict";

(() => {
  const { el, clear, api, report, toast, timeNode, integration } = Sim;
  const $ = (id) => document.getElementById(id);
  const LIMIT = 500;

  const state = { entries: [], current: null, selected: new Set(), lastId: 0 };

  function query(extra) {
    const q = new URLSearchParams();
    if (integration()) q.set("integration", integration());
    if ($("f-direction").value) q.set("direction", $("f-direction").value);
    if ($("f-cmd").value) q.set("cmd", $("f-cmd").value);
    const status = $("f-status").value.trim();
    if (/^\d{3}$/.test(status)) q.set("status", status);
    q.set("limit", String(LIMIT));
    for (const [k, v] of Object.entries(extra || {})) q.set(k, String(v));
    return q.toString();
  }

  async function load() {
    const entries = await api("GET", "/api/v1/journal?" + query());
    state.entries = entries;
    state.lastId = entries.length ? entries[entries.length - 1].id : state.lastId;
    render();
  }

  async function loadNew() {
    if (!state.entries.length) return load();
    const fresh = await api("GET", "/api/v1/journal?" + query({ since: state.lastId }));
    if (!fresh.length) return;
    state.entries = state.entries.concat(fresh).slice(-LIMIT);
    state.lastId = fresh[fresh.length - 1].id;
    render();
  }

  const DIRECTION = { to_planfix: "chat → Planfix", to_chat: "Planfix → chat" };

  function statusCell(entry) {
    if (entry.error && entry.status === null) return el("span", { class: "code code-x", title: entry.error }, "✗ net");
    const first = String(entry.status || "x")[0];
    return el("span", { class: `code code-${first}` }, String(entry.status));
  }

  function row(entry) {
    const box = el("input", { type: "checkbox", "aria-label": `Select entry ${entry.id}` });
    box.checked = state.selected.has(entry.id);
    box.addEventListener("click", (event) => event.stopPropagation());
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(entry.id);
      else state.selected.delete(entry.id);
      updateSelection();
    });
    const notes = entry.notes || [];
    const tr = el(
      "tr",
      { "data-entry": entry.id, "data-direction": entry.direction, class: state.current === entry.id ? "current" : null },
      el("td", {}, box),
      el("td", {}, timeNode(entry.ts)),
      el("td", {}, el("span", { class: `dir dir-${entry.direction}` }, DIRECTION[entry.direction] || entry.direction)),
      el("td", { class: "mono" }, entry.cmd || "—"),
      el("td", { class: "mono chat", title: entry.chat_id }, entry.chat_id),
      el("td", {}, statusCell(entry)),
      el("td", { class: "mono" }, Math.round(entry.duration_ms)),
      el(
        "td",
        {},
        notes.length ? el("span", { class: "note-count", title: notes.map((n) => n.text).join("\n") }, `${notes.length} note${notes.length > 1 ? "s" : ""}`) : null,
        entry.fault ? el("span", { class: "fault-mark", title: entry.fault }, "fault") : null,
      ),
    );
    tr.addEventListener("click", () => show(entry.id));
    return tr;
  }

  function render() {
    const body = clear($("entries"));
    // Newest first: what just happened is what one looks for.
    for (const entry of [...state.entries].reverse()) body.append(row(entry));
    const empty = $("journal-empty");
    empty.hidden = state.entries.length > 0;
    const filtered = $("f-direction").value || $("f-cmd").value || $("f-status").value.trim();
    empty.textContent = filtered
      ? "No entry matches these filters."
      : "Nothing journaled yet: every request in either direction shows up here as it happens.";
    $("journal-count").textContent = `${state.entries.length} shown`;
    updateSelection();
    if (state.current) {
      const entry = state.entries.find((e) => e.id === state.current);
      if (entry) renderDetail(entry);
    }
  }

  function updateSelection() {
    const n = state.selected.size;
    $("selected-count").textContent = n ? `${n} selected` : "select entries to export";
    $("export").disabled = n === 0;
    const shown = state.entries.length;
    $("select-all").checked = shown > 0 && state.entries.every((e) => state.selected.has(e.id));
  }

  function show(id) {
    state.current = id;
    for (const tr of document.querySelectorAll("#entries tr")) {
      tr.classList.toggle("current", Number(tr.dataset.entry) === id);
    }
    const entry = state.entries.find((e) => e.id === id);
    if (entry) renderDetail(entry);
  }

  function prettyBody(text) {
    if (!text) return "(empty body)";
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      return text;
    }
  }

  function renderDetail(entry) {
    const detail = clear($("detail"));
    $("copy-curl").disabled = false;
    detail.append(
      el(
        "div",
        { class: "toolbar" },
        el("span", { class: `dir dir-${entry.direction}` }, DIRECTION[entry.direction] || entry.direction),
        el("strong", { class: "mono" }, `${entry.method} `),
        el("code", {}, entry.url),
      ),
      el(
        "div",
        { class: "hint" },
        `#${entry.id} · `,
        timeNode(entry.ts),
        ` · recorded by ${entry.party} · ${entry.duration_ms} ms`,
        entry.delivery_id ? ` · delivery ${entry.delivery_id}` : "",
      ),
    );
    const notes = entry.notes || [];
    if (notes.length || entry.fault || entry.error) {
      const list = el("ul", { class: "notes", "aria-label": "Contract notes" });
      for (const note of notes) {
        list.append(
          el("li", { class: note.unknown ? "unknown" : null }, el("span", { class: "code-name" }, note.code || "note"), note.text || "",
            note.unknown ? el("span", { class: "hint" }, " (Planfix's real behaviour unknown)") : null),
        );
      }
      if (entry.fault) list.append(el("li", { class: "unknown" }, el("span", { class: "code-name" }, "fault"), entry.fault));
      if (entry.error) list.append(el("li", { class: "unknown" }, el("span", { class: "code-name" }, "error"), entry.error));
      detail.append(el("h4", {}, "Contract notes"), list);
    }
    const form = el("table", { class: "form" });
    for (const [key, value] of entry.form || []) form.append(el("tr", {}, el("td", {}, key), el("td", {}, value)));
    detail.append(el("h4", {}, `Request form (${(entry.form || []).length} fields)`), form);
    const headers = Object.entries(entry.request_headers || {});
    if (headers.length) {
      detail.append(el("h4", {}, "Request headers"), el("pre", { class: "body" }, headers.map(([k, v]) => `${k}: ${v}`).join("\n")));
    }
    detail.append(
      el("h4", {}, "Answer ", entry.status === null ? "(none)" : statusCell(entry)),
      el("pre", { class: "body" }, entry.error && entry.status === null ? entry.error : prettyBody(entry.response_body)),
    );
  }

  // POSIX single-quote escaping (an embedded quote as '\''): the shell sees every byte literally.
  const sq = (text) => "'" + String(text).split("'").join("'\\''") + "'";

  // A form name or value as application/x-www-form-urlencoded sends it (brackets kept readable).
  const formEncode = (text) =>
    encodeURIComponent(text).replace(/%20/g, "+").replace(/%5B/gi, "[").replace(/%5D/gi, "]");

  function curlOf(entry) {
    // The Planfix face journals its own path; curl needs the whole URL. --url, so that no URL
    // is ever read as an option.
    const url = String(entry.url || "").startsWith("/") ? Sim.baseUrl + entry.url : entry.url;
    // Every value is quoted; only the fixed option names stay bare.
    const lines = [`curl -sS -X ${sq(entry.method || "POST")} --url ${sq(url)}`];
    for (const [key, value] of entry.form || []) {
      // curl encodes only what follows the first '='; the name goes encoded already, so an '@'
      // in it can never make curl read a file. Where --data-urlencode cannot say it (an empty
      // name, a NUL no shell argument holds), the pair goes pre-encoded as --data-raw.
      const raw = key === "" || key.includes("\0") || value.includes("\0");
      lines.push(
        raw ? `--data-raw ${sq(`${formEncode(key)}=${formEncode(value)}`)}` : `--data-urlencode ${sq(`${formEncode(key)}=${value}`)}`,
      );
    }
    return lines.join(" \\\n  ");
  }

  $("copy-curl").addEventListener("click", async () => {
    if (!state.current) return;
    try {
      // The list masks tokens (it ends up in screenshots); a replay needs the real ones.
      const entry = await api("GET", `/api/v1/journal/${state.current}?reveal=1`);
      await Sim.copyText(curlOf(entry));
    } catch (error) {
      report(error);
    }
  });

  $("select-all").addEventListener("change", () => {
    for (const entry of state.entries) {
      if ($("select-all").checked) state.selected.add(entry.id);
      else state.selected.delete(entry.id);
    }
    render();
  });

  $("export").addEventListener("click", async () => {
    const ids = [...state.selected].sort((a, b) => a - b);
    try {
      const response = await fetch(`/api/v1/journal/export?ids=${ids.join(",")}`, { credentials: "same-origin" });
      const text = await response.text();
      if (!response.ok) {
        let message = text;
        try {
          const data = JSON.parse(text);
          message = [data.error, data.detail].filter(Boolean).join(": ");
        } catch (_) {
          /* plain text error */
        }
        throw new Error(`Export failed (${response.status}): ${message}`);
      }
      const blob = new Blob([text], { type: "application/yaml" });
      const link = el("a", { download: `scenario-${ids[0]}-${ids[ids.length - 1]}.yaml` });
      link.href = URL.createObjectURL(blob);
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      toast(`Exported ${ids.length} entries as a scenario`, "ok");
    } catch (error) {
      report(error);
    }
  });

  for (const id of ["f-direction", "f-cmd"]) $(id).addEventListener("change", () => load().catch(report));
  $("f-status").addEventListener("input", Sim.debounce(() => load().catch(report), 250));
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  Sim.onIntegration(() => load().catch(report));

  const catchUp = Sim.debounce(() => loadNew().catch(report), 60);
  Sim.live.on((kind) => {
    if (kind === "journal") catchUp();
    else if (kind === "open" || kind === "reset") load().catch(report);
  });

  document.addEventListener("DOMContentLoaded", () => load().catch(report));
})();
