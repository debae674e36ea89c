"""Scoped Meilisearch keys for agents and other tools: every key this tool makes.

Every key this tool creates works on the live index only, and its description starts with
:data:`KEY_PREFIX`: that is how ``explorer keys list`` finds them and why ``revoke`` refuses
any other key (the admin keys, other tools'). Two kinds:

- an **agent** key (:data:`AGENT_ACTIONS`): the smallest the Meilisearch web UI accepts; it
  cannot write, read settings or fetch documents one by one. It is exactly the read-only
  allow-list (:data:`explorer.meili.readonly.READ_ONLY_ACTIONS`) that the MCP server holds keys to;
- a **search** key (``search`` only) for other tools, or a tenant token signed with one
  that only ever sees one instance's chats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from explorer.config import MeiliSettings
from explorer.errors import MeiliError, QueryError
from explorer.meili.client import Meili, RawHttp, pages
from explorer.meili.query import Searcher
from explorer.meili.readonly import READ_ONLY_ACTIONS
from explorer.records.filters import instance_id_is

KEY_PREFIX: Final = "WhatsApp Explorer"
AGENT_ACTIONS: Final = READ_ONLY_ACTIONS
SEARCH_ACTIONS: Final = ("search",)
LISTED_FIELDS: Final = ("uid", "description", "actions", "indexes", "expiresAt", "createdAt")


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

    @property
    def secret(self) -> str:
        """What to hand over: the tenant token when there is one, else the key."""
        return self.tenant_token or self.key

    def summary(self) -> str:
        return self.secret

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "key": self.key,
            "description": self.description,
            "actions": list(self.actions),
            "expiresAt": _iso(self.expires_at),
            "instance_id": self.instance_id,
            "tenant_token": self.tenant_token,
        }


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def create_key(
    settings: MeiliSettings,
    actions: tuple[str, ...] | list[str],
    description: str,
    expires_at: dt.datetime | None,
) -> NewKey:
    """Create a key on the live index only."""
    body = {
        "description": description,
        "actions": list(actions),
        "indexes": [settings.index],
        "expiresAt": _iso(expires_at),
    }
    with RawHttp(settings) as http:
        reply = http.json("POST", "/keys", body)
    return NewKey(str(reply["uid"]), str(reply["key"]), description, tuple(actions), expires_at)


def create_agent_key(
    settings: MeiliSettings, *, label: str | None = None, expires_in_days: int | None = None
) -> NewKey:
    """A key for support agents: the agent page and the Meilisearch web UI."""
    return create_key(
        settings, AGENT_ACTIONS, description("agents", label), expiry(expires_in_days)
    )


def create_search_key(
    settings: MeiliSettings,
    *,
    instance_id: str | None = None,
    expires_in_days: int | None = None,
    force: bool = False,
) -> NewKey:
    """A search-only key; with ``instance_id``, also a tenant token that only sees it.

    An instance with no chats in the index is refused unless ``force``: a typo would mint a
    token that sees nothing.
    """
    if instance_id is not None and not force:
        with Searcher(settings) as searcher:
            known = searcher.known_instances()
        if instance_id not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise QueryError(
                "instance",
                f"{instance_id!r} has no chats in index {settings.index!r} (known: {listed}); "
                "force mints a token for it anyway",
            )
    detail = f"instance {instance_id}" if instance_id else None
    new = create_key(
        settings, SEARCH_ACTIONS, description("search", detail), expiry(expires_in_days)
    )
    if instance_id is not None:
        new.instance_id = instance_id
        new.tenant_token = tenant_token(settings, new.uid, new.key, instance_id, new.expires_at)
    return new


def tenant_token(
    settings: MeiliSettings,
    key_uid: str,
    key: str,
    instance_id: str,
    expires_at: dt.datetime | None,
) -> str:
    """A JWT signed with a search key whose searches always filter to one instance."""
    rules = {settings.index: {"filter": instance_id_is(instance_id)}}
    token: str = Meili(settings).ask(  # signed here: no request is sent
        lambda c: c.generate_tenant_token(key_uid, rules, api_key=key, expires_at=expires_at)
    )
    return token


@dataclass
class KeyList:
    """The keys this tool created (``explorer keys list``)."""

    keys: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if not self.keys:
            return "no WhatsApp Explorer keys"
        return "\n".join(
            f"{k['uid']}  {k['key'][:8]}…  expires {(k.get('expiresAt') or 'never')[:10]:<10}  "
            f"{k.get('description')}"
            for k in self.keys
        )

    def to_json(self) -> list[dict[str, Any]]:
        return [{f: k.get(f) for f in LISTED_FIELDS} for k in self.keys]


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
    """Delete one of this tool's keys (by value or uid); refuses any other."""
    mine = {k["uid"]: k for k in list_keys(settings).keys}
    mine.update({k["key"]: k for k in list(mine.values())})
    target = mine.get(key_or_uid)
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
