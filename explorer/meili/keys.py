"""Scoped Meilisearch keys for agents and other tools: every key this tool makes.

Every key this tool creates works on exactly two indexes, the live chats index and its
messages index (:func:`explorer.records.messages.messages_index`), never a pattern that
would also reach builds or other indexes. Its description starts with :data:`KEY_PREFIX`:
that is how ``explorer keys list`` finds them and why ``revoke`` refuses any other key (the
admin keys, other tools'). Two kinds:

- an **agent** key (:data:`AGENT_ACTIONS`): the smallest the Meilisearch web UI accepts; it
  cannot write, read settings or fetch documents one by one. It is exactly the read-only
  allow-list (:data:`explorer.meili.readonly.READ_ONLY_ACTIONS`) that the MCP server holds keys to;
- a **search** key (``search`` only) for other tools.

Either may be **scoped** (:class:`Scope`: one instance, and/or chats carrying any of some
labels). Then what is printed is a tenant token, not the key: a JWT signed with the key,
whose search rules carry the scope's filter for both indexes. Meilisearch ANDs that filter
with whatever filter a search brings, so no door, client or query can widen it. Meilisearch
stores no tenant token, so each scoped token gets a key of its own (its *parent*), whose
description says the scope and whose name holds it for machines (:data:`SCOPE_NAME`):
``keys list`` shows every scope handed out, and revoking the parent ends its token at once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Final

from explorer.config import MeiliSettings
from explorer.errors import MeiliError, QueryError
from explorer.meili.client import Meili, RawHttp, dumps, error, pages
from explorer.meili.query import Searcher
from explorer.meili.readonly import READ_ONLY_ACTIONS
from explorer.records.filters import instance_id_is, labels_any
from explorer.records.messages import messages_index

KEY_PREFIX: Final = "WhatsApp Explorer"
AGENT_ACTIONS: Final = READ_ONLY_ACTIONS
SEARCH_ACTIONS: Final = ("search",)
LISTED_FIELDS: Final = ("uid", "description", "actions", "indexes", "expiresAt", "createdAt")
# The name of a scoped token's parent key: this prefix, then the scope as JSON.
SCOPE_NAME: Final = "explorer-scope "
MAX_LABELS: Final = 100
# The compose door's nginx takes a request header line of up to 8 KB
# (deploy/nginx/agent-ui.conf, large_client_header_buffers): "Authorization: Bearer "
# and the token must fit, or every search with it is refused before it reaches anything.
MAX_TOKEN_CHARS: Final = 8000


@dataclass(frozen=True)
class Scope:
    """What a scoped credential may see: one instance's chats, those carrying any of
    ``labels``, or both (ANDed); and the messages of those chats."""

    instance_id: str | None = None
    labels: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.instance_id is not None or bool(self.labels)

    def filter(self) -> str:
        """The search rule's filter (filters.py quotes every name: nothing in a label can
        end its string or add a clause)."""
        clauses = [instance_id_is(self.instance_id)] if self.instance_id is not None else []
        if self.labels:
            clauses.append(labels_any(self.labels))
        return " AND ".join(clauses)

    def describe(self) -> str:
        """``instance ABC; labels "VIP", "Billing, EU"`` (labels JSON-quoted: a
        name may hold a comma or a quote)."""
        parts = [f"instance {self.instance_id}"] if self.instance_id is not None else []
        if self.labels:
            names = ", ".join(json.dumps(n, ensure_ascii=False) for n in self.labels)
            parts.append(f"label{'s' * (len(self.labels) > 1)} {names}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "labels": list(self.labels)}

    @classmethod
    def from_key(cls, key: dict[str, Any]) -> Scope | None:
        """The scope a key of ours was made for (None: it sees both indexes whole). Keys
        from before scopes had labels say their instance in the description only."""
        name = key.get("name") or ""
        if name.startswith(SCOPE_NAME):
            try:
                data = json.loads(name.removeprefix(SCOPE_NAME))
                return cls(data.get("instance_id"), tuple(data.get("labels") or ()))
            except (ValueError, AttributeError, TypeError):
                return None
        legacy = description("search", "instance ")
        text = key.get("description") or ""
        if text.startswith(legacy.removesuffix(")")) and text.endswith(")"):
            return cls(text[len(legacy) - 1 : -1])
        return None


def scope_of(instance_id: str | None = None, labels: tuple[str, ...] | list[str] = ()) -> Scope:
    """The scope asked for, checked: a label name is not empty, and at most
    :data:`MAX_LABELS` of them (repeats count once). Raises QueryError naming the option."""
    if instance_id is not None and not instance_id.strip():
        raise QueryError("instance", "cannot be empty")
    unique = tuple(dict.fromkeys(labels))
    if any(not name.strip() for name in unique):
        raise QueryError("only_label", "cannot be empty: name a label, e.g. --only-label VIP")
    if len(unique) > MAX_LABELS:
        raise QueryError(
            "only_label", f"is given {len(unique)} labels; a scope takes at most {MAX_LABELS}"
        )
    return Scope(instance_id, unique)


def description(kind: str, detail: str | None = None) -> str:
    """``WhatsApp Explorer agents (Amira)``: what `keys list` shows and finds keys by."""
    return f"{KEY_PREFIX} {kind}" + (f" ({detail})" if detail else "")


def expiry(days: int | None, now: dt.datetime | None = None) -> dt.datetime | None:
    if days is None:
        return None
    return (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=days)


@dataclass
class NewKey:
    """A key just created: its value is shown once and never stored here."""

    uid: str
    key: str
    description: str
    actions: tuple[str, ...]
    expires_at: dt.datetime | None
    instance_id: str | None = None
    tenant_token: str | None = None
    scope: Scope | None = None

    @property
    def secret(self) -> str:
        """What to hand over: the tenant token when there is one, else the key."""
        return self.tenant_token or self.key

    def summary(self) -> str:
        return self.secret

    def to_json(self) -> dict[str, Any]:
        """Never a scoped token's parent key: it sees what the token's rules hide."""
        return {
            "uid": self.uid,
            "key": None if self.scope else self.key,
            "description": self.description,
            "actions": list(self.actions),
            "expiresAt": _iso(self.expires_at),
            "instance_id": self.instance_id,
            "tenant_token": self.tenant_token,
            "scope": self.scope.to_json() if self.scope else None,
        }


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def key_indexes(settings: MeiliSettings) -> list[str]:
    """What every key made here covers: the chats index and its messages index, by name."""
    return [settings.index, messages_index(settings.index)]


def create_key(
    settings: MeiliSettings,
    actions: tuple[str, ...] | list[str],
    description: str,
    expires_at: dt.datetime | None,
    *,
    name: str | None = None,
) -> NewKey:
    """Create a key on the live chats index and its messages index only."""
    body = {
        "name": name,
        "description": description,
        "actions": list(actions),
        "indexes": key_indexes(settings),
        "expiresAt": _iso(expires_at),
    }
    with RawHttp(settings) as http:
        reply = http.json("POST", "/keys", body)
    return NewKey(str(reply["uid"]), str(reply["key"]), description, tuple(actions), expires_at)


def create_scoped(
    settings: MeiliSettings,
    actions: tuple[str, ...],
    kind: str,
    detail: str | None,
    scope: Scope,
    expires_at: dt.datetime | None,
) -> NewKey:
    """A key of its own for ``scope``, and the tenant token signed with it.

    The token's size is checked before the key is made: one that the door's nginx would
    refuse is no credential (:data:`MAX_TOKEN_CHARS`)."""
    size = len(tenant_token(settings, "00000000-0000-4000-8000-000000000000", "0" * 64,
                            scope, expires_at))  # fmt: skip
    if size > MAX_TOKEN_CHARS:
        raise QueryError(
            "only_label",
            f"names too much: the token would be {size:,} characters, and the doors take a "
            f"key of at most {MAX_TOKEN_CHARS:,} (a request header line); name fewer or "
            "shorter labels",
        )
    text = description(kind, detail) + f" scope: {scope.describe()}"
    name = SCOPE_NAME + json.dumps(scope.to_json(), ensure_ascii=False)
    new = create_key(settings, actions, text, expires_at, name=name)
    new.scope = scope
    new.instance_id = scope.instance_id
    new.tenant_token = tenant_token(settings, new.uid, new.key, scope, expires_at)
    return new


def create_agent_key(
    settings: MeiliSettings,
    *,
    label: str | None = None,
    expires_in_days: int | None = None,
    scope: Scope | None = None,
    configured: tuple[str, ...] = (),
    force: bool = False,
) -> NewKey:
    """A key for support agents: the agent page and the Meilisearch web UI. With a
    ``scope``, a tenant token for the agent page (the web UI takes keys only)."""
    if not scope:
        return create_key(
            settings, AGENT_ACTIONS, description("agents", label), expiry(expires_in_days)
        )
    scope = check_scope(settings, scope, configured=configured, force=force)
    return create_scoped(settings, AGENT_ACTIONS, "agents", label, scope, expiry(expires_in_days))


def create_search_key(
    settings: MeiliSettings,
    *,
    instance_id: str | None = None,
    expires_in_days: int | None = None,
    force: bool = False,
    labels: tuple[str, ...] = (),
    configured: tuple[str, ...] = (),
) -> NewKey:
    """A search-only key; with an instance or labels, a tenant token that only sees them."""
    scope = scope_of(instance_id, labels)
    if not scope:
        return create_key(settings, SEARCH_ACTIONS, description("search"), expiry(expires_in_days))
    scope = check_scope(settings, scope, configured=configured, force=force)
    return create_scoped(settings, SEARCH_ACTIONS, "search", None, scope, expiry(expires_in_days))


def check_scope(
    settings: MeiliSettings, scope: Scope, *, configured: tuple[str, ...] = (), force: bool = False
) -> Scope:
    """The scope with its instance named by id, once it is seen to select something.

    An instance is configured (``configured``) or has chats in the index, and may be named
    by its label; each label is on some chat (of the instance, if one is named). Anything
    else is a QueryError naming what is known, unless ``force``: a typo would mint a token
    that sees nothing, silently."""
    if force:
        return scope
    with Searcher(settings) as searcher:
        known = searcher.known_instances()
    instance_id = scope.instance_id
    if instance_id is not None and instance_id not in known and instance_id not in configured:
        by_label = [i for i, label in known.items() if label == instance_id]
        if len(by_label) != 1:
            listed = ", ".join(
                f"{i} ({label})" if label else i
                for i, label in sorted({**dict.fromkeys(configured), **known}.items())
            )
            raise QueryError(
                "instance",
                f"{instance_id!r} is neither a configured instance nor one with chats in index "
                f"{settings.index!r} (known: {listed or 'none'}); --force mints it anyway",
            )
        instance_id = by_label[0]
    unused = unused_labels(settings, scope.labels, instance_id)
    if unused:
        where = f"instance {instance_id}" if instance_id else f"index {settings.index!r}"
        names = ", ".join(json.dumps(n, ensure_ascii=False) for n in unused[:5])
        more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
        raise QueryError(
            "only_label", f"{names}{more}: no chat of {where} carries it; --force mints it anyway"
        )
    return Scope(instance_id, scope.labels)


def unused_labels(
    settings: MeiliSettings, labels: tuple[str, ...], instance_id: str | None
) -> list[str]:
    """The labels no chat carries (within the instance, if given): one multi-search."""
    if not labels:
        return []
    base = [instance_id_is(instance_id)] if instance_id is not None else []
    queries = [{"indexUid": settings.index, "q": "", "limit": 0,
                "filter": [*base, labels_any([name])]} for name in labels]  # fmt: skip
    with RawHttp(settings) as http:
        reply = http.request("POST", "/multi-search", dumps({"queries": queries}))
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.status >= 400:
        if body.get("code") == "invalid_search_filter":
            raise QueryError(
                "only_label",
                f"cannot be used yet: index {settings.index!r} does not filter on labels "
                "(it was built before them); run `explorer reindex` first",
            )
        raise error(settings.url, status=reply.status, code=body.get("code"),
                    message=str(body.get("message") or reply.status))  # fmt: skip
    results = body.get("results") or []
    return [name for name, r in zip(labels, results, strict=False)
            if not r.get("estimatedTotalHits")]  # fmt: skip


def tenant_token(
    settings: MeiliSettings,
    key_uid: str,
    key: str,
    scope: Scope | str,
    expires_at: dt.datetime | None,
) -> str:
    """A JWT signed with a key whose searches always carry the scope's filter, in the
    chats index and its messages index alike (``scope``: a Scope, or an instance id)."""
    if isinstance(scope, str):
        scope = Scope(scope)
    rule = {"filter": scope.filter()}
    rules = {index: rule for index in key_indexes(settings)}
    token: str = Meili(settings).ask(  # signed here: no request is sent
        lambda c: c.generate_tenant_token(key_uid, rules, api_key=key, expires_at=expires_at)
    )
    return token


def token_key_uid(token: str) -> str | None:
    """The uid of the key that signed a tenant token (its ``apiKeyUid`` claim), read
    without checking the signature: only to find the key, which must be ours anyway."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    uid = claims.get("apiKeyUid") if isinstance(claims, dict) else None
    return uid if isinstance(uid, str) else None


