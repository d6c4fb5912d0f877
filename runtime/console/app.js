// Octopus Event Fabric web console: plain JavaScript, no build step, no downloads.
// The token stays in sessionStorage (gone when the tab closes). Event streams are read
// with fetch() so the Authorization header can be sent (EventSource cannot send headers).
"use strict";

const TOKEN_KEY = "octopus.token";
const MAX_ROWS = 500;
const $ = (id) => document.getElementById(id);

const state = { token: sessionStorage.getItem(TOKEN_KEY), stream: null, namespace: null };

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? `${body.error.code}: ${body.error.message}` : response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function listItems(element, items, render, onClick) {
  element.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    element.append(li);
    return;
  }
  for (const item of items) {
    const li = document.createElement("li");
    li.textContent = render(item);
    if (onClick) {
      li.classList.add("clickable");
      li.addEventListener("click", () => onClick(item, li));
    }
    element.append(li);
  }
}

// ---------------------------------------------------------------- session

async function signIn(token) {
  state.token = token;
  const me = await api("/v1/me");
  sessionStorage.setItem(TOKEN_KEY, token);
  $("whoami").textContent = me.username || me.sub;
  $("sign-in-panel").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  listItems($("namespaces"), me.namespaces, (ns) => ns, (ns, li) => selectNamespace(ns, li));
  const first = me.namespaces.includes(me.default_namespace) ? me.default_namespace : me.namespaces[0];
  if (first) await selectNamespace(first, $("namespaces").children[me.namespaces.indexOf(first)]);
}

function signOut() {
  stopStream("signed out");
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in-panel").hidden = false;
  $("whoami").textContent = "";
}

async function selectNamespace(ns, li) {
  state.namespace = ns;
  for (const other of $("namespaces").children) other.classList.toggle("selected", other === li);
  $("topics-namespace").textContent = ns;
  $("stream-namespace").value = ns;
  const [topics, grants, triggers] = await Promise.allSettled([
    api(`/v1/namespaces/${encodeURIComponent(ns)}/topics?limit=500`),
    api(`/v1/namespaces/${encodeURIComponent(ns)}/grants`),
    api(`/v1/triggers?namespace=${encodeURIComponent(ns)}`),
  ]);
  listItems(
    $("topics"),
    topics.status === "fulfilled" ? topics.value.items : [],
    (t) => `${t.name} (${t.partitions}p)`,
    (t) => {
      $("stream-target").value = t.name;
      $("stream-channel").checked = false;
    },
  );
  listItems(
    $("grants"),
    grants.status === "fulfilled" ? grants.value.items : [],
    (g) => `${g.kind} ${g.target || "*"} → ${g.grantee.slice(0, 8)}… ${g.access}`,
  );
  listItems(
    $("triggers"),
    triggers.status === "fulfilled" ? triggers.value.items : [],
    (t) => `${t.name} on ${t.topic} (${t.kind}, ${t.state || (t.enabled ? "enabled" : "disabled")})`,
  );
}

// ---------------------------------------------------------------- SSE over fetch

// Parses a text/event-stream body; calls onEvent({event, data, id}) per event.
async function readEventStream(response, onEvent, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let event = { event: "message", data: [], id: null };
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).replace(/\r$/, "");
      buffered = buffered.slice(newline + 1);
      if (line === "") {
        if (event.data.length) onEvent({ event: event.event, data: event.data.join("\n"), id: event.id });
        event = { event: "message", data: [], id: null };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.event = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
      }
    }
  }
}

function streamUrl(form) {
  const ns = encodeURIComponent(form.namespace);
  const params = new URLSearchParams();
  let path;
  if (form.channel) {
    path = `/v1/namespaces/${ns}/events`;
    params.set("prefix", form.target);
  } else {
    path = `/v1/namespaces/${ns}/topics/${encodeURIComponent(form.target)}/events`;
  }
  if (form.from) params.set("from", form.from);
  if (form.filter) params.set("filter", form.filter);
  return `${path}?${params}`;
}

function preview(data) {
  const value = data.value_encoding === "json" ? JSON.stringify(data.value) : String(data.value ?? "");
  return value.length > 200 ? `${value.slice(0, 200)}…` : value;
}

