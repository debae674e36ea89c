// The agent page: find a customer's chat, with the agent's own scoped key.
// Plain modules, no build step, no third-party request: everything talks to Meilisearch
// (config.json says where) and nothing is fetched to display a result.

import {
  CHAT_ONLY, PHONE_FIELDS, filterClauses, messageFilterClauses, phoneQuery, quote, scopeOf,
} from "./query.js";

const TYPES = [
  ["individual", "People"],
  ["group", "Groups"],
  ["channel", "Channels"],
  ["broadcast", "Broadcast lists"],
];
const BADGES = { individual: "Person", group: "Group", channel: "Channel", broadcast: "Broadcast list" };
const FLAGS = ["archived", "pinned", "muted", "phone_hidden"];
const FLAG_WORDS = { phone_hidden: "number hidden" };
const HL_PRE = "\u0001";
const HL_POST = "\u0002";
const PAGE = 20;
const MESSAGES_PAGE = 10;
const MESSAGE_FIELDS = [
  "id", "chat_name", "body", "sender_name", "sender", "from_me", "instance_id", "jid",
  "timestamp", "chat_type", "media_type",
];
const KEY_STORE = "explorer.agentKey";
const PROBE_INDEX = "explorer-no-such-index-probe";
const HEX = /^#[0-9a-fA-F]{6}$/;

const $ = (id) => document.getElementById(id);
const state = {
  config: null,
  key: null,
  instances: {}, // id -> label
  filters: {
    type: "", instance: "", archived: false, pinned: false, muted: false, phone_hidden: false,
    inactive: 0, sort: "", labels: [],
  },
  labelsIndexed: true, // false: the index predates labels (schema 4) until its next reindex
  q: "",
  hits: [],
  selected: -1,
  seq: 0,
  controller: null,
  messages: null, // the messages index, when message search is on and the key reaches it
  messageHits: [],
};

// -- talking to Meilisearch -------------------------------------------------------------

class MeiliError extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function meiliUrl(path) {
  return `${state.config.meili || ""}${path}`;
}

