// Pins the agent door (agent-ui.conf) to one index: `$door_index`.
//
// nginx alone routes by path and cannot read a body, so the searches, the index list and
// the stats go through these handlers (njs), which call Meilisearch by subrequest:
// - a search of another index (in the path, in a multi-search query's `indexUid`, or in
//   `federation.facetsByIndex`) is sent under a decoy name that exists nowhere
//   (`explorer-door-<random>`) and the answer is told with the name the client used: no
//   other index's data passes, whatever the key, and a key that covers every index still
//   gets "not found" where an agent key gets "cannot access" (how the agent page spots an
//   admin key);
// - `federationOptions.remote` (a search on another Meilisearch) is refused;
// - the multi-search body is parsed and sent on re-encoded, so Meilisearch reads exactly
//   what was checked;
// - GET /indexes and GET /stats are cut down to the pinned index.
// The same rules as `explorer serve` (explorer/doors/serve.py); tests/test_door.py probes both.

const INDEX_UID = /^[A-Za-z0-9_-]{1,512}$/;
const JSON_TYPE = "application/json";

function decoyName() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let hex = "";
  for (let i = 0; i < bytes.length; i++) hex += (bytes[i] + 256).toString(16).slice(1);
  return "explorer-door-" + hex;
}

function pinner(index) {
  const asked = {};
  return {
    asked: asked,
    uid: function (name) {
      if (typeof name !== "string" || name === index || !INDEX_UID.test(name)) return name;
      const decoy = decoyName();
      asked[decoy] = name;
      return decoy;
    },
  };
}

function refuse(r, status, code, message) {
  r.headersOut["Content-Type"] = JSON_TYPE;
  const type = status >= 500 ? "system" : "invalid_request";
  r.return(status, JSON.stringify({ message: message, code: code, type: type }));
}

function unreachable(r, reply) {
  if (reply.status === 502 || reply.status === 504) {
    const type = reply.headersOut["Content-Type"] || "";
    if (type.indexOf(JSON_TYPE) !== 0) {
      refuse(r, reply.status, reply.status === 502 ? "meili_unreachable" : "meili_timeout",
        "Meilisearch cannot be reached from this door: tell its administrator.");
      return true;
    }
  }
  return false;
}

function answer(r, reply, pin, index) {
  if (unreachable(r, reply)) return;
  let body = reply.responseText || "";
  const decoys = Object.keys(pin.asked);
  if (decoys.length && reply.status >= 400) {
    for (let i = 0; i < decoys.length; i++) body = body.split(decoys[i]).join(pin.asked[decoys[i]]);
    try {
      const error = JSON.parse(body);
      if (error && typeof error.message === "string") {
        error.message += " This door searches only the index `" + index + "`.";
        body = JSON.stringify(error);
      }
    } catch (e) {
      // not JSON: pass it on as it is
    }
  }
  r.headersOut["Content-Type"] = reply.headersOut["Content-Type"] || JSON_TYPE;
  r.return(reply.status, body);
}

async function search(r) {
  const index = r.variables.door_index;
  const pin = pinner(index);
  const uid = pin.uid(r.variables.door_uid);
  const options = { method: r.method, args: r.variables.args || "" };
  if (r.method === "POST") options.body = r.requestText || "";
  const reply = await r.subrequest("/_meili/indexes/" + uid + "/search", options);
  answer(r, reply, pin, index);
}

async function multiSearch(r) {
  const index = r.variables.door_index;
  const pin = pinner(index);
  let payload;
  try {
    payload = JSON.parse(r.requestText || "");
  } catch (e) {
    refuse(r, 400, "malformed_payload", "The body is not JSON.");
    return;
  }
  if (payload && typeof payload === "object" && !Array.isArray(payload)) {
    const queries = Array.isArray(payload.queries) ? payload.queries : [];
    for (let i = 0; i < queries.length; i++) {
      const query = queries[i];
      if (!query || typeof query !== "object" || Array.isArray(query)) continue;
      if ("indexUid" in query) query.indexUid = pin.uid(query.indexUid);
      const fed = query.federationOptions;
      if (fed && typeof fed === "object" && fed.remote !== undefined && fed.remote !== null) {
        refuse(r, 403, "remote_not_allowed",
          "This door searches the index `" + index + "` here only, not on remotes.");
        return;
      }
    }
    const federation = payload.federation;
    if (federation && typeof federation === "object" && federation.facetsByIndex &&
        typeof federation.facetsByIndex === "object" && !Array.isArray(federation.facetsByIndex)) {
      const pinned = {};
      const names = Object.keys(federation.facetsByIndex);
      for (let i = 0; i < names.length; i++) {
        pinned[pin.uid(names[i])] = federation.facetsByIndex[names[i]];
      }
      federation.facetsByIndex = pinned;
    }
  }
  const reply = await r.subrequest("/_meili/multi-search",
    { method: "POST", body: JSON.stringify(payload) });
  answer(r, reply, pin, index);
}

// The web UI lists what GET /indexes and GET /stats name: only the pinned index shows.
async function indexes(r) {
  const index = r.variables.door_index;
  const reply = await r.subrequest("/_meili/indexes", { args: r.variables.args || "" });
  if (unreachable(r, reply)) return;
  let body = reply.responseText || "";
  if (reply.status === 200) {
    const list = JSON.parse(body);
    list.results = (list.results || []).filter(function (i) { return i && i.uid === index; });
    list.total = list.results.length;
    body = JSON.stringify(list);
  }
  r.headersOut["Content-Type"] = reply.headersOut["Content-Type"] || JSON_TYPE;
  r.return(reply.status, body);
}

async function stats(r) {
  const index = r.variables.door_index;
  const reply = await r.subrequest("/_meili/stats");
  if (unreachable(r, reply)) return;
  let body = reply.responseText || "";
  if (reply.status === 200) {
    const all = JSON.parse(body);
    const mine = all.indexes && all.indexes[index];
    all.indexes = {};
    if (mine) all.indexes[index] = mine;
    body = JSON.stringify(all);
  }
  r.headersOut["Content-Type"] = reply.headersOut["Content-Type"] || JSON_TYPE;
  r.return(reply.status, body);
}

export default { search, multiSearch, indexes, stats };