function startStream(form) {
  stopStream();
  const controller = new AbortController();
  const stream = { controller, count: 0, times: [], lastId: null, pending: [], form };
  state.stream = stream;
  $("timeline").tBodies[0].replaceChildren();
  $("stream-count").textContent = "0";
  $("stream-stop").disabled = false;
  $("stream-message").textContent = "";
  connect(stream, 0);
  stream.rateTimer = setInterval(() => {
    const now = performance.now();
    stream.times = stream.times.filter((t) => now - t < 1000);
    $("stream-rate").textContent = String(stream.times.length);
  }, 250);
}

async function connect(stream, attempt) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
  if (stream.lastId) headers["Last-Event-ID"] = stream.lastId;
  $("stream-state").textContent = attempt ? "reconnecting" : "connecting";
  let ended = false;
  try {
    const response = await fetch(streamUrl(stream.form), { headers, signal: stream.controller.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      const reason = body && body.error ? body.error.message : response.statusText;
      finish(stream, `refused: ${reason}`);
      return;
    }
    $("stream-state").textContent = "live";
    await readEventStream(response, (event) => {
      if (event.id) stream.lastId = event.id;
      if (event.event === "record") {
        stream.pending.push(JSON.parse(event.data));
        stream.count += 1;
        stream.times.push(performance.now());
        scheduleRender(stream);
      } else if (event.event === "end") {
        const end = JSON.parse(event.data);
        ended = true;
        stream.lastId = end.resume_id;
        // A slow client or a server restart may resume; a revoked grant or expired token may not.
        if (["slow_consumer", "server_shutdown", "broker_error"].includes(end.reason)) {
          $("stream-message").textContent = `${end.reason}: resuming`;
          setTimeout(() => state.stream === stream && connect(stream, attempt + 1), 500);
        } else {
          finish(stream, `${end.reason}: ${end.message}`);
        }
      }
    }, stream.controller.signal);
    if (!ended && !stream.controller.signal.aborted) throw new Error("connection closed");
  } catch (error) {
    if (stream.controller.signal.aborted || state.stream !== stream) return;
    $("stream-message").textContent = `${error.message}; retrying`;
    setTimeout(() => state.stream === stream && connect(stream, attempt + 1), Math.min(2000 * (attempt + 1), 10000));
  }
}

function scheduleRender(stream) {
  if (stream.renderQueued) return;
  stream.renderQueued = true;
  requestAnimationFrame(() => {
    stream.renderQueued = false;
    const body = $("timeline").tBodies[0];
    const rows = stream.pending.splice(0).map((data) => {
      const row = document.createElement("tr");
      row.className = "record";
      for (const text of [
        data.timestamp || "",
        data.topic,
        `${data.partition}/${data.offset}`,
        data.key ?? "",
        preview(data),
      ]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        cell.title = text;
        row.append(cell);
      }
      return row;
    });
    body.prepend(...rows.reverse());
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    $("stream-count").textContent = String(stream.count);
  });
}

function finish(stream, message) {
  $("stream-state").textContent = "ended";
  $("stream-message").textContent = message;
  stopStream(null, stream);
}

function stopStream(message, only) {
  const stream = state.stream;
  if (!stream || (only && stream !== only)) return;
  stream.controller.abort();
  clearInterval(stream.rateTimer);
  state.stream = null;
  $("stream-stop").disabled = true;
  if (message !== null) $("stream-state").textContent = message || "stopped";
}

// ---------------------------------------------------------------- wiring

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    await signIn($("token").value.trim());
  } catch (error) {
    state.token = null;
    $("sign-in-error").textContent = error.status === 401 ? "This token is not valid." : error.message;
  }
});
$("sign-out").addEventListener("click", signOut);
$("stream-form").addEventListener("submit", (event) => {
  event.preventDefault();
  startStream({
    namespace: $("stream-namespace").value.trim(),
    target: $("stream-target").value.trim(),
    channel: $("stream-channel").checked,
    from: $("stream-from").value,
    filter: $("stream-filter").value.trim(),
  });
});
$("stream-stop").addEventListener("click", () => stopStream());

if (state.token) signIn(state.token).catch(() => signOut());