async function meili(path, { method = "GET", body, key = state.key, signal } = {}) {
  let resp;
  try {
    resp = await fetch(meiliUrl(path), {
      method,
      signal,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      referrerPolicy: "no-referrer",
      credentials: "omit",
      cache: "no-store",
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new MeiliError(
      "The search service cannot be reached. Check your connection; if it lasts, " +
        "tell your administrator.",
    );
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const code = (data && data.code) || "";
    if (code === "meili_unreachable" || resp.status === 502 || resp.status === 504) {
      throw new MeiliError(
        "Meilisearch cannot be reached. It may be down or restarting: try again in a minute, " +
          "and tell your administrator if it lasts.",
      );
    }
    throw new MeiliError((data && data.message) || `HTTP ${resp.status}`, { status: resp.status, code });
  }
  return data;
}

function explainKeyError(err) {
  if (!(err instanceof MeiliError) || !err.status) return err.message;
  if (err.code === "index_not_found") {
    return `The chat index "${state.config.index}" does not exist yet. Ask your administrator to run explorer reindex.`;
  }
  if (err.status === 401 || err.status === 403) {
    return (
      "This key was not accepted: it is wrong, expired or revoked. " +
      "Ask your administrator for a new agent key (explorer keys create-agent)."
    );
  }
  return `Meilisearch refused the search: ${err.message}`;
}

// An agent key can search one index and nothing else. Through the door (explorer serve or
// the compose proxy) nothing but searches passes anyway, whatever else the key holds, so
// the page does not probe every action as `explorer mcp` does (explorer/meili/readonly.py, the
// one list of what a read-only key may hold): it cannot, the door passes only searches.
// A key that covers every index is refused, so that nobody gets used to pasting an
// admin or master key here.
async function looksPowerful(key) {
  // An agent key is confined to the chat index; a key that may search an index that does not
  // exist (Meilisearch answers index_not_found instead of refusing) covers every index.
  try {
    await meili("/multi-search", { method: "POST", key, body: { queries: [{ indexUid: PROBE_INDEX, q: "", limit: 0 }] } });
    return true;
  } catch (err) {
    return err instanceof MeiliError && err.code === "index_not_found";
  }
}

async function signIn(key) {
  const index = encodeURIComponent(state.config.index);
  await meili(`/indexes/${index}/search`, { method: "POST", key, body: { q: "", limit: 0 } });
  if (await looksPowerful(key)) {
    throw new MeiliError(
      "This is an admin key, which can change or read more than searching needs. " +
        "Agents sign in with an agent key: ask for one made with explorer keys create-agent.",
    );
  }
  const known = await meili(`/indexes/${index}/search`, {
    method: "POST",
    key,
    body: { q: "", limit: 100, distinct: "instance_id", attributesToRetrieve: ["instance_id", "instance_label"] },
  });
  state.instances = {};
  for (const hit of known.hits) state.instances[hit.instance_id] = hit.instance_label || hit.instance_id;
  state.messages = await messagesIndex(key);
}

// The messages index, if this door serves message search (config.json names it) and it is
// there for this key; otherwise the page simply has no messages column.
async function messagesIndex(key) {
  const index = state.config.messages;
  if (!index) return null;
  try {
    await meili(`/indexes/${encodeURIComponent(index)}/search`, { method: "POST", key, body: { q: "", limit: 0 } });
    return index;
  } catch {
    return null;
  }
}

// -- searching ----------------------------------------------------------------------------

function searchBodies() {
  const f = state.filters;
  const now = Date.now();
  const digits = phoneQuery(state.q);
  const main = {
    indexUid: state.config.index,
    q: digits || state.q,
    limit: PAGE,
    filter: filterClauses(f, now),
    facets: ["chat_type", "instance_id", ...FLAGS],
    attributesToRetrieve: [
      "id", "jid", "name", "display_name", "phone", "phone_display", "chat_type", "instance_id",
      "instance_label", "last_activity", "unread_count", "archived", "pinned", "muted",
      "lid", "username", "phone_hidden", "label_details",
    ],
  };
  if (digits) main.attributesToSearchOn = PHONE_FIELDS;
  if (state.q) {
    Object.assign(main, { attributesToHighlight: ["display_name"], highlightPreTag: HL_PRE, highlightPostTag: HL_POST });
  }
  const sort = f.sort || (state.q ? "" : "last_activity:desc");
  if (sort) main.sort = [sort];
  // Each facet's own filter is left out of its count query (disjunctive facets): the type
  // list keeps showing how many groups there are while "People" is selected.
  const facetQuery = (skip, facet) => ({
    indexUid: state.config.index,
    q: main.q,
    limit: 0,
    filter: filterClauses(f, now, skip),
    facets: [facet],
    ...(digits ? { attributesToSearchOn: PHONE_FIELDS } : {}),
  });
  const queries = [main, facetQuery("type", "chat_type"), facetQuery("instance", "instance_id")];
  if (state.labelsIndexed) queries.push(facetQuery("labels", "labels"));
  // What was said, in the same request: the page stays one round trip per keystroke.
  if (state.messages && state.q.trim()) {
    queries.push({
      indexUid: state.messages,
      q: state.q,
      limit: MESSAGES_PAGE,
      filter: messageFilterClauses(f),
      matchingStrategy: "all",
      // What was said: the chats column already finds names, so a name typed does not
      // also list every message of that chat here.
      attributesToSearchOn: ["body"],
      attributesToRetrieve: MESSAGE_FIELDS,
      attributesToCrop: ["body"],
      cropLength: 20,
      cropMarker: "…",
      attributesToHighlight: ["body", "chat_name", "sender_name"],
      highlightPreTag: HL_PRE,
      highlightPostTag: HL_POST,
    });
  }
  return queries;
}

async function runSearch() {
  const seq = ++state.seq;
  const typedAt = state.typedAt;
  state.typedAt = null;
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  const started = performance.now();
  setBusy(true);
  try {
    const reply = await meili("/multi-search", {
      method: "POST",
      body: { queries: searchBodies() },
      signal: state.controller.signal,
    });
    if (seq !== state.seq) return;
    render(reply.results, performance.now() - started);
    showError(null);
    // Keystroke to results on screen (the frame after the DOM changed), for the benchmark.
    if (typedAt !== null && typedAt !== undefined) {
      requestAnimationFrame(() => timings.push({ q: state.q, ms: performance.now() - typedAt }));
    }
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;
    if (state.labelsIndexed && err instanceof MeiliError && /\blabels\b/.test(err.message) &&
        ["invalid_search_facets", "invalid_search_filter"].includes(err.code)) {
      state.labelsIndexed = false; // an index built before labels: search without them
      state.filters.labels = [];
      runSearch();
      return;
    }
    // The messages index went away (message search turned off and purged): carry on
    // without the column rather than fail every search.
    if (state.messages && err instanceof MeiliError && String(err.message).includes(`\`${state.messages}\``)) {
      state.messages = null;
      runSearch();
      return;
    }
    if (err instanceof MeiliError && (err.status === 401 || err.status === 403)) {
      signOut(explainKeyError(err));
      return;
    }
    showError(explainKeyError(err));
  } finally {
    if (seq === state.seq) setBusy(false);
  }
}

// -- rendering ----------------------------------------------------------------------------

function highlighted(text) {
  const frag = document.createDocumentFragment();
  const parts = String(text ?? "").split(HL_PRE);
  parts.forEach((part, n) => {
    if (n === 0) {
      frag.append(part);
      return;
    }
    const [inside, ...rest] = part.split(HL_POST);
    const mark = document.createElement("mark");
    mark.textContent = inside;
    frag.append(mark, rest.join(""));
  });
  return frag;
}

const relFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function ago(ts) {
  if (typeof ts !== "number") return "no activity recorded";
  const seconds = ts - Date.now() / 1000;
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relFormat.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children);
  return node;
}

function card(hit, n) {
  const name = hit._formatted ? hit._formatted.display_name : hit.display_name;
  const label = hit.instance_label || state.instances[hit.instance_id] || hit.instance_id;
  const li = el("li", { id: `r${n}`, role: "option", "aria-selected": "false", class: "hit", "data-n": String(n) });
  const title = el("div", { class: "title" },
    el("span", { class: "name" }, highlighted(name)),
    el("span", { class: `badge t-${hit.chat_type}`, text: BADGES[hit.chat_type] || hit.chat_type }),
  );
  if (hit.unread_count) title.append(el("span", { class: "unread", title: "unread messages", text: `${hit.unread_count} unread` }));
  // A LID nobody resolved shows "hidden number", never its digits dressed as a phone.
  const phone = hit.phone_hidden
    ? el("span", { class: "phone hidden-number", title: `WhatsApp hides this number (LID ${hit.lid || hit.jid})`, text: "hidden number" })
    : el("span", { class: "phone", text: hit.phone_display || hit.jid });
  const meta = el("div", { class: "meta" },
    phone,
    el("span", { class: "instance", text: label }),
    el("span", { class: "when", text: ago(hit.last_activity) }),
  );
  if (hit.username) meta.append(el("span", { class: "username", text: `@${hit.username}` }));
  for (const flag of FLAGS) {
    if (hit[flag] && flag !== "phone_hidden") meta.append(el("span", { class: "flag", text: flag }));
  }
  const labels = Array.isArray(hit.label_details) ? hit.label_details : [];
  const chips = el("div", { class: "chips", role: "list", "aria-label": "labels" });
  for (const label of labels) chips.append(chip(label));
  const actions = el("div", { class: "actions" });
  if (hit.phone) {
    actions.append(el("button", { type: "button", "data-copy": hit.phone, "data-what": "phone", text: "Copy phone" }));
  }
  actions.append(el("button", { type: "button", "data-copy": hit.jid, "data-what": "JID", text: "Copy JID" }));
  if (hit.phone) {
    actions.append(el("a", {
      class: "open", href: `https://wa.me/${hit.phone.replace(/^\+/, "")}`,
      target: "_blank", rel: "noreferrer noopener", text: "Open in WhatsApp",
    }));
  }
  li.append(title, meta);
  if (labels.length) li.append(chips);
  li.append(actions);
  return li;
}

// One label: its name as text (names are whatever the business typed), its colour only
// when it is a plain #rrggbb, through a custom property, never markup or a style string.
function chip(label) {
  const name = label && typeof label.name === "string" ? label.name : `label ${label && label.id}`;
  const item = el("span", { class: "chip", role: "listitem", title: name }, el("span", { text: name }));
  if (label && typeof label.color === "string" && HEX.test(label.color)) {
    item.style.setProperty("--chip", label.color);
  }
  return item;
}

function renderLabelOptions(counts) {
  const chosen = state.filters.labels;
  const names = [...new Set([...Object.keys(counts), ...chosen])]
    .sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
  $("label-set").hidden = !names.length;
  $("label-options").replaceChildren(...names.map((name) => el("label", { class: "option", title: name },
    el("input", { type: "checkbox", name: "label", value: name, checked: chosen.includes(name) }),
    el("span", { class: "label-name", text: name }),
    el("span", { class: "count", text: (counts[name] || 0).toLocaleString() }))));
}

// -- messages: text from strangers, always inserted as text nodes ---------------------------

// Who wrote it: "You sent" for the business, the member in a group, "Received" in a
// one-to-one chat (the chat's name is already beside it).
function sender(hit, shown) {
  if (hit.from_me) return document.createTextNode("You sent");
  if (shown.sender_name || hit.sender_name) return highlighted(shown.sender_name || hit.sender_name);
  if (hit.sender) return document.createTextNode(hit.sender.endsWith("@c.us") ? `+${hit.sender.split("@")[0]}` : hit.sender);
  return document.createTextNode("Received");
}

function messageItem(hit, n) {
  const shown = hit._formatted || {};
  const when = new Date(hit.timestamp * 1000);
  const li = el("li", { class: "msg", id: `m${n}`, "data-n": String(n), tabindex: "0",
    title: "Show this chat" });
  li.append(
    el("div", { class: "msg-head" },
      el("span", { class: "msg-chat" }, highlighted(shown.chat_name || hit.chat_name || hit.jid)),
      el("span", { class: "msg-from" }, sender(hit, shown)),
      el("time", { class: "msg-when", datetime: when.toISOString(), title: when.toLocaleString(), text: ago(hit.timestamp) }),
    ),
    el("p", { class: "msg-body" }, highlighted(shown.body ?? hit.body)),
  );
  return li;
}

function renderMessages(reply) {
  const column = $("messages-col");
  const on = Boolean(state.messages && state.q.trim() && reply);
  column.hidden = !on;
  document.body.classList.toggle("with-messages", on);
  state.messageHits = on ? reply.hits : [];
  $("messages").replaceChildren(...state.messageHits.map(messageItem));
  if (!on) return;
  const total = reply.estimatedTotalHits ?? state.messageHits.length;
  const f = state.filters;
  const ignored = CHAT_ONLY.filter((name) => f[name]);
  let text = state.messageHits.length
    ? `${total >= 1000 ? "1,000+" : total.toLocaleString()} message${total === 1 ? "" : "s"} say “${state.q}”`
    : `No message says “${state.q}”.`;
  if (ignored.length) text += " · chat state filters do not apply to messages";
  $("messages-status").textContent = text;
}

// A message's chat, as its card, above the results.
async function showMessageChat(n) {
  const hit = state.messageHits[n];
  if (!hit) return;
  for (const item of $("messages").children) item.classList.toggle("chosen", item.dataset.n === String(n));
  const box = $("message-chat");
  try {
    // `jid` is searchable (without typos), not filterable: search it, keep the exact one.
    const reply = await meili(`/indexes/${encodeURIComponent(state.config.index)}/search`, {
      method: "POST",
      body: { q: hit.jid, attributesToSearchOn: ["jid"], limit: 5, filter: [`instance_id = ${quote(hit.instance_id)}`] },
    });
    const chat = reply.hits.find((c) => c.jid === hit.jid);
    box.replaceChildren(
      el("div", { class: "message-chat-head" },
        el("span", { text: "Chat of this message" }),
        el("button", { type: "button", class: "quiet", id: "message-chat-close", text: "Close" })),
      chat ? el("ul", { class: "card-one" }, card(chat, "c")) : el("p", { class: "empty", text: "This chat is not in the chat index any more." }),
    );
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  } catch (err) {
    showError(explainKeyError(err));
  }
}

function renderFacetOptions(container, name, values, counts, current, labelOf) {
  container.replaceChildren();
  const all = el("label", { class: "option" },
    el("input", { type: "radio", name, value: "", checked: current === "" }), " All");
  container.append(all);
  for (const value of values) {
    const count = counts[value] || 0;
    container.append(el("label", { class: "option" },
      el("input", { type: "radio", name, value, checked: current === value }),
      ` ${labelOf(value)} `, el("span", { class: "count", text: count.toLocaleString() })));
  }
}

function render(results, ms) {
  const [main, byType, byInstance, ...rest] = results;
  // After the three: the labels' counts when the index has labels, then the messages.
  const byLabel = state.labelsIndexed ? rest.shift() : undefined;
  renderMessages(rest.shift());
  const typeCounts = (byType.facetDistribution || {}).chat_type || {};
  const instCounts = (byInstance.facetDistribution || {}).instance_id || {};
  const mainFacets = main.facetDistribution || {};
  const total = Object.values(mainFacets.chat_type || {}).reduce((a, b) => a + b, 0);
  renderFacetOptions($("type-options"), "type", TYPES.map(([t]) => t), typeCounts, state.filters.type,
    (t) => TYPES.find(([v]) => v === t)[1]);
  const instanceIds = [...new Set([...Object.keys(state.instances), ...Object.keys(instCounts)])].sort();
  $("instance-set").hidden = instanceIds.length < 2 && !state.filters.instance;
  renderFacetOptions($("instance-options"), "instance", instanceIds, instCounts, state.filters.instance,
    (i) => state.instances[i] || i);
  for (const flag of FLAGS) {
    $(`c-${flag}`).textContent = ((mainFacets[flag] || {}).true || 0).toLocaleString();
  }
  renderLabelOptions(byLabel ? (byLabel.facetDistribution || {}).labels || {} : {});
  state.hits = main.hits;
  state.selected = main.hits.length ? 0 : -1;
  const list = $("results");
  list.replaceChildren(...main.hits.map(card));
  $("q").setAttribute("aria-expanded", main.hits.length ? "true" : "false");
  updateSelection();
  const shown = main.hits.length;
  const what = state.q ? `for “${state.q}”` : anyFilter() ? "matching the filters" : "most recently active first";
  $("status").textContent = shown
    ? `${shown < total ? `1–${shown} of ` : ""}${total.toLocaleString()} chat${total === 1 ? "" : "s"} ${what} · ${Math.round(ms)} ms`
    : "";
  const empty = $("empty");
  empty.hidden = shown > 0;
  if (!shown) {
    empty.replaceChildren(
      el("p", { class: "big", text: state.q ? `No chat matches “${state.q}”.` : "No chat matches these filters." }),
      el("p", { text: state.messageHits.length
        ? "Messages say it: pick one to see its chat."
        : state.q
          ? "Check the spelling or try part of the name. For a number, the last 7 digits are enough."
          : "Clear a filter to see more." }),
    );
  }
  $("filter-summary").textContent = describeFilters();
  document.body.dataset.state = shown ? "results" : "empty";
}

function describeFilters() {
  const f = state.filters;
  const parts = [];
  if (f.type) parts.push(TYPES.find(([t]) => t === f.type)[1].toLowerCase());
  if (f.instance) parts.push(state.instances[f.instance] || f.instance);
  for (const flag of FLAGS) if (f[flag]) parts.push(FLAG_WORDS[flag] || flag);
  if (f.inactive) parts.push(`silent ${f.inactive}+ days`);
  if (f.labels.length) parts.push(f.labels.join(" or "));
  return parts.length ? `(${parts.join(", ")})` : "";
}

function anyFilter() {
  const f = state.filters;
  return Boolean(f.type || f.instance || f.inactive || f.labels.length || FLAGS.some((x) => f[x]));
}

function updateSelection() {
  const items = $("results").children;
  for (const [n, item] of [...items].entries()) {
    item.setAttribute("aria-selected", n === state.selected ? "true" : "false");
  }
  const current = items[state.selected];
  if (current) {
    $("q").setAttribute("aria-activedescendant", current.id);
    current.scrollIntoView({ block: "nearest" });
  } else {
    $("q").removeAttribute("aria-activedescendant");
  }
}

function setBusy(busy) {
  document.body.classList.toggle("busy", busy);
  if (busy && !$("results").children.length) $("status").textContent = "Searching…";
}

function showError(message) {
  const box = $("error");
  box.hidden = !message;
  box.textContent = message || "";
  if (message) document.body.dataset.state = "error";
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 1800);
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", { class: "visually-hidden" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(`Copied ${what}: ${text}`);
}

