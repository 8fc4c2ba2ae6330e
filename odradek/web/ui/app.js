/* The odradek web console: the broker's admin REST API (/api/v3) as pages a person reads.

   No framework and no build step: each page is a function that builds its elements with h() and
   fills them from the API. Text from the cluster (names, record keys, values and headers) enters
   the DOM only as text nodes and attribute values, never as markup. Long lists are paged, so at
   most PAGE_SIZE rows are in the DOM whatever the partition count. Polling (a group's lag) stops
   when the route changes; the throughput history is kept for the whole visit. API failures are
   shown in the error bar above the page, or beside the live figure they stop updating. */

const POLL_MS = 2000;
const HISTORY_SAMPLES = 150; // 5 minutes of 2-second samples for the sparklines
const PAGE_SIZE = 100;
const RECORDS_LIMIT = 50;
const MB = 1e6;
const SVG_NS = "http://www.w3.org/2000/svg";

let clusterId = null;

// -- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The JSON answer of one request; an ApiError carrying the API's {"error_code", "message"} otherwise. */
async function request(url, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, `no answer from the broker to ${method} ${url} (${err.message})`);
  }
  const text = response.status === 204 ? "" : await response.text();
  const value = text ? parseJson(text) : null;
  if (!response.ok) {
    const message = value && typeof value.message === "string" ? value.message : text.trim() || response.statusText;
    throw new ApiError(response.status, `${message} (HTTP ${response.status})`);
  }
  return value;
}

const api = (path, options) => request(`/api/v3/clusters/${encodeURIComponent(clusterId)}${path}`, options);
const seg = encodeURIComponent;
const topicHref = (name) => `#/topics/${seg(name)}`;
const groupHref = (id) => `#/groups/${seg(id)}`;

// -- the DOM ----------------------------------------------------------------------------------

/** An element with attributes (on* are listeners; value/checked/disabled are properties) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  let value;
  for (const [name, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), v);
    else if (name === "value") value = v;
    else if (name === "checked" || name === "disabled") element[name] = true;
    else element.setAttribute(name, v === true ? "" : String(v));
  }
  append(element, children);
  if (value !== undefined) element.value = String(value); // after the children: a select needs its options first
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

function checkbox(label, test, onchange) {
  const input = h("input", { type: "checkbox", "data-test": test, onchange });
  return { input, element: h("label", { class: "check" }, input, " ", label) };
}

function option(value, label) {
  return h("option", { value }, label);
}

function showError(err, doing) {
  const message = err instanceof Error ? err.message : String(err);
  const text = doing ? `${doing}: ${message}` : message;
  const box = document.getElementById("errors");
  for (const item of box.children) if (item.dataset.text === text) return; // the same failure again
  const item = h("div", { class: "error", "data-test": "error", "data-text": text },
    h("span", { "data-test": "error-message" }, text),
    h("button", { type: "button", class: "plain", title: "Dismiss", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"));
  box.append(item);
}

/** Runs `action` from a button (if any), disabling it meanwhile; a failure goes to the error bar. */
async function act(button, doing, action) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (err) {
    showError(err, doing);
  } finally {
    if (button) button.disabled = false;
  }
}

// -- formatting -------------------------------------------------------------------------------

const fmtInt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));

