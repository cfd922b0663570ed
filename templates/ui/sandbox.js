// The sandbox: the Planfix operator (tasks, thread, replies) beside the fake chat's customer.
"use strict";

(() => {
  const { el, clear, api, report, toast, timeNode, attachment, integration } = Sim;
  const $ = (id) => document.getElementById(id);

  const state = {
    task: Number(new URLSearchParams(location.search).get("task")) || null,
    employees: [],
    chats: [],
    chat: null,
  };

  // -- operator: employees, task list, task page ----------------------------------------------

  async function loadEmployees() {
    state.employees = await api("GET", "/api/v1/employees");
    for (const select of [$("reply-employee"), $("first-employee")]) {
      const keep = select.value;
      clear(select);
      const nameOf = (e) => [e.name, e.last_name].filter(Boolean).join(" ");
      for (const e of state.employees) {
        const name = nameOf(e);
        // The e-mail only where two employees share a name: the select stays narrow.
        const twin = state.employees.some((o) => o !== e && nameOf(o) === name);
        select.append(el("option", { value: e.email, title: e.email }, twin ? `${name} <${e.email}>` : name));
      }
      if (keep) select.value = keep;
    }
  }

  async function loadTasks() {
    const query = integration() ? `?integration=${encodeURIComponent(integration())}` : "";
    const tasks = await api("GET", "/api/v1/tasks" + query);
    const list = clear($("task-list"));
    $("task-empty").hidden = tasks.length > 0;
    for (const task of tasks) list.append(taskItem(task));
    if (!state.task && tasks.length && window.matchMedia("(min-width: 900px)").matches) {
      selectTask(tasks[0].number, false);
    }
  }

  function contactName(contact) {
    if (!contact) return "";
    return [contact.name, contact.last_name].filter(Boolean).join(" ") || contact.contact_id;
  }

  function taskItem(task) {
    const unread = task.unread > 0 && task.number !== state.task;
    const link = el(
      "a",
      {
        href: `/?task=${task.number}`,
        class: "task-item" + (task.number === state.task ? " current" : "") + (unread ? " unread" : ""),
        "data-task": task.number,
        "aria-current": task.number === state.task ? "true" : null,
      },
      el(
        "div",
        { class: "row1" },
        el("span", { class: "num" }, `#${task.number}`),
        el("span", { class: "title" }, task.title),
        unread ? el("span", { class: "unread-dot", title: `${task.unread} unread`, "aria-label": `${task.unread} unread` }, String(task.unread)) : null,
      ),
      el(
        "div",
        { class: "row2" },
        el("span", { class: "who" }, contactName(task.contact)),
        el("span", { class: `badge status-${task.status}` }, task.status),
        timeNode(task.last_message_at || task.updated_at),
      ),
      el("div", { class: "last" }, task.last_message),
    );
    link.addEventListener("click", (event) => {
      event.preventDefault();
      selectTask(task.number, true);
    });
    return el("li", {}, link);
  }

  function selectTask(number, push) {
    state.task = number;
    const url = new URL(location.href);
    url.searchParams.set("task", String(number));
    if (push) history.pushState({ task: number }, "", url);
    else history.replaceState({ task: number }, "", url);
    for (const a of document.querySelectorAll(".task-item")) {
      const current = Number(a.dataset.task) === number;
      a.classList.toggle("current", current);
      if (current) {
        a.classList.remove("unread");
        a.setAttribute("aria-current", "true");
        const dot = a.querySelector(".unread-dot");
        if (dot) dot.remove();
      } else a.removeAttribute("aria-current");
    }
    loadTask().catch(report);
  }

  window.addEventListener("popstate", () => {
    state.task = Number(new URLSearchParams(location.search).get("task")) || null;
    loadTask().catch(report);
  });

  async function loadTask() {
    if (!state.task) {
      $("task").hidden = true;
      $("task-placeholder").hidden = false;
      return;
    }
    const number = state.task;
    let task;
    try {
      task = await api("GET", `/api/v1/tasks/${number}`);
    } catch (error) {
      if (state.task !== number) return; // stale: another task was picked meanwhile
      if (error.status === 404) {
        state.task = null;
        return loadTask();
      }
      throw error;
    }
    // Another task was picked while this one loaded: its own load draws the page.
    if (state.task !== number) return;
    $("task").hidden = false;
    $("task-placeholder").hidden = true;
    $("task-number").textContent = `#${task.number}`;
    $("task-title").textContent = task.title;
    const status = $("task-status");
    status.textContent = task.status;
    status.className = `badge status-${task.status}`;
    $("task-complete").hidden = task.status !== "active";
    $("task-reopen").hidden = task.status === "active";
    renderContact(task);
    renderFields(task);
    renderThread(task.messages);
    if (task.unread > 0) await api("POST", `/api/v1/tasks/${task.number}/read`);
  }

  function kv(dl, key, value, mono) {
    if (value === null || value === undefined || value === "") return;
    dl.append(el("dt", {}, key), el("dd", { class: mono ? "mono" : null }, String(value)));
  }

  function renderContact(task) {
    const dl = clear($("contact-card"));
    const c = task.contact;
    if (c) {
      kv(dl, "Name", contactName(c));
      kv(dl, "Number", c.number, true);
      kv(dl, "contactId", c.contact_id, true);
      kv(dl, "Phone", c.phone, true);
      kv(dl, "E-mail", c.email);
      kv(dl, "Data", c.data);
      if (c.ico) {
        dl.append(el("dt", {}, "Icon"), el("dd", {}, attachment({ name: "picture", url: c.ico })));
      }
    }
    kv(dl, "chatId", task.chat_id, true);
    kv(dl, "providerId", task.provider_id, true);
    kv(dl, "Channel", task.channel);
    if (task.previous_number) kv(dl, "Follows task", `#${task.previous_number}`, true);
  }

  function renderFields(task) {
    const dl = clear($("task-fields"));
    const entries = Object.entries(task.fields || {});
    for (const [key, value] of entries) kv(dl, key, value, false);
    if (!entries.length) {
      // Across both columns: alone in the first (max-content) one it would not wrap.
      dl.append(el("dd", { class: "hint wide" }, "none yet: data_<field> fills the fields named in Settings"));
    }
    if (task.description) {
      dl.append(el("dt", {}, "Description"), el("dd", { class: "pre" }, task.description));
    }
  }

  const DELIVERY = {
    pending: ["⏳", "pending"],
    retrying: ["↻", "retrying"],
    delivered: ["→", "delivered"],
    failed: ["✗", "failed"],
  };
  const STATUS = { sent: ["✓", "sent"], read: ["✓✓", "read"], error: ["⚠", "error"] };

  function message(m, perspective) {
    const outgoing = perspective === "operator" ? m.direction === "out" || m.kind === "echo" : m.direction === "in";
    const label = { customer: "customer", echo: "echo", reply: "reply", first: "first message" }[m.kind] || m.kind;
    const meta = el(
      "div",
      { class: "meta" },
      el("span", { class: "author" }, m.author || ""),
      el("span", { class: `kind kind-${m.kind}` }, label),
      m.kind === "echo" && m.employee_email ? el("span", { class: "hint" }, m.employee_email) : null,
      timeNode(m.created_at),
    );
    const children = [meta, el("div", { class: "text" }, m.text)];
    if (m.attachments && m.attachments.length) {
      children.push(el("div", { class: "attachments" }, m.attachments.map(attachment)));
    }
    if (m.direction === "out") {
      const [icon, word] = DELIVERY[m.delivery_state] || ["", m.delivery_state];
      const line = el("div", { class: `delivery delivery-${m.delivery_state}` });
      line.append(el("span", { class: "state", title: `delivery: ${word}` }, `${icon} ${word}`));
      if (m.delivery_note) line.append(el("span", { class: "reason" }, m.delivery_note));
      if (m.delivery_state === "failed") {
        const retry = el("button", { type: "button", class: "ghost retry", title: "Deliver again (same messageId)" }, "Retry");
        retry.addEventListener("click", () => retryDelivery(m, retry));
        line.append(retry);
      }
      if (m.message_id) line.append(el("span", { class: "mono", title: "Planfix's messageId" }, `#${m.message_id}`));
      if (m.status) {
        const [sicon, sword] = STATUS[m.status] || ["✓", m.status];
        line.append(
          el("span", { class: `status status-${m.status}`, title: `messageStatus: ${m.status}` }, `${sicon} ${sword}`),
        );
        if (m.status_text) line.append(el("span", { class: "reason" }, m.status_text));
      }
      children.push(line);
    }
    return el(
      "li",
      { class: `msg ${outgoing ? "mine" : "theirs"} msg-${m.kind}`, "data-message": m.id, "data-kind": m.kind },
      el("div", { class: "bubble" }, children),
    );
  }

  async function retryDelivery(m, button) {
    button.disabled = true;
    try {
      const deliveries = await api("GET", `/api/v1/deliveries?integration=${encodeURIComponent(m.integration_id)}`);
      const found = deliveries.find((d) => d.message_id === m.id);
      if (!found) throw new Error(`no delivery found for message ${m.message_id}`);
      await api("POST", `/api/v1/deliveries/${found.id}/retry`, { wait: false });
      await loadTask();
    } catch (error) {
      report(error);
      button.disabled = false;
    }
  }

  function renderThread(messages) {
    const list = $("thread");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    clear(list);
    for (const m of messages) list.append(message(m, "operator"));
    if (!messages.length) list.append(el("li", { class: "empty" }, "No messages yet."));
    if (atBottom || list.dataset.task !== String(state.task)) list.scrollTop = list.scrollHeight;
    list.dataset.task = String(state.task);
  }

  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("reply-text").value;
    const attachments = Sim.attachmentsOf($("reply-attachments"));
    if (!text.trim() && !attachments.length) return;
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", `/api/v1/tasks/${state.task}/replies`, {
        message: text,
        employee: $("reply-employee").value || undefined,
        attachments,
        wait: false,
      });
      $("reply-text").value = "";
      clear($("reply-attachments"));
      await loadTask();
    } catch (error) {
      report(error);
    } finally {
      button.disabled = false;
      $("reply-text").focus();
    }
  });

  for (const [id, action] of [["task-complete", "complete"], ["task-reopen", "reopen"]]) {
    $(id).addEventListener("click", async () => {
      try {
        await api("POST", `/api/v1/tasks/${state.task}/${action}`);
        await Promise.all([loadTask(), loadTasks()]);
      } catch (error) {
        report(error);
      }
    });
  }

  $("first-open").addEventListener("click", () => {
    $("first-dialog").showModal();
    $("first-phone").focus();
  });
  $("first-cancel").addEventListener("click", () => $("first-dialog").close());
  $("first-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const result = await api("POST", "/api/v1/first-messages", {
        integration: integration(),
        contactPhone: $("first-phone").value.trim(),
        message: $("first-text").value,
        employee: $("first-employee").value || undefined,
        channel: $("first-channel").value.trim() || undefined,
      });
      $("first-dialog").close();
      $("first-text").value = "";
      const delivery = result.delivery || {};
      if (delivery.state === "failed") toast(`First message failed: ${delivery.outcome}`, "error");
      else toast(result.chatId ? `Chat ${result.chatId} opened` : "Sent", "ok");
      await loadTasks();
      if (result.task) selectTask(result.task, true);
    } catch (error) {
      report(error);
    }
  });

  // -- customer: the fake chat ------------------------------------------------------------------

  const chatKey = () => `planfix-sim.chats.${integration()}`;
  const chatPickKey = () => `planfix-sim.chat.${integration()}`;

  function savedChats() {
    try {
      const list = JSON.parse(localStorage.getItem(chatKey()) || "[]");
      return Array.isArray(list) ? list : [];
    } catch (_) {
      return [];
    }
  }

  function rememberChat(chat) {
    const list = savedChats().filter((c) => c.chatId !== chat.chatId);
    list.unshift(chat);
    localStorage.setItem(chatKey(), JSON.stringify(list.slice(0, 50)));
  }

  function draftChat() {
    const tag = Math.random().toString(16).slice(2, 6);
    return {
      chatId: `chat-${tag}`,
      contactId: `chat-${tag}`,
      contactName: "Alice",
      contactLastName: "Customer",
      contactPhone: "+15550100",
      contactEmail: "",
      providerId: "",
      channel: "",
    };
  }

  async function loadChats() {
    let known = [];
    try {
      const query = integration() ? `?integration=${encodeURIComponent(integration())}` : "";
      known = await api("GET", "/api/v1/chat/chats" + query);
    } catch (error) {
      if (error.status !== 404) report(error);
    }
    const byId = new Map();
    for (const c of savedChats()) byId.set(c.chatId, c);
    for (const c of Array.isArray(known) ? known : []) {
      const chatId = c.chatId || c.chat_id;
      if (!chatId || byId.has(chatId)) continue;
      byId.set(chatId, {
        chatId,
        contactId: c.contactId || c.contact_id || chatId,
        contactName: c.contactName || c.contact_name || c.userName || chatId,
        contactLastName: c.contactLastName || "",
        contactPhone: c.contactPhone || "",
        contactEmail: c.contactEmail || "",
        providerId: c.providerId || c.provider_id || "",
        channel: c.channel || "",
      });
    }
    if (!byId.size) {
      const draft = draftChat();
      rememberChat(draft);
      byId.set(draft.chatId, draft);
    }
    state.chats = [...byId.values()];
    const select = clear($("chat-select"));
    for (const c of state.chats) {
      const who = [c.contactName, c.contactLastName].filter(Boolean).join(" ");
      select.append(el("option", { value: c.chatId }, `${who} · ${c.chatId}`));
    }
    const saved = localStorage.getItem(chatPickKey());
    const pick = state.chats.find((c) => c.chatId === (state.chat && state.chat.chatId)) ||
      state.chats.find((c) => c.chatId === saved) || state.chats[0];
    select.value = pick.chatId;
    setChat(pick);
  }

  function setChat(chat) {
    state.chat = chat;
    localStorage.setItem(chatPickKey(), chat.chatId);
    const who = [chat.contactName, chat.contactLastName].filter(Boolean).join(" ");
    const identity = clear($("chat-identity"));
    identity.append(
      el("span", { class: "avatar", "aria-hidden": "true" }, (who || "?").slice(0, 1).toUpperCase()),
      el("strong", {}, who),
      el("span", { class: "mono hint" }, ` chatId ${chat.chatId}`),
    );
    if (chat.contactPhone) identity.append(el("span", { class: "mono hint" }, `· ${chat.contactPhone}`));
  }

  $("chat-select").addEventListener("change", () => {
    const chat = state.chats.find((c) => c.chatId === $("chat-select").value);
    if (chat) {
      setChat(chat);
      loadChatThread().catch(report);
    }
  });

  $("chat-new-toggle").addEventListener("click", () => {
    const form = $("chat-new");
    form.hidden = !form.hidden;
    $("chat-new-toggle").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) {
      const draft = draftChat();
      $("new-chat-id").value = draft.chatId;
      $("new-contact-id").value = draft.contactId;
      $("new-contact-name").value = "";
      $("new-contact-name").focus();
    }
  });

  $("chat-new").addEventListener("submit", (event) => {
    event.preventDefault();
    const chat = {
      chatId: $("new-chat-id").value.trim(),
      contactId: $("new-contact-id").value.trim(),
      contactName: $("new-contact-name").value.trim(),
      contactLastName: $("new-contact-last").value.trim(),
      contactPhone: $("new-contact-phone").value.trim(),
      contactEmail: $("new-contact-email").value.trim(),
      providerId: $("new-provider").value.trim(),
      channel: $("new-channel").value.trim(),
    };
    rememberChat(chat);
    state.chat = chat;
    $("chat-new").hidden = true;
    $("chat-new-toggle").setAttribute("aria-expanded", "false");
    loadChats().then(loadChatThread).catch(report);
    $("chat-text").focus();
  });

  function formValues(form, key) {
    return (form || []).filter(([k]) => k === key).map(([, v]) => v);
  }

  function sentItem(entry) {
    const form = entry.form || [];
    const names = formValues(form, "attachments[name]");
    const urls = formValues(form, "attachments[url]");
    const attachments = urls.map((url, i) => ({ name: names[i] || url, url }));
    const echo = ["1", "true"].includes(String(formValues(form, "isEcho")[0] || "").toLowerCase());
    const ok = entry.status === 200;
    const outcome = entry.error
      ? `✗ ${entry.error}`
      : ok
        ? "✓ accepted by Planfix"
        : `✗ ${entry.status} ${entry.response_body}`;
    const children = [
      el(
        "div",
        { class: "meta" },
        el("span", { class: "author" }, echo ? "business (echo)" : "you"),
        formValues(form, "title")[0] ? el("span", { class: "title-tag" }, `title “${formValues(form, "title")[0]}”`) : null,
        timeNode(entry.ts),
      ),
      el("div", { class: "text" }, formValues(form, "message")[0] || ""),
    ];
    if (attachments.length) children.push(el("div", { class: "attachments" }, attachments.map(attachment)));
    children.push(el("div", { class: `delivery ${ok ? "delivery-delivered" : "delivery-failed"}` }, el("span", { class: "state" }, outcome)));
    return { ts: entry.ts, node: el("li", { class: `msg mine msg-${echo ? "echo" : "customer"}`, "data-journal": entry.id }, el("div", { class: "bubble" }, children)) };
  }

  function inboxItem(item) {
    const author = [item.userName, item.userLastName].filter(Boolean).join(" ") || "Planfix";
    const children = [
      el(
        "div",
        { class: "meta" },
        el("span", { class: "author" }, author),
        el("span", { class: "kind kind-reply" }, item.variant === "first" ? "first message" : "operator"),
        timeNode(item.ts),
      ),
      el("div", { class: "text" }, item.message || ""),
    ];
    if (item.attachments && item.attachments.length) {
      children.push(el("div", { class: "attachments" }, item.attachments.map(attachment)));
    }
    if (item.messageId) children.push(el("div", { class: "hint mono" }, `messageId ${item.messageId}`));
    return { ts: item.ts, node: el("li", { class: "msg theirs msg-reply", "data-inbox": item.id }, el("div", { class: "bubble" }, children)) };
  }

  async function loadChatThread() {
    if (!state.chat) return;
    const iid = encodeURIComponent(integration());
    const chatId = state.chat.chatId;
    const [sent, inbox] = await Promise.all([
      api("GET", `/api/v1/journal?integration=${iid}&direction=to_planfix&cmd=newMessage`),
      api("GET", `/api/v1/chat/inbox?integration=${iid}&chatId=${encodeURIComponent(chatId)}`).catch((error) => {
        if (error.status === 404) return [];
        throw error;
      }),
    ]);
    if (!state.chat || state.chat.chatId !== chatId) return;
    const items = [
      ...sent.filter((e) => e.chat_id === chatId).map(sentItem),
      ...inbox.filter((i) => !i.chatId || i.chatId === chatId).map(inboxItem),
    ].sort((a, b) => new Date(a.ts) - new Date(b.ts));
    const list = $("chat-thread");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    clear(list);
    for (const item of items) list.append(item.node);
    if (!items.length) list.append(el("li", { class: "empty" }, "Say hello: the first message opens a task in Planfix."));
    if (atBottom || list.dataset.chat !== chatId) list.scrollTop = list.scrollHeight;
    list.dataset.chat = chatId;
  }

  $("chat-add-data").addEventListener("click", () => {
    Sim.pairRow($("chat-data"), "field", "value", "data");
  });

  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const chat = state.chat;
    const text = $("chat-text").value;
    if (!chat || !text.trim()) return;
    const payload = {
      integration: integration(),
      chatId: chat.chatId,
      contactId: chat.contactId,
      contactName: chat.contactName,
      message: text,
      attachments: Sim.attachmentsOf($("chat-attachments")),
      data: Object.fromEntries(Sim.pairs($("chat-data")).map(([k, v]) => [k.replace(/^data_/, ""), v])),
    };
    const optional = {
      contactLastName: chat.contactLastName,
      contactPhone: chat.contactPhone,
      contactEmail: chat.contactEmail,
      providerId: chat.providerId,
      channel: $("chat-channel").value.trim() || chat.channel,
      title: $("chat-title").value.trim(),
      userEmail: $("chat-user-email").value.trim(),
    };
    for (const [key, value] of Object.entries(optional)) if (value) payload[key] = value;
    if ($("chat-echo").checked) payload.isEcho = "1";
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await api("POST", "/api/v1/chat/messages", payload);
      const line = $("chat-last");
      if (answer.error || answer.status !== 200) {
        line.textContent = `Planfix answered ${answer.status || ""} ${answer.body || answer.error}`;
        line.dataset.kind = "error";
      } else {
        line.textContent = `Planfix answered ${answer.status} in ${Math.round(answer.duration_ms)} ms`;
        line.dataset.kind = "ok";
        $("chat-text").value = "";
        $("chat-title").value = "";
      }
      await loadChatThread();
    } catch (error) {
      // Beside the button as well: the toast fades, the reason why nothing was sent stays.
      const line = $("chat-last");
      line.textContent = error && error.message ? error.message : String(error);
      line.dataset.kind = "error";
      report(error);
    } finally {
      button.disabled = false;
      $("chat-text").focus();
    }
  });

  /** Say so in the customer pane when the integration's replies do not come to the fake chat. */
  function showWhereRepliesGo(current) {
    const notice = clear($("chat-elsewhere"));
    const url = Sim.replyUrl(current);
    notice.hidden = Sim.isFakeChat(url);
    if (notice.hidden) return;
    notice.append(
      "Replies now go to ",
      el("code", {}, Sim.maskText(url, [current.token, current.planfix_token])),
      ": the fake chat will not receive them, so they will not show here. ",
      el("a", { href: "/settings" }, "Settings"),
      " sets the URL back to ",
      el("code", {}, "{base_url}/fake-chat/webhook"),
      ".",
    );
  }

  Sim.onIntegrations(showWhereRepliesGo);

  // -- live --------------------------------------------------------------------------------------

  const refreshOperator = Sim.debounce(() => {
    Promise.all([loadTasks(), loadTask()]).catch(report);
  }, 80);
  const refreshCustomer = Sim.debounce(() => loadChatThread().catch(report), 80);
  const refreshChats = Sim.debounce(() => loadChats().then(loadChatThread).catch(report), 80);

  Sim.live.on((kind, data) => {
    if (kind === "open") {
      refreshOperator();
      refreshCustomer();
      return;
    }
    if (kind === "reset" || kind.startsWith("integration")) {
      if (kind === "reset") state.task = null;
      // A changed URL changes where replies go: the how-to line and the customer's notice.
      Sim.refreshIntegrations().catch(report);
      refreshOperator();
      refreshChats();
      return;
    }
    if (kind === "employee.changed") {
      loadEmployees().catch(report);
      return;
    }
    if (kind.startsWith("message") || kind.startsWith("task") || kind.startsWith("contact") || kind === "delivery") {
      refreshOperator();
    }
    if (kind === "inbox" || kind === "journal" || kind === "delivery") {
      if (kind === "inbox" && data && data.data && data.data.chatId && !state.chats.some((c) => c.chatId === data.data.chatId)) {
        refreshChats();
      } else refreshCustomer();
    }
  });

  Sim.onIntegration(() => {
    state.task = null;
    state.chat = null;
    Promise.all([loadTasks(), loadTask(), loadChats().then(loadChatThread)]).catch(report);
  });

  Sim.enterSends($("reply-text"));
  Sim.enterSends($("first-text"));
  Sim.enterSends($("chat-text"));

  document.addEventListener("DOMContentLoaded", () => {
    Promise.all([loadEmployees(), loadTasks(), loadTask(), loadChats().then(loadChatThread)]).catch(report);
  });
})();