@dataclass
class KeyList:
    """The keys this tool created (``explorer keys list``)."""

    keys: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if not self.keys:
            return "no WhatsApp Explorer keys"
        return "\n".join(
            f"{k['uid']}  {k['key'][:8]}…  expires {(k.get('expiresAt') or 'never')[:10]:<10}  "
            f"{k.get('description')}"  # a scoped key's says its scope
            for k in self.keys
        )

    def to_json(self) -> list[dict[str, Any]]:
        """Each key as Meilisearch lists it, and ``scope``: what its tenant token sees
        (``{"instance_id", "labels"}``), null for a key that sees both indexes whole."""
        out = []
        for k in self.keys:
            scope = Scope.from_key(k)
            out.append({**{f: k.get(f) for f in LISTED_FIELDS},
                        "scope": scope.to_json() if scope else None})  # fmt: skip
        return out


def all_keys(settings: MeiliSettings) -> list[dict[str, Any]]:
    """Every key on the server, as Meilisearch words it (through the raw call: the
    official client cannot read every ``expiresAt``, see :class:`RawHttp`)."""
    with RawHttp(settings) as http:
        return list(
            pages(lambda limit, offset: http.json("GET", f"/keys?limit={limit}&offset={offset}"))
        )


def list_keys(settings: MeiliSettings) -> KeyList:
    """The keys whose description starts with :data:`KEY_PREFIX`."""
    everything = all_keys(settings)
    return KeyList([k for k in everything if (k.get("description") or "").startswith(KEY_PREFIX)])


def revoke_key(settings: MeiliSettings, key_or_uid: str) -> dict[str, Any]:
    """Delete one of this tool's keys (by value or uid, or a tenant token it signed: its
    parent, which ends the token); refuses any other."""
    mine = {k["uid"]: k for k in list_keys(settings).keys}
    mine.update({k["key"]: k for k in list(mine.values())})
    target = mine.get(key_or_uid) or mine.get(token_key_uid(key_or_uid) or "")
    if target is None:
        raise MeiliError(
            f"no WhatsApp Explorer key {key_or_uid[:8]}… on {settings.url} "
            "(see `explorer keys list`; other keys are not this tool's to revoke)"
        )
    with RawHttp(settings) as http:
        http.json("DELETE", f"/keys/{target['uid']}")
    return target


def admin_key(settings: MeiliSettings) -> str:
    """The server's "Default Admin API Key" (needs the master key): all actions, no keys."""
    for key in all_keys(settings):
        if key.get("name") == "Default Admin API Key":
            return str(key["key"])
    raise MeiliError(f"Meilisearch at {settings.url}: no default admin key found")