function fmtNumber(n, digits) {
  if (n === null || n === undefined) return "—";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function fmtTime(ms) {
  if (ms === null || ms === undefined || ms < 0) return "—";
  const d = new Date(ms);
  const p = (n, width = 2) => String(n).padStart(width, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function problem(count) {
  return count ? h("span", { class: "bad" }, fmtInt(count)) : "0";
}

function stateBadge(state, test) {
  const tone = { STABLE: "good", EMPTY: "quiet", DEAD: "bad", UNKNOWN: "bad" }[state] || "warn";
  return h("span", { class: `badge ${tone}`, "data-test": test }, state || "UNKNOWN");
}

/** A key, value or header as the API showed it ({"type", "data"} or null); click to unfold long ones. */
function shownData(shown) {
  if (shown === null || shown === undefined) return h("span", { class: "null" }, "null");
  const text = shown.type === "JSON" ? JSON.stringify(shown.data) : String(shown.data);
  return h("span", { class: "data", "data-type": shown.type, title: `${shown.type}, click to unfold`,
                     onclick: (event) => event.currentTarget.classList.toggle("open") }, text);
}

/** An inline SVG line of `values` (one sample every POLL_MS, oldest first) across the whole width. */
function sparkline(values, test, { width = 240, height = 40 } = {}) {
  const svg = document.createElementNS(SVG_NS, "svg");
  for (const [name, v] of Object.entries({ viewBox: `0 0 ${width} ${height}`, width, height, class: "spark",
                                           "data-test": test, "data-samples": values.length,
                                           preserveAspectRatio: "none" })) {
    svg.setAttribute(name, String(v));
  }
  const max = Math.max(0, ...values);
  const title = document.createElementNS(SVG_NS, "title");
  title.textContent = values.length ? `${spanOf(values)}, highest ${fmtNumber(max, max < 10 ? 3 : 0)}` : "no samples yet";
  svg.append(title);
  if (values.length < 2) return svg;
  const step = width / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (max ? v / max : 0) * (height - 6)).toFixed(1)}`);
  const area = document.createElementNS(SVG_NS, "polygon");
  area.setAttribute("points", `0,${height} ${points.join(" ")} ${width},${height}`);
  area.setAttribute("class", "spark-area");
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", "spark-line");
  svg.append(area, line);
  return svg;
}

/** How long `samples` (one every POLL_MS) cover, for the caption of a sparkline. */
function spanOf(samples) {
  const seconds = Math.max(0, samples.length - 1) * POLL_MS / 1000;
  return seconds < 90 ? `last ${seconds} s` : `last ${Math.round(seconds / 60)} min`;
}

function fmtBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${fmtNumber(value, unit ? 1 : 0)} ${units[unit]}`;
}

/** A table showing one page of `rows` at a time; set(rows) replaces them, keeping the page if it still exists. */
function pagedTable({ columns, test, rowTest, rowAttrs, empty = "Nothing to show.", pageSize = PAGE_SIZE }) {
  let rows = null; // not loaded yet
  let page = 0;
  const tbody = h("tbody");
  const info = h("span", { class: "muted", "data-test": `${test}-pager-info` });
  const prev = h("button", { type: "button", "data-test": `${test}-prev`, onclick: () => { page -= 1; render(); } }, "‹ Previous");
  const next = h("button", { type: "button", "data-test": `${test}-next`, onclick: () => { page += 1; render(); } }, "Next ›");
  const pager = h("div", { class: "pager" }, prev, info, next);
  const element = h("div", { class: "table-box" },
    h("table", { "data-test": test },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class }, c.title)))), tbody),
    pager);

  function render() {
    if (rows === null) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: columns.length, class: "muted empty" }, "Loading…")));
      pager.hidden = true;
      return;
    }
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const start = page * pageSize;
    const shown = rows.slice(start, start + pageSize);
    tbody.replaceChildren(...shown.map((row) => h("tr", { "data-test": rowTest, ...(rowAttrs ? rowAttrs(row) : {}) },
      columns.map((c) => h("td", { class: c.class }, c.render(row))))));
    if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted empty" }, empty)));
    info.textContent = `${fmtInt(rows.length ? start + 1 : 0)}–${fmtInt(start + shown.length)} of ${fmtInt(rows.length)}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    pager.hidden = pages <= 1;
  }

  render();
  return {
    element,
    set(newRows, { firstPage = false } = {}) {
      rows = newRows;
      if (firstPage) page = 0;
      render();
    },
  };
}

// -- pages and routing ------------------------------------------------------------------------

/** The open page: polls stop and listeners go when the route changes. */
class View {
  constructor() {
    this.alive = true;
    this.cleanups = [];
  }

  poll(ms, tick) {
    let timer = null;
    const run = async () => {
      if (!this.alive) return;
      try {
        await tick();
      } catch (err) {
        showError(err);
      }
      if (this.alive) timer = setTimeout(run, ms);
    };
    this.cleanups.push(() => clearTimeout(timer));
    run();
  }

  onClose(cleanup) {
    this.cleanups.push(cleanup);
  }

  close() {
    this.alive = false;
    for (const cleanup of this.cleanups) cleanup();
  }
}

const ROUTES = [
  [/^\/$/, "overview", overviewPage],
  [/^\/topics$/, "topics", topicsPage],
  [/^\/topics\/([^/]+)(?:\/(partitions|records|configs))?$/, "topics", topicPage],
  [/^\/groups$/, "groups", groupsPage],
  [/^\/groups\/([^/]+)$/, "groups", groupPage],
];
let currentView = null;

function route() {
  if (currentView) currentView.close();
  const view = (currentView = new View());
  document.getElementById("errors").replaceChildren();
  const root = h("div", { class: "page" });
  document.getElementById("view").replaceChildren(root);
  const path = location.hash.replace(/^#/, "") || "/";
  for (const [pattern, section, page] of ROUTES) {
    const match = path.match(pattern);
    let params;
    try {
      params = match && match.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
    } catch (err) {
      showError(err, `Reading the address ${location.hash}`);
      break;
    }
    if (!params) continue;
    markNav(section);
    page(view, root, ...params).catch((err) => { if (view.alive) showError(err); });
    return;
  }
  markNav(null);
  document.title = "odradek";
  root.append(h("h1", {}, "No such page"), h("p", {}, "Nothing is at ", h("code", {}, location.hash), ". ",
    h("a", { href: "#/" }, "Back to the overview"), "."));
}

function markNav(section) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === section);
  }
}

function titleRow(title, test, ...actions) {
  return h("div", { class: "title-row" }, h("h1", { "data-test": test }, title), h("div", { class: "actions" }, actions));
}

// -- throughput (kept for the whole visit) ----------------------------------------------------

const throughput = { last: null, rates: [], error: null, listeners: new Set() };

/** Reads this broker's running totals every POLL_MS; a rate is the change between two reads. */
async function sampleThroughput() {
  try {
    const sample = await request("/api/odradek/throughput");
    const last = throughput.last;
    if (last && sample.time_ms > last.time_ms) {
      const seconds = (sample.time_ms - last.time_ms) / 1000;
      // a broker restarted between reads counts from zero again: no negative rates
      const rate = (name) => (name in sample && name in last ? Math.max(0, sample[name] - last[name]) / seconds : null);
      throughput.rates.push({ time_ms: sample.time_ms, records_in: rate("messages_in"), records_out: rate("messages_out"),
                              bytes_in: rate("bytes_in"), bytes_out: rate("bytes_out") });
      if (throughput.rates.length > HISTORY_SAMPLES) throughput.rates.shift();
    }
    throughput.last = sample;
    throughput.error = null;
  } catch (err) {
    throughput.error = err;
  }
  const now = throughput.rates.at(-1);
  document.getElementById("sidebar-rate").textContent = throughput.error ? "throughput unavailable"
    : now ? `in ${fmtNumber(now.records_in, 1)} rec/s · ${fmtNumber(now.bytes_in / MB, 2)} MB/s` : "";
  for (const listener of throughput.listeners) listener();
  setTimeout(sampleThroughput, POLL_MS);
}

const RATES = [
  ["records_in", "Records in", "rec/s", (v) => fmtNumber(v, 1)],
  ["records_out", "Records out", "rec/s", (v) => fmtNumber(v, 1)],
  ["bytes_in", "Bytes in", "MB/s", (v) => fmtNumber(v / MB, 3)],
  ["bytes_out", "Bytes out", "MB/s", (v) => fmtNumber(v / MB, 3)],
];

function throughputPanel(view) {
  const cards = h("div", { class: "cards rates" });
  const totals = h("div", { class: "muted small", "data-test": "throughput-totals" });
  const status = h("div", { class: "small", "data-test": "throughput-status" });
  const render = () => {
    const now = throughput.rates.at(-1);
    // records out only when the API reports them (messages_out)
    const shown = RATES.filter(([key]) => key !== "records_out" || (now && now.records_out !== null));
    cards.replaceChildren(...shown.map(([key, label, unit, format]) => {
      const values = throughput.rates.map((r) => r[key] ?? 0);
      return h("div", { class: "card" }, h("div", { class: "stat-label" }, `${label}`),
        h("div", { class: "stat-value mono" }, h("span", { "data-test": `rate-${key}` }, now ? format(now[key]) : "…"),
          h("span", { class: "unit" }, ` ${unit}`)),
        sparkline(key.startsWith("bytes") ? values.map((v) => v / MB) : values, `spark-${key}`),
        h("div", { class: "muted small" }, values.length ? `${spanOf(values)}, peak ${format(Math.max(...values))}` : "\u00a0"));
    }));
    const last = throughput.last;
    totals.replaceChildren();
    if (last) {
      append(totals, [`Since broker ${last.node_id} started: `, h("span", { "data-test": "total-records-in" }, fmtInt(last.messages_in)),
        ` records in, ${fmtBytes(last.bytes_in)} in, ${fmtBytes(last.bytes_out)} out.`]);
    }
    status.className = throughput.error ? "small bad" : "small muted";
    status.textContent = throughput.error ? `Throughput is not updating: ${throughput.error.message}`
      : `Live: read every ${POLL_MS / 1000} s, kept for ${HISTORY_SAMPLES * POLL_MS / 60000} minutes while the console is open.`;
  };
  throughput.listeners.add(render);
  view.onClose(() => throughput.listeners.delete(render));
  render();
  return h("section", { class: "panel" }, h("h2", {}, "Throughput of this broker"), cards, totals, status);
}

// -- overview ---------------------------------------------------------------------------------

async function overviewPage(view, root) {
  document.title = "Overview · odradek";
  const stats = h("div", { class: "cards" });
  let controllerId = null;
  const brokers = pagedTable({
    test: "brokers", rowTest: "broker-row", rowAttrs: (b) => ({ "data-broker": b.broker_id }), columns: [
      { title: "Broker", class: "mono", render: (b) => String(b.broker_id) },
      { title: "Host:port", class: "mono", render: (b) => `${b.host}:${b.port}` },
      { title: "Rack", render: (b) => b.rack ?? h("span", { class: "muted" }, "none") },
      { title: "Role", render: (b) => (b.broker_id === controllerId ? h("span", { class: "badge good" }, "controller") : "") },
    ],
  });
  const troubled = h("div");
  const subtitle = h("p", { class: "summary muted" }, "Cluster ", h("span", { class: "mono", "data-test": "cluster-id" }, "…"));
  root.append(h("h1", {}, "Cluster overview"), subtitle, stats, throughputPanel(view),
    h("section", { class: "panel" }, h("h2", {}, "Brokers"), brokers.element), troubled);

  const [cluster, brokerList, topics] = await Promise.all([api(""), api("/brokers"), api("/topics")]);
  if (!view.alive) return;
  const match = /\/brokers\/(\d+)$/.exec(cluster.controller?.related ?? "");
  controllerId = match ? Number(match[1]) : null;
  const sum = (name) => topics.data.reduce((total, t) => total + (t[name] || 0), 0);
  const internal = topics.data.filter((t) => t.is_internal).length;
  const stat = (label, value, test, tone) => h("div", { class: "card" }, h("div", { class: "stat-label" }, label),
    h("div", { class: `stat-value mono ${tone || ""}`, "data-test": test }, value));
  const underReplicated = sum("under_replicated_partitions");
  const offline = sum("offline_partitions");
  subtitle.lastChild.textContent = cluster.cluster_id;
  stats.replaceChildren(
    stat("Controller", controllerId === null ? "none" : `broker ${controllerId}`, "controller", controllerId === null ? "bad" : ""),
    stat("Brokers", fmtInt(brokerList.data.length), "broker-count"),
    stat(internal ? `Topics (${internal} internal)` : "Topics", fmtInt(topics.data.length), "topic-count"),
    stat("Partitions", fmtInt(sum("partitions_count")), "partition-count"),
    stat("Under-replicated", fmtInt(underReplicated), "under-replicated", underReplicated ? "bad" : ""),
    stat("Offline", fmtInt(offline), "offline", offline ? "bad" : ""),
  );
  brokers.set(brokerList.data);
  const unhealthy = topics.data.filter((t) => t.under_replicated_partitions || t.offline_partitions);
  if (unhealthy.length) {
    const list = pagedTable({ test: "unhealthy-topics", rowTest: "unhealthy-topic-row", pageSize: 20, columns: [
      { title: "Topic", render: (t) => h("a", { href: topicHref(t.topic_name) }, t.topic_name) },
      { title: "Under-replicated", class: "num", render: (t) => problem(t.under_replicated_partitions) },
      { title: "Offline", class: "num", render: (t) => problem(t.offline_partitions) },
    ] });
    list.set(unhealthy);
    troubled.replaceChildren(h("section", { class: "panel" }, h("h2", { class: "bad" }, "Topics needing attention"), list.element));
  }
}

// -- topics -----------------------------------------------------------------------------------

async function deleteTopic(name) {
  if (!confirm(`Delete topic "${name}" and all its records? This cannot be undone.`)) return false;
  await api(`/topics/${seg(name)}`, { method: "DELETE" });
  return true;
}

/** Lines of name=value into the API's [{"name", "value"}]; Error naming the line otherwise. */
function parseConfigs(text) {
  const configs = [];
  text.split("\n").forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) return;
    const at = trimmed.indexOf("=");
    if (at <= 0) throw new Error(`configs, line ${index + 1}: expected name=value, found "${trimmed}"`);
    configs.push({ name: trimmed.slice(0, at).trim(), value: trimmed.slice(at + 1).trim() });
  });
  return configs;
}

function createTopicForm() {
  const name = h("input", { required: true, maxlength: 249, pattern: "[a-zA-Z0-9._\\-]+", placeholder: "orders",
                            autocomplete: "off", "data-test": "create-topic-name" });
  const partitions = h("input", { type: "number", min: 1, placeholder: "broker default", "data-test": "create-topic-partitions" });
  const replication = h("input", { type: "number", min: 1, placeholder: "broker default", "data-test": "create-topic-replication" });
  const configs = h("textarea", { rows: 3, placeholder: "retention.ms=86400000\ncleanup.policy=compact", class: "mono",
                                  "data-test": "create-topic-configs" });
  const submit = h("button", { type: "submit", class: "primary", "data-test": "create-topic-submit" }, "Create topic");
  const form = h("form", { class: "form-grid" },
    field("Name", name, "letters, digits, . _ -"), field("Partitions", partitions), field("Replication factor", replication),
    field("Configs (optional)", configs, "one name=value a line"), h("div", { class: "form-actions" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, `Creating topic ${name.value}`, async () => {
      const body = { topic_name: name.value.trim(), configs: parseConfigs(configs.value) };
      if (partitions.value) body.partitions_count = Number(partitions.value);
      if (replication.value) body.replication_factor = Number(replication.value);
      await api("/topics", { method: "POST", body });
      location.hash = topicHref(body.topic_name);
    });
  });
  return h("details", { class: "panel", "data-test": "create-topic" },
    h("summary", { "data-test": "create-topic-open" }, "Create a topic"), form);
}

async function topicsPage(view, root) {
  document.title = "Topics · odradek";
  let topics = [];
  const filter = h("input", { type: "search", placeholder: "Filter by name", autocomplete: "off", "data-test": "topic-filter",
                              oninput: () => apply(true) });
  const internal = checkbox("show internal topics", "show-internal", () => apply(true));
  const count = h("span", { class: "muted", "data-test": "topic-count" });
  const table = pagedTable({
    test: "topics", rowTest: "topic-row", rowAttrs: (t) => ({ "data-topic": t.topic_name }), empty: "No topics.",
    columns: [
      { title: "Topic", class: "mono", render: (t) => [h("a", { href: topicHref(t.topic_name), "data-test": "topic-link" }, t.topic_name),
        t.is_internal ? h("span", { class: "badge quiet" }, "internal") : null] },
      { title: "Partitions", class: "num", render: (t) => fmtInt(t.partitions_count) },
      { title: "Replication", class: "num", render: (t) => fmtInt(t.replication_factor) },
      { title: "Under-replicated", class: "num", render: (t) => problem(t.under_replicated_partitions) },
      { title: "Offline", class: "num", render: (t) => problem(t.offline_partitions) },
      { title: "", class: "row-actions", render: (t) => (t.is_internal ? null : h("button", {
        type: "button", class: "danger small", "data-test": "topic-delete",
        onclick: (event) => act(event.currentTarget, `Deleting topic ${t.topic_name}`, async () => {
          if (!(await deleteTopic(t.topic_name))) return;
          topics = topics.filter((other) => other.topic_name !== t.topic_name);
          apply(false);
        }) }, "Delete")) },
    ],
  });

  function apply(firstPage) {
    const needle = filter.value.trim().toLowerCase();
    const shown = topics.filter((t) => (internal.input.checked || !t.is_internal)
                                       && (!needle || t.topic_name.toLowerCase().includes(needle)));
    count.textContent = shown.length === topics.length ? `${fmtInt(topics.length)} topics` : `${fmtInt(shown.length)} of ${fmtInt(topics.length)} topics`;
    table.set(shown, { firstPage });
  }

  async function load() {
    const list = await api("/topics");
    if (!view.alive) return;
    topics = list.data;
    apply(false);
  }

  const refresh = h("button", { type: "button", "data-test": "topics-refresh",
                                onclick: (event) => act(event.currentTarget, "Reading the topics", load) }, "Refresh");
  root.append(titleRow("Topics", "page-title", refresh), createTopicForm(),
    h("div", { class: "toolbar" }, filter, internal.element, count), table.element);
  filter.focus();
  await load();
}

async function topicPage(view, root, name, tab = "partitions") {
  document.title = `${name} · odradek`;
  const summary = h("p", { class: "muted", "data-test": "topic-summary" }, "Loading…");
  const tabs = h("nav", { class: "tabs" }, [["partitions", "Partitions"], ["records", "Records"], ["configs", "Configs"]].map(
    ([id, label]) => h("a", { href: `${topicHref(name)}/${id}`, class: id === tab ? "active" : null, "data-test": `tab-${id}` }, label)));
  const remove = h("button", { type: "button", class: "danger", "data-test": "topic-delete-page",
    onclick: (event) => act(event.currentTarget, `Deleting topic ${name}`, async () => {
      if (await deleteTopic(name)) location.hash = "#/topics";
    }) }, "Delete topic");
  const body = h("div");
  root.append(h("div", { class: "crumbs" }, h("a", { href: "#/topics" }, "Topics"), " /"),
    titleRow(name, "topic-title", remove), summary, tabs, body);

  const topic = await api(`/topics/${seg(name)}`).catch((err) => { summary.textContent = ""; throw err; });
  if (!view.alive) return;
  summary.textContent = `${fmtInt(topic.partitions_count)} partitions · replication factor ${topic.replication_factor}`
    + ` · ${fmtInt(topic.under_replicated_partitions)} under-replicated · ${fmtInt(topic.offline_partitions)} offline`
    + (topic.is_internal ? " · internal topic" : "");
  const renderTab = { partitions: partitionsTab, records: recordsTab, configs: configsTab }[tab];
  await renderTab(view, body, name, topic);
}

function replicaList(p) {
  return p.replica_ids.map((id) => {
    const inSync = p.isr_ids.includes(id);
    const role = id === p.leader_id ? "leader" : inSync ? "in sync" : "out of sync: not in the ISR";
    return h("span", { class: `replica${inSync ? "" : " out-of-sync"}${id === p.leader_id ? " leader" : ""}`,
                       title: `broker ${id}, ${role}`, "data-test": inSync ? "replica" : "replica-out-of-sync" }, String(id));
  });
}

async function partitionsTab(view, body, name, topic) {
  let partitions = null; // until they are read
  const troubled = checkbox("only under-replicated or offline", "partitions-troubled", () => apply());
  const table = pagedTable({
    test: "partitions", rowTest: "partition-row", rowAttrs: (p) => ({ "data-partition": p.partition_id }),
    columns: [
      { title: "Partition", class: "num", render: (p) => String(p.partition_id) },
      { title: "Leader", class: "num", render: (p) => (p.leader_id === null ? h("span", { class: "bad" }, "none") : String(p.leader_id)) },
      { title: "Replicas", class: "mono", render: replicaList },
      { title: "ISR", class: "mono", render: (p) => p.isr_ids.join(", ") },
      { title: "Earliest offset", class: "num", render: (p) => fmtInt(p.earliest_offset) },
      { title: "Latest offset", class: "num", render: (p) => fmtInt(p.latest_offset) },
      { title: "Records", class: "num", render: (p) => (p.earliest_offset === null || p.latest_offset === null ? "—"
        : fmtInt(p.latest_offset - p.earliest_offset)) },
    ],
  });
  const unhealthy = (p) => p.leader_id === null || p.isr_ids.length < p.replica_ids.length;
  const apply = (firstPage = true) => partitions !== null
    && table.set(troubled.input.checked ? partitions.filter(unhealthy) : partitions, { firstPage });

  const count = h("input", { type: "number", min: topic.partitions_count + 1, value: topic.partitions_count + 1,
                             required: true, "data-test": "add-partitions-count" });
  const submit = h("button", { type: "submit", "data-test": "add-partitions-submit" }, "Add partitions");
  const grow = h("form", { class: "inline" }, h("span", {}, "Partitions in all:"), count, submit);
  grow.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, `Adding partitions to ${name}`, async () => {
      await api(`/topics/${seg(name)}`, { method: "PATCH", body: { partitions_count: Number(count.value) } });
      route(); // the summary and the table, again
    });
  });
  const refresh = h("button", { type: "button", "data-test": "partitions-refresh",
                                onclick: (event) => act(event.currentTarget, "Reading the partitions", load) }, "Refresh");
  body.append(h("div", { class: "toolbar" }, troubled.element, refresh, h("span", { class: "spacer" }), grow), table.element,
    h("p", { class: "muted small" }, "A replica ", h("span", { class: "replica out-of-sync" }, "struck through"),
      " is out of sync (not in the ISR); the leader is in bold."));

  async function load() {
    const list = await api(`/topics/${seg(name)}/partitions`);
    if (!view.alive) return;
    partitions = list.data;
    apply(false);
  }
  await load();
}

// -- records ----------------------------------------------------------------------------------

function base64Utf8(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** "YYYY-MM-DDTHH:MM:SS" in local time, as a datetime-local input holds it. */
function localInputTime(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function recordRow(record) {
  return h("tr", { "data-test": "record-row", "data-offset": record.offset },
    h("td", { class: "num", "data-test": "record-offset" }, String(record.offset)),
    h("td", { class: "mono nowrap", "data-test": "record-timestamp", title: record.timestamp || "" }, fmtTime(record.timestamp_ms)),
    h("td", { class: "mono", "data-test": "record-key" }, shownData(record.key)),
    h("td", { class: "mono wide", "data-test": "record-value" }, shownData(record.value)),
    h("td", { class: "mono", "data-test": "record-headers" },
      record.headers.map((header) => h("div", { class: "header" }, h("span", { class: "header-name" }, `${header.name}:`), " ",
        shownData(header.value)))));
}

function recordsTab(view, body, name, topic) {
  const last = Math.max(0, topic.partitions_count - 1);
  const partition = h("input", { type: "number", min: 0, max: last, value: 0, required: true, "data-test": "records-partition" });
  const offset = h("input", { type: "number", min: 0, placeholder: "offset", "data-test": "records-offset" });
  const time = h("input", { type: "datetime-local", step: 1, "data-test": "records-time" });
  const seek = h("select", { "data-test": "records-seek", onchange: () => showSeek() },
    option("latest", "the latest records"), option("earliest", "the earliest"), option("offset", "an offset"), option("time", "a time"));
  const limit = h("input", { type: "number", min: 1, max: 1000, value: RECORDS_LIMIT, required: true, "data-test": "records-limit" });
  const format = h("select", { "data-test": "records-format" },
    ["auto", "text", "json", "hex", "base64"].map((f) => option(f, f)));
  const show = h("button", { type: "submit", class: "primary", "data-test": "records-load" }, "Show");
  const older = h("button", { type: "button", disabled: true, "data-test": "records-older" }, "‹ Older");
  const newer = h("button", { type: "button", disabled: true, "data-test": "records-newer" }, "Newer ›");
  const info = h("span", { class: "muted", "data-test": "records-info" });
  const tbody = h("tbody", {}, h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, "Loading…")));
  let shown = null; // the page on screen and how it was asked for

  function showSeek() {
    offset.hidden = seek.value !== "offset";
    time.hidden = seek.value !== "time";
    if (seek.value === "time" && !time.value) time.value = localInputTime(Date.now() - 3600_000);
  }

  async function read(ask, position) {
    const params = new URLSearchParams({ limit: String(ask.limit), format: ask.format });
    for (const [key, value] of Object.entries(position)) params.set(key, String(value));
    const page = await api(`/topics/${seg(name)}/partitions/${ask.partition}/records?${params}`);
    if (!view.alive) return;
    const start = page.data.length ? page.data[0].offset : page.next_offset;
    shown = { ask, page, start };
    tbody.replaceChildren(...page.data.map(recordRow));
    if (!page.data.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, "No records here.")));
    const span = page.data.length ? `offsets ${fmtInt(start)}–${fmtInt(page.data.at(-1).offset)}` : `no records`;
    const held = page.latest_offset > page.earliest_offset
      ? `the partition holds offsets ${fmtInt(page.earliest_offset)} to ${fmtInt(page.latest_offset - 1)}` : "the partition is empty";
    info.textContent = `Partition ${ask.partition}: ${span}; ${held}.`;
  }

  function turn(doing, position) {
    older.disabled = newer.disabled = true;
    act(null, doing, () => read(shown.ask, position(shown))).finally(pager);
  }

  function pager() {
    older.disabled = !shown || shown.start <= shown.page.earliest_offset;
    newer.disabled = !shown || shown.page.next_offset >= shown.page.latest_offset;
  }

  function ask() {
    const p = Number(partition.value);
    if (!Number.isInteger(p) || p < 0 || p > last) throw new Error(`the partition must be a number from 0 to ${last}`);
    return { partition: p, limit: Number(limit.value) || RECORDS_LIMIT, format: format.value };
  }

  function position() {
    if (seek.value === "earliest") return { offset: 0 };
    if (seek.value === "offset") {
      if (offset.value === "") throw new Error("enter the offset to read from");
      return { offset: Number(offset.value) };
    }
    if (seek.value === "time") {
      const at = new Date(time.value).getTime();
      if (Number.isNaN(at)) throw new Error("choose the time to read from");
      return { timestamp: at };
    }
    return {};
  }

  const form = h("form", { class: "toolbar" },
    field("Partition", partition), field("From", h("span", { class: "inline" }, seek, offset, time)),
    field("Limit", limit), field("Format", format), show);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(show, "Reading records", () => read(ask(), position())).finally(pager);
  });
  older.addEventListener("click", () => turn("Reading older records",
    (now) => ({ offset: Math.max(now.page.earliest_offset, now.start - now.ask.limit) })));
  newer.addEventListener("click", () => turn("Reading newer records", (now) => ({ offset: now.page.next_offset })));

  body.append(
    h("section", { class: "panel" }, h("h2", {}, "Records"), form,
      h("div", { class: "pager left" }, older, newer, info),
      h("div", { class: "table-box" }, h("table", { class: "records", "data-test": "records" },
        h("thead", {}, h("tr", {}, ["Offset", "Timestamp", "Key", "Value", "Headers"].map((t) => h("th", {}, t)))), tbody))),
    produceForm(name, last, (result) => {
      partition.value = result.partition_id;
      seek.value = "latest";
      showSeek();
      return read(ask(), {}).finally(pager);
    }));
  showSeek();
  return read(ask(), {}).finally(pager);
}

function produceForm(name, lastPartition, produced) {
  const partition = h("input", { type: "number", min: 0, max: lastPartition, placeholder: "any", "data-test": "produce-partition" });
  const key = h("input", { placeholder: "none", autocomplete: "off", class: "mono", "data-test": "produce-key" });
  const valueType = h("select", { "data-test": "produce-value-type" },
    option("STRING", "text"), option("JSON", "JSON"), option("NULL", "null (a tombstone)"));
  const value = h("textarea", { rows: 3, class: "mono", "data-test": "produce-value" });
  const headers = h("textarea", { rows: 2, class: "mono", placeholder: "name: value", "data-test": "produce-headers" });
  const submit = h("button", { type: "submit", class: "primary", "data-test": "produce-submit" }, "Produce");
  const result = h("span", { class: "muted", "data-test": "produce-result", "aria-live": "polite" });

  function record() {
    const body = {};
    if (partition.value !== "") body.partition_id = Number(partition.value);
    if (key.value !== "") body.key = { type: "STRING", data: key.value };
    if (valueType.value === "JSON") {
      const data = parseJson(value.value);
      if (data === undefined) throw new Error("the value is not valid JSON (choose text to send it as it is)");
      body.value = { type: "JSON", data };
    } else if (valueType.value === "STRING") {
      body.value = { type: "STRING", data: value.value };
    }
    body.headers = headers.value.split("\n").filter((line) => line.trim()).map((line, index) => {
      const at = line.indexOf(":");
      if (at <= 0) throw new Error(`headers, line ${index + 1}: expected name: value, found "${line.trim()}"`);
      return { name: line.slice(0, at).trim(), value: base64Utf8(line.slice(at + 1).trim()) };
    });
    return body;
  }

  const form = h("form", { class: "form-grid" },
    field("Partition", partition, "empty: the key decides"), field("Key", key, "text; empty: no key"),
    field("Value", h("span", { class: "stack" }, valueType, value)), field("Headers", headers, "one name: value a line"),
    h("div", { class: "form-actions" }, submit, result));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    result.textContent = "";
    act(submit, `Producing to ${name}`, async () => {
      const answer = await api(`/topics/${seg(name)}/records`, { method: "POST", body: record() });
      result.textContent = `Produced to partition ${answer.partition_id} at offset ${answer.offset}.`;
      await produced(answer);
    });
  });
  return h("section", { class: "panel" }, h("h2", {}, "Produce a record"), form);
}

// -- topic configs ----------------------------------------------------------------------------

async function configsTab(view, body, name) {
  let configs = [];
  let editing = null;
  const filter = h("input", { type: "search", placeholder: "Filter configs", autocomplete: "off", "data-test": "config-filter",
                              oninput: () => render() });
  const changed = checkbox("only those set on this topic", "config-changed", () => render());
  const tbody = h("tbody");
  const path = (config) => `/topics/${seg(name)}/configs/${seg(config.name)}`;

  function row(config) {
    const overridden = config.source === "DYNAMIC_TOPIC_CONFIG";
    const cells = [h("td", { class: "mono" }, config.name)];
    if (editing === config.name) {
      const input = h("input", { class: "mono", value: config.value ?? "", "data-test": "config-value-input" });
      const save = h("button", { type: "submit", class: "primary small", "data-test": "config-save" }, "Save");
      const form = h("form", { class: "inline" }, input, save,
        h("button", { type: "button", class: "small", "data-test": "config-cancel", onclick: () => { editing = null; render(); } }, "Cancel"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        act(save, `Setting ${config.name} of ${name}`, async () => {
          await api(path(config), { method: "PUT", body: { value: input.value } });
          editing = null;
          await load();
        });
      });
      queueMicrotask(() => input.focus());
      cells.push(h("td", {}, form));
    } else {
      cells.push(h("td", { class: "mono", "data-test": "config-value" },
        config.is_sensitive ? h("span", { class: "muted" }, "(hidden)") : config.value ?? h("span", { class: "null" }, "null")));
    }
    cells.push(h("td", { class: overridden ? "" : "muted", "data-test": "config-source" }, config.source));
    cells.push(h("td", { class: "row-actions" },
      config.is_read_only || editing === config.name ? null : h("button", { type: "button", class: "small", "data-test": "config-edit",
        onclick: () => { editing = config.name; render(); } }, "Edit"),
      overridden && editing !== config.name ? h("button", { type: "button", class: "small", "data-test": "config-reset",
        title: "Remove this topic's value: the broker's default applies again",
        onclick: (event) => act(event.currentTarget, `Resetting ${config.name} of ${name}`, async () => {
          await api(path(config), { method: "DELETE" });
          await load();
        }) }, "Reset") : null));
    return h("tr", { "data-test": "config-row", "data-config": config.name, class: overridden ? "overridden" : null }, cells);
  }

  function render() {
    const needle = filter.value.trim().toLowerCase();
    const shown = configs.filter((c) => (!needle || c.name.includes(needle)) && (!changed.input.checked || c.source === "DYNAMIC_TOPIC_CONFIG"));
    tbody.replaceChildren(...shown.map(row));
    if (!shown.length) tbody.append(h("tr", {}, h("td", { colspan: 4, class: "muted empty" }, "No configs to show.")));
  }

  async function load() {
    const list = await api(`/topics/${seg(name)}/configs`);
    if (!view.alive) return;
    configs = list.data;
    render();
  }

  body.append(h("div", { class: "toolbar" }, filter, changed.element),
    h("div", { class: "table-box" }, h("table", { "data-test": "configs" },
      h("thead", {}, h("tr", {}, ["Name", "Value", "Source", ""].map((t) => h("th", {}, t)))), tbody)),
    h("p", { class: "muted small" }, "Highlighted rows are set on this topic; Reset removes the topic's value."));
  await load();
}

// -- consumer groups --------------------------------------------------------------------------

const lagHistory = new Map(); // group id -> total lag samples, for as long as the console is open

async function groupsPage(view, root) {
  document.title = "Consumer groups · odradek";
  let groups = [];
  const filter = h("input", { type: "search", placeholder: "Filter by group id", autocomplete: "off", "data-test": "group-filter",
                              oninput: () => apply(true) });
  const count = h("span", { class: "muted", "data-test": "group-count" });
  const table = pagedTable({
    test: "groups", rowTest: "group-row", rowAttrs: (g) => ({ "data-group": g.consumer_group_id }), empty: "No consumer groups.",
    columns: [
      { title: "Group", class: "mono", render: (g) => h("a", { href: groupHref(g.consumer_group_id), "data-test": "group-link" }, g.consumer_group_id) },
      { title: "State", render: (g) => stateBadge(g.state, "group-row-state") },
      { title: "Type", render: (g) => g.type ?? h("span", { class: "muted" }, "—") },
    ],
  });
  function apply(firstPage) {
    const needle = filter.value.trim().toLowerCase();
    const shown = groups.filter((g) => !needle || g.consumer_group_id.toLowerCase().includes(needle));
    count.textContent = shown.length === groups.length ? `${fmtInt(groups.length)} groups` : `${fmtInt(shown.length)} of ${fmtInt(groups.length)} groups`;
    table.set(shown, { firstPage });
  }
  async function load() {
    const list = await api("/consumer-groups");
    if (!view.alive) return;
    groups = list.data.sort((a, b) => a.consumer_group_id.localeCompare(b.consumer_group_id));
    apply(false);
  }
  const refresh = h("button", { type: "button", "data-test": "groups-refresh",
                                onclick: (event) => act(event.currentTarget, "Reading the consumer groups", load) }, "Refresh");
  root.append(titleRow("Consumer groups", "page-title", refresh), h("div", { class: "toolbar" }, filter, count), table.element);
  await load();
}

function assignments(consumer) {
  const byTopic = new Map();
  for (const a of consumer.assignments) {
    if (!byTopic.has(a.topic_name)) byTopic.set(a.topic_name, []);
    byTopic.get(a.topic_name).push(a.partition_id);
  }
  return [...byTopic].map(([topic, partitions]) => h("div", {},
    h("a", { href: topicHref(topic) }, topic), `: ${partitions.sort((a, b) => a - b).join(", ")}`));
}

async function groupPage(view, root, id) {
  document.title = `${id} · odradek`;
  const path = `/consumer-groups/${seg(id)}`;
  const state = h("span", {}, "…");
  const meta = h("span", { class: "muted", "data-test": "group-meta" });
  const remove = h("button", { type: "button", class: "danger", disabled: true, "data-test": "group-delete",
                               title: "Only a group without members can be deleted" }, "Delete group");
  remove.addEventListener("click", () => act(remove, `Deleting group ${id}`, async () => {
    if (!confirm(`Delete consumer group "${id}" and its committed offsets?`)) return;
    await api(path, { method: "DELETE" });
    location.hash = "#/groups";
  }));
  const total = h("span", { "data-test": "group-total-lag" }, "…");
  const worst = h("div", { class: "muted small", "data-test": "group-max-lag" });
  const chart = h("div", { class: "spark-wide" });
  const status = h("div", { class: "small muted", "data-test": "lag-status" });
  const members = pagedTable({
    test: "members", rowTest: "member-row", empty: "No members: nobody is consuming.", columns: [
      { title: "Consumer", class: "mono", render: (c) => c.consumer_id },
      { title: "Instance", class: "mono", render: (c) => c.instance_id ?? h("span", { class: "muted" }, "—") },
      { title: "Client", class: "mono", render: (c) => c.client_id },
      { title: "Host", class: "mono", render: (c) => c.client_host ?? "" },
      { title: "Partitions", class: "mono", render: assignments },
    ],
  });
  const lags = pagedTable({
    test: "lags", rowTest: "lag-row", rowAttrs: (l) => ({ "data-topic": l.topic_name, "data-partition": l.partition_id }),
    empty: "No committed offsets.", columns: [
      { title: "Topic", class: "mono", render: (l) => h("a", { href: topicHref(l.topic_name) }, l.topic_name) },
      { title: "Partition", class: "num", render: (l) => String(l.partition_id) },
      { title: "Committed", class: "num", render: (l) => fmtInt(l.current_offset) },
      { title: "Log end", class: "num", render: (l) => fmtInt(l.log_end_offset) },
      { title: "Lag", class: "num", render: (l) => (l.lag ? h("span", { class: "warn" }, fmtInt(l.lag)) : fmtInt(l.lag)) },
      { title: "Consumer", class: "mono", render: (l) => l.client_id || l.consumer_id || h("span", { class: "muted" }, "—") },
    ],
  });
  root.append(h("div", { class: "crumbs" }, h("a", { href: "#/groups" }, "Consumer groups"), " /"),
    titleRow(id, "group-title", remove), h("p", { class: "summary" }, state, " ", meta),
    h("section", { class: "panel lag" }, h("h2", {}, "Lag"),
      h("div", { class: "lag-row" }, h("div", {}, h("div", { class: "stat-label" }, "Total lag (records)"),
        h("div", { class: "stat-value mono" }, total), worst), chart), status),
    h("section", { class: "panel" }, h("h2", {}, "Members"), members.element),
    h("section", { class: "panel" }, h("h2", {}, "Lag per partition"), lags.element));

  const history = lagHistory.get(id) ?? [];
  lagHistory.set(id, history);
  let ticks = 0;
  view.poll(POLL_MS, async () => {
    // the summary every time, the group, its members and the per-partition lag every third time
    const details = ticks++ % 3 === 0;
    try {
      const [summary, group, consumers, lagList] = await Promise.all([api(`${path}/lag-summary`),
        ...(details ? [api(path), api(`${path}/consumers`), api(`${path}/lags`)] : [])]);
      if (!view.alive) return;
      history.push(summary.total_lag);
      if (history.length > HISTORY_SAMPLES) history.shift();
      total.textContent = fmtInt(summary.total_lag);
      worst.textContent = summary.max_lag_topic_name
        ? `largest: ${fmtInt(summary.max_lag)} on ${summary.max_lag_topic_name}-${summary.max_lag_partition_id}` : "";
      chart.replaceChildren(sparkline(history, "lag-sparkline", { width: 600, height: 60 }),
        h("div", { class: "muted small" }, `${spanOf(history)}, peak ${fmtInt(Math.max(...history))}`));
      if (details) {
        state.replaceChildren(stateBadge(group.state, "group-state"));
        meta.textContent = [group.type && `${group.type.toLowerCase()} group`, group.partition_assignor && `assignor ${group.partition_assignor}`,
          `${consumers.data.length} member${consumers.data.length === 1 ? "" : "s"}`].filter(Boolean).join(" · ");
        remove.disabled = !["EMPTY", "DEAD"].includes(group.state);
        members.set(consumers.data);
        lags.set(lagList.data);
      }
      status.className = "small muted";
      status.textContent = `Live, read every ${POLL_MS / 1000} s; updated ${fmtTime(Date.now()).slice(11, 19)}.`;
    } catch (err) {
      status.className = "small bad";
      status.textContent = `The lag is not updating: ${err.message}`;
    }
  });
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
  const view = document.getElementById("view");
  try {
    const clusters = await request("/api/v3/clusters");
    clusterId = clusters.data[0].cluster_id;
  } catch (err) {
    showError(err, "Finding the cluster");
    view.replaceChildren(h("p", {}, "The console could not reach the broker's REST API. ",
      h("button", { type: "button", onclick: () => location.reload() }, "Try again")));
    return;
  }
  document.getElementById("cluster-id").textContent = clusterId;
  window.addEventListener("hashchange", route);
  sampleThroughput();
  route();
}

start();
