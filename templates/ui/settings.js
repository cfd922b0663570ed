// Settings: integrations, employees, faults and reset, all through /api/v1.
"use strict";

(() => {
  const { el, clear, api, report, toast, integration } = Sim;
  const $ = (id) => document.getElementById(id);
  const state = { integrations: [], editing: null };

  const csv = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

  async function loadIntegrations() {
    state.integrations = await Sim.refreshIntegrations();
    const list = clear($("integration-list"));
    for (const item of state.integrations) {
      const edit = el("button", { type: "button", class: "ghost", "data-edit": item.id }, "Edit");
      edit.addEventListener("click", () => fill(item));
      const last = state.integrations.length === 1;
      const remove = el(
        "button",
        {
          type: "button",
          class: "ghost danger",
          "data-delete": item.id,
          disabled: last,
          title: last ? "The last integration cannot be deleted" : `Delete “${item.name}”`,
        },
        "Delete",
      );
      remove.addEventListener("click", () => removeIntegration(item));
      list.append(
        el(
          "li",
          {},
          el("strong", {}, item.name),
          el("code", {}, item.url),
          el("span", { class: "badge" }, item.profile),
          item.strict ? el("span", { class: "badge" }, "strict") : null,
          el("span", { class: "grow" }),
          edit,
          remove,
        ),
      );
    }
    if (state.editing) {
      const again = state.integrations.find((i) => i.id === state.editing);
      if (again) fill(again);
    }
  }

  async function removeIntegration(item) {
    const question =
      `Delete the integration “${item.name}”? Its chats, tasks, contacts, messages and deliveries ` +
      "go with it; its journal entries stay as history.";
    if (!confirm(question)) return;
    try {
      await api("DELETE", `/api/v1/integrations/${item.id}`);
      if (state.editing === item.id) fill(null);
      toast(`Deleted “${item.name}”`, "ok");
      await loadIntegrations();
    } catch (error) {
      report(error);
    }
  }

  function fill(item) {
    state.editing = item ? item.id : null;
    $("integration-form-title").textContent = item ? `Edit “${item.name}”` : "New integration";
    $("integration-save").textContent = item ? "Save" : "Create";
    const v = item || {
      name: "", url: "", planfix_token: "", token: "", profile: "documented", strict: false, task_fields: [],
      default_employee: "", timeout: 10, options: { new_task_when_closed: true, rename_task_on_title: true },
      retry: { enabled: false, schedule: [900, 1800, 3600, 3600], time_factor: 1 },
    };
    $("i-name").value = v.name;
    $("i-url").value = v.url;
    $("i-planfix-token").value = v.planfix_token;
    $("i-token").value = v.token;
    $("i-profile").value = v.profile;
    $("i-strict").checked = Boolean(v.strict);
    $("i-task-fields").value = (v.task_fields || []).join(", ");
    $("i-default-employee").value = v.default_employee || "";
    $("i-timeout").value = v.timeout;
    $("i-new-task").checked = Boolean(v.options.new_task_when_closed);
    $("i-rename").checked = Boolean(v.options.rename_task_on_title);
    $("i-retry").checked = Boolean(v.retry.enabled);
    $("i-schedule").value = (v.retry.schedule || []).join(", ");
    $("i-factor").value = v.retry.time_factor;
  }

  function formPayload() {
    const payload = {
      profile: $("i-profile").value,
      strict: $("i-strict").checked,
      task_fields: csv($("i-task-fields").value),
      default_employee: $("i-default-employee").value.trim() || null,
      options: { new_task_when_closed: $("i-new-task").checked, rename_task_on_title: $("i-rename").checked },
      retry: { enabled: $("i-retry").checked, schedule: csv($("i-schedule").value).map(Number) },
    };
    // Empty text fields mean "keep" (edit) or "generate" (create): leave them out.
    for (const [key, id] of [["name", "i-name"], ["url", "i-url"], ["planfix_token", "i-planfix-token"], ["token", "i-token"]]) {
      const value = $(id).value.trim();
      if (value) payload[key] = value;
    }
    if ($("i-timeout").value) payload.timeout = Number($("i-timeout").value);
    if ($("i-factor").value) payload.retry.time_factor = Number($("i-factor").value);
    return payload;
  }

  $("integration-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const saved = state.editing
        ? await api("PATCH", `/api/v1/integrations/${state.editing}`, formPayload())
        : await api("POST", "/api/v1/integrations", formPayload());
      state.editing = saved.id;
      toast(`Saved “${saved.name}”`, "ok");
      await loadIntegrations();
    } catch (error) {
      report(error);
    }
  });
  $("integration-new").addEventListener("click", () => {
    fill(null);
    $("i-name").focus();
  });

  // -- employees ---------------------------------------------------------------------------------

  async function loadEmployees() {
    const employees = await api("GET", "/api/v1/employees");
    const list = clear($("employee-list"));
    for (const e of employees) {
      list.append(el("li", {}, el("strong", {}, [e.name, e.last_name].filter(Boolean).join(" ")), el("span", { class: "mono hint" }, e.email)));
    }
  }

  $("employee-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const payload = { email: $("e-email").value.trim(), name: $("e-name").value.trim() };
      if ($("e-last").value.trim()) payload.last_name = $("e-last").value.trim();
      if ($("e-ico").value.trim()) payload.ico = $("e-ico").value.trim();
      await api("POST", "/api/v1/employees", payload);
      event.target.reset();
      await loadEmployees();
    } catch (error) {
      report(error);
    }
  });

  // -- faults ------------------------------------------------------------------------------------

  const SIDES = ["planfix", "fake_chat"];

  function faultOf(side) {
    const fault = {};
    const number = (id) => ($(id).value === "" ? null : Number($(id).value));
    if ($(`${side}-status`).value) fault.status = Number($(`${side}-status`).value);
    if ($(`${side}-malformed`).checked) fault.malformed = true;
    if ($(`${side}-drop`).checked) fault.drop = true;
    for (const [key, id] of [["latency_ms", "latency"], ["count", "count"], ["probability", "probability"]]) {
      const value = number(`${side}-${id}`);
      if (value !== null) fault[key] = value;
    }
    return Object.keys(fault).length ? fault : null;
  }

  function showFaults(faults, fillForm) {
    const active = faults && SIDES.some((side) => faults[side]);
    $("faults-current").textContent = active
      ? JSON.stringify(faults, null, 2)
      : "No faults in force: both sides answer as the contract says.";
    // Live updates (a fault's count running down) must not clobber what the user is typing.
    if (!fillForm) return;
    $("faults-form").dataset.integration = integration();
    for (const side of SIDES) {
      const f = (faults && faults[side]) || {};
      $(`${side}-status`).value = f.status ? String(f.status) : "";
      $(`${side}-malformed`).checked = Boolean(f.malformed);
      $(`${side}-drop`).checked = Boolean(f.drop);
      $(`${side}-latency`).value = f.latency_ms ?? "";
      $(`${side}-count`).value = f.count ?? "";
      $(`${side}-probability`).value = f.probability ?? "";
    }
  }

  async function loadFaults(fillForm) {
    if (!integration()) return;
    try {
      showFaults(await api("GET", `/api/v1/integrations/${integration()}/faults`), fillForm);
    } catch (error) {
      if (error.status === 404) $("faults-current").textContent = "Faults are not available in this build.";
      else throw error;
    }
  }

  $("faults-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const payload = {};
    for (const side of SIDES) {
      const fault = faultOf(side);
      if (fault) payload[side] = fault;
    }
    try {
      await api("PUT", `/api/v1/integrations/${integration()}/faults`, payload);
      toast("Faults applied", "ok");
      await loadFaults(true);
    } catch (error) {
      report(error);
    }
  });
  $("faults-clear").addEventListener("click", async () => {
    try {
      await api("DELETE", `/api/v1/integrations/${integration()}/faults`);
      await loadFaults(true);
    } catch (error) {
      report(error);
    }
  });

  // -- reset -------------------------------------------------------------------------------------

  $("reset-one").addEventListener("click", async () => {
    if (!confirm("Forget every chat, task, message and journal entry of this integration?")) return;
    try {
      await api("POST", "/api/v1/reset", { integration: integration() });
      toast("Integration reset", "ok");
    } catch (error) {
      report(error);
    }
  });
  $("reset-all").addEventListener("click", async () => {
    if (!confirm("Forget everything (all integrations) and restart numbering?")) return;
    try {
      await api("POST", "/api/v1/reset", {});
      toast("Everything reset", "ok");
    } catch (error) {
      report(error);
    }
  });

  Sim.onIntegration(() => loadFaults(true).catch(report));
  Sim.live.on((kind) => {
    if (kind.startsWith("integration")) loadIntegrations().catch(report);
    else if (kind === "faults.changed") loadFaults(false).catch(report);
    else if (kind === "reset") loadFaults(true).catch(report);
    else if (kind === "employee.changed") loadEmployees().catch(report);
    else if (kind === "open") Promise.all([loadIntegrations(), loadEmployees(), loadFaults(false)]).catch(report);
  });

  document.addEventListener("DOMContentLoaded", () => {
    fill(null);
    Promise.all([loadIntegrations(), loadEmployees(), loadFaults(true)]).catch(report);
  });
})();
