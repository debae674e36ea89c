// How the agent page turns what an agent typed into a Meilisearch query: the same rules as
// `explorer search` (explorer/records/phones.py, explorer/meili/query.py). Both sides are tested against
// one table of cases (tests/data/query_cases.json), so they cannot drift apart.

export const MIN_SUFFIX = 7;
export const PHONE_FIELDS = ["phone_digits", "phone_variants", "jid", "lid"];
const PHONEISH = /^\s*\+?[\p{Nd}\s().\-/]+$/u;

// The zero of each run of ten decimal digits agents may type (Unicode keeps them contiguous).
const ZEROS = [0x30, 0x660, 0x6f0, 0x966, 0x9e6, 0xa66, 0xae6, 0xbe6, 0xc66, 0xce6, 0xd66,
  0xe50, 0xed0, 0x1040, 0x17e0, 0x1810, 0xff10];

function digitValue(ch) {
  const cp = ch.codePointAt(0);
  for (const zero of ZEROS) {
    if (cp >= zero && cp < zero + 10) return String(cp - zero);
  }
  return "";
}

export function digitsOf(text) {
  let out = "";
  for (const ch of text) if (/\p{Nd}/u.test(ch)) out += digitValue(ch);
  return out;
}

// The digits to search for when the query looks like a phone number, else null.
export function phoneQuery(query) {
  if (!PHONEISH.test(query)) return null;
  const digits = digitsOf(query);
  if (digits.length < MIN_SUFFIX) return null;
  if (query.trim().startsWith("+")) return digits;
  if (digits.startsWith("00")) return digits.slice(2);
  return digits;
}

// Quote a value for a Meilisearch filter expression.
export function quote(value) {
  return `"${String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export const DAY = 86400;
const FLAGS = ["archived", "pinned", "muted", "phone_hidden"];

// Filter clauses (ANDed) for the page's controls, written as explorer/records/filters.py writes
// them: both are held to tests/data/filter_cases.json. `now` is in milliseconds (Date.now());
// `skip` leaves one facet's own filter out so that facet can show counts for its other values.
export function filterClauses(f, now, skip = null) {
  const out = [];
  if (f.type && skip !== "type") out.push(`chat_type = ${quote(f.type)}`);
  if (f.instance && skip !== "instance") {
    const value = quote(f.instance);
    out.push(`(instance_id = ${value} OR instance_label = ${value})`);
  }
  // The page's controls only narrow: an unticked flag and 0 days mean "any".
  for (const flag of FLAGS) {
    if (f[flag] && skip !== flag) out.push(`${flag} = true`);
  }
  if (f.inactive) {
    const cutoff = Math.floor(now / 1000) - f.inactive * DAY;
    out.push(`(last_activity < ${cutoff} OR last_activity IS NULL)`);
  }
  // Any of the ticked labels, by name (explorer/records/filters.py labels_any).
  if (f.labels && f.labels.length && skip !== "labels") {
    out.push(labelsAny(f.labels));
  }
  return out;
}

// The same filters for the messages index, as explorer/records/filters.py MessageFilters
// writes them (tests/data/message_filter_cases.json holds both): a message document knows
// its chat's type and instance id, nothing of the chat's state.
// Any of these labels, by name: explorer/records/filters.py labels_any.
function labelsAny(names) {
  return `labels IN [${names.map(quote).join(", ")}]`;
}

export function messageFilterClauses(f) {
  const out = [];
  if (f.type) out.push(`chat_type = ${quote(f.type)}`);
  if (f.instance) out.push(`instance_id = ${quote(f.instance)}`);
  // A message carries its chat's labels (records/messages.py), so the label filter holds.
  if (f.labels && f.labels.length) out.push(labelsAny(f.labels));
  return out;
}

// The page's filters that describe a chat's state, which messages do not carry.
export const CHAT_ONLY = ["archived", "pinned", "muted", "phone_hidden", "inactive"];

// The scope a tenant token carries, for the page's header: the instance and the labels that
// explorer/meili/keys.py (Scope.filter) wrote into the token's search rule for `index`. Read
// to be shown, never trusted: Meilisearch applies the rule whatever the page makes of it.
// null for a plain key, or a token without a scope.
export function scopeOf(key, index) {
  const parts = String(key || "").split(".");
  if (parts.length !== 3) return null;
  let claims;
  try {
    const bytes = Uint8Array.from(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  const rules = claims && typeof claims.searchRules === "object" ? claims.searchRules : null;
  const rule = rules && !Array.isArray(rules) ? rules[index] : null;
  const filter = rule && typeof rule.filter === "string" ? rule.filter : "";
  const unquote = (s) => s.replace(/\\(.)/gsu, "$1");
  const instance = /^instance_id = "((?:[^"\\]|\\.)*)"/su.exec(filter);
  const list = /labels IN \[(.*)\]$/su.exec(filter);
  const labels = list ? [...list[1].matchAll(/"((?:[^"\\]|\\.)*)"/gsu)].map((m) => unquote(m[1])) : [];
  if (!instance && !labels.length) return null;
  return { instance: instance ? unquote(instance[1]) : null, labels };
}