// -- the URL keeps the search (never the key) ------------------------------------------------

function toUrl(push) {
  const p = new URLSearchParams();
  if (state.q) p.set("q", state.q);
  const f = state.filters;
  if (f.type) p.set("type", f.type);
  if (f.instance) p.set("instance", f.instance);
  for (const flag of FLAGS) if (f[flag]) p.set(flag, "1");
  if (f.inactive) p.set("inactive", String(f.inactive));
  for (const name of f.labels) p.append("label", name);
  if (f.sort) p.set("sort", f.sort);
  const url = `${location.pathname}${p.toString() ? `?${p}` : ""}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  state.q = p.get("q") || "";
  const type = p.get("type") || "";
  state.filters = {
    type: TYPES.some(([t]) => t === type) ? type : "",
    instance: p.get("instance") || "",
    archived: p.get("archived") === "1",
    pinned: p.get("pinned") === "1",
    muted: p.get("muted") === "1",
    phone_hidden: p.get("phone_hidden") === "1",
    inactive: Number.parseInt(p.get("inactive") || "0", 10) || 0,
    sort: ["last_activity:desc", "display_name:asc"].includes(p.get("sort")) ? p.get("sort") : "",
    labels: state.labelsIndexed ? [...new Set(p.getAll("label").filter((n) => n.trim()))] : [],
  };
  $("q").value = state.q;
  for (const flag of FLAGS) $(`f-${flag}`).checked = state.filters[flag];
  $("f-inactive").value = state.filters.inactive ? String(state.filters.inactive) : "";
  $("f-sort").value = state.filters.sort;
}

// -- wiring -------------------------------------------------------------------------------------

function show(view) {
  $("sign-in").hidden = view !== "sign-in";
  $("finder").hidden = view !== "finder";
  $("sign-out").hidden = view !== "finder";
  $("who").hidden = view !== "finder";
  $("scope").hidden = view !== "finder" || !$("scope").textContent;
  document.body.dataset.view = view;
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  show("sign-in");
  const box = $("sign-in-error");
  box.hidden = !message;
  box.textContent = message || "";
  $("key").value = "";
  $("key").focus();
}

// "Scope: instance Cairo · labels VIP, Billing": what a tenant token limits the agent to.
function scopeLine(scope) {
  if (!scope) return "";
  const parts = [];
  if (scope.instance) parts.push(`instance ${state.instances[scope.instance] || scope.instance}`);
  // A name with a comma in it is quoted, so that the list still reads as a list.
  const names = scope.labels.map((name) => (name.includes(",") ? `“${name}”` : name));
  if (names.length) parts.push(`label${names.length > 1 ? "s" : ""} ${names.join(", ")}`);
  return `Scope: ${parts.join(" · ")}`;
}

async function tryKey(key) {
  const box = $("sign-in-error");
  box.hidden = true;
  document.body.dataset.view = "checking";
  try {
    await signIn(key);
  } catch (err) {
    signOut(explainKeyError(err));
    return;
  }
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  const count = Object.keys(state.instances).length;
  $("who").textContent = count === 1
    ? `Signed in · ${Object.values(state.instances)[0]}`
    : `Signed in · ${count} instances`;
  $("scope").textContent = $("scope").title = scopeLine(scopeOf(key, state.config.index));
  show("finder");
  fromUrl();
  $("q").focus();
  runSearch();
}

function moveSelection(step) {
  if (!state.hits.length) return;
  state.selected = Math.max(0, Math.min(state.hits.length - 1, state.selected + step));
  updateSelection();
}

function openSelected() {
  const item = $("results").children[state.selected];
  if (!item) return;
  const link = item.querySelector("a.open");
  if (link) link.click();
  else copy(state.hits[state.selected].jid, "JID");
}

function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    tryKey($("key").value.trim());
  });
  $("search-form").addEventListener("submit", (event) => event.preventDefault());
  $("sign-out").addEventListener("click", () => signOut("Signed out. The key is forgotten in this tab."));
  $("q").addEventListener("input", () => {
    state.typedAt = performance.now();
    state.q = $("q").value;
    $("message-chat").hidden = true;
    toUrl(false);
    runSearch();
  });
  $("q").addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { moveSelection(1); event.preventDefault(); }
    else if (event.key === "ArrowUp") { moveSelection(-1); event.preventDefault(); }
    else if (event.key === "Enter") { openSelected(); event.preventDefault(); }
    else if (event.key === "Escape") {
      event.preventDefault();
      if ($("q").value) {
        $("q").value = "";
        state.q = "";
        toUrl(true);
        runSearch();
      }
    }
  });
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
    if (event.key === "/" && !typing && state.key) {
      event.preventDefault();
      $("q").focus();
      $("q").select();
    }
  });
  const onFilter = () => { toUrl(true); runSearch(); };
  for (const [name, key] of [["type", "type"], ["instance", "instance"]]) {
    $(`${name}-options`).addEventListener("change", (event) => {
      state.filters[key] = event.target.value;
      onFilter();
    });
  }
  $("label-options").addEventListener("change", (event) => {
    const name = event.target.value;
    const chosen = state.filters.labels.filter((n) => n !== name);
    state.filters.labels = event.target.checked ? [...chosen, name] : chosen;
    onFilter();
  });
  for (const flag of FLAGS) {
    $(`f-${flag}`).addEventListener("change", (event) => {
      state.filters[flag] = event.target.checked;
      onFilter();
    });
  }
  $("f-inactive").addEventListener("change", (event) => {
    state.filters.inactive = Number.parseInt(event.target.value || "0", 10) || 0;
    onFilter();
  });
  $("f-sort").addEventListener("change", (event) => {
    state.filters.sort = event.target.value;
    onFilter();
  });
  $("clear").addEventListener("click", () => {
    history.pushState(null, "", location.pathname);
    fromUrl();
    runSearch();
    $("q").focus();
  });
  $("messages").addEventListener("click", (event) => {
    const item = event.target.closest("li.msg");
    if (item) showMessageChat(Number(item.dataset.n));
  });
  $("messages").addEventListener("keydown", (event) => {
    const item = event.target.closest("li.msg");
    if (item && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      showMessageChat(Number(item.dataset.n));
    }
  });
  $("message-chat").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (button) copy(button.dataset.copy, button.dataset.what);
    if (event.target.closest("#message-chat-close")) $("message-chat").hidden = true;
  });
  $("results").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (button) copy(button.dataset.copy, button.dataset.what);
    const item = event.target.closest("li.hit");
    if (item) {
      state.selected = Number(item.dataset.n);
      updateSelection();
    }
  });
  window.addEventListener("popstate", () => {
    if (!state.key) return;
    fromUrl();
    runSearch();
  });
}

async function start() {
  wire();
  // On a phone the results come first; the filters fold away under one line.
  if (window.matchMedia("(max-width: 760px)").matches) $("filters").open = false;
  try {
    const resp = await fetch("config.json", { cache: "no-store" });
    state.config = await resp.json();
  } catch {
    show("sign-in");
    $("sign-in-error").hidden = false;
    $("sign-in-error").textContent = "The page's configuration (config.json) could not be loaded.";
    return;
  }
  // A key in the fragment (#key=...) never reaches a server log; take it and drop it.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromFragment = fragment.get("key");
  if (fromFragment) history.replaceState(null, "", `${location.pathname}${location.search}`);
  const key = fromFragment || sessionStorage.getItem(KEY_STORE);
  if (key) await tryKey(key);
  else signOut(null);
}

const timings = [];
// For tests and the benchmark: the query rules, the current state, the typing timings.
window.explorerQuery = { phoneQuery };
window.explorerDebug = { state, timings };
start();
