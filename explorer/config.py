"""Configuration: CLI flag > environment variable > TOML file > default.

The file is ``--config PATH``, else ``$EXPLORER_CONFIG``, else ``./explorer.toml`` when it
exists. Every problem becomes a :class:`ConfigError` whose one line names the key and where
it came from, because cron operators read nothing but that line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from explorer.errors import ConfigError
from explorer.secrets import Secret

MIN_WEBHOOK_SECRET = 16  # characters of webhooks.hmac_key and webhooks.secret: guessable below

DEFAULT_WAWP_URL = "https://api.wawp.net"
DEFAULT_MEILI_URL = "http://127.0.0.1:7700"
DEFAULT_INDEX = "chats"
DEFAULT_FILE = "explorer.toml"


@dataclass(frozen=True)
class AuditSettings:
    """Which groups an instance's account is meant to be in (`explorer audit`).

    ``allowed_groups`` holds group JIDs and shell-style patterns over group names
    (``"Support *"``); ``allowed_groups_file`` a file of JIDs, one per line. The file is
    read when the audit runs, so a bad file fails the audit, not every command.
    """

    allowed_groups: tuple[str, ...] = ()
    allowed_groups_file: str | None = None
    source: str = "defaults"


@dataclass(frozen=True)
class Instance:
    id: str
    label: str | None = None
    access_token: Secret | None = None
    audit: AuditSettings | None = None  # replaces the global [audit] for this instance


@dataclass(frozen=True)
class WawpSettings:
    base_url: str = DEFAULT_WAWP_URL
    access_token: Secret | None = None
    instances: tuple[Instance, ...] = ()
    timeout: float = 30.0
    page_size: int = 100
    concurrency: int = 4  # requests in flight for one instance
    total_concurrency: int | None = None  # across every instance (default: concurrency)
    adaptive: bool = True  # back off on 429s and slow replies, then recover (explorer.source.pace)
    warmup_seconds: float = 60.0
    retry_budget_seconds: float = 300.0
    overlap: int = 5


@dataclass(frozen=True)
class MeiliSettings:
    url: str = DEFAULT_MEILI_URL
    api_key: Secret | None = None
    index: str = DEFAULT_INDEX


@dataclass(frozen=True)
class ReindexSettings:
    min_ratio: float = 0.5
    batch_size: int = 5000
    state_dir: str | None = None


@dataclass(frozen=True)
class WebhookSettings:
    """`explorer listen` (docs/webhooks.md): how senders prove themselves, and its bounds."""

    hmac_key: Secret | None = None  # WAHA's X-Webhook-Hmac (HMAC-SHA512 of the raw body)
    secret: Secret | None = None  # or /webhooks/wawp/<secret>, for senders that cannot sign
    max_body: int = 1024 * 1024  # bytes; larger requests get 413
    max_queue: int = 100_000  # events waiting for Meilisearch; past it, 503


@dataclass(frozen=True)
class MessagesSettings:
    """Message text in its own index (docs/messages.md): opt-in, because it is personal data.

    ``retention_days`` is both how far back the first backfill reads and how long a
    message is kept.
    """

    enabled: bool = False
    retention_days: int = 90


@dataclass(frozen=True)
class Config:
    wawp: WawpSettings = field(default_factory=WawpSettings)
    meilisearch: MeiliSettings = field(default_factory=MeiliSettings)
    reindex: ReindexSettings = field(default_factory=ReindexSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    messages: MessagesSettings = field(default_factory=MessagesSettings)
    source: str = "the config file (--config, EXPLORER_CONFIG or ./explorer.toml)"

    def audit_for(self, instance: Instance) -> AuditSettings:
        return instance.audit or self.audit

    def token_for(self, instance: Instance) -> Secret:
        """The instance's own token, else the shared one; missing is a config error."""
        token = instance.access_token or self.wawp.access_token
        if not token:
            raise ConfigError(
                f"no access token for Wawp instance {instance.id!r}: set WAWP_ACCESS_TOKEN, "
                f"or access_token under [wawp] or that instance in {self.source}"
            )
        if any(ord(ch) < 32 or ord(ch) == 127 or ord(ch) > 255 for ch in token.reveal()):
            # It travels in a header line and a query: a line break would split the header.
            raise ConfigError(
                f"the access token for Wawp instance {instance.id!r} holds a line break, a "
                "control character or a character beyond Latin-1 (a bad copy and paste?); "
                f"check WAWP_ACCESS_TOKEN or access_token in {self.source}"
            )
        return token

    def require_instances(self) -> tuple[Instance, ...]:
        if not self.wawp.instances:
            raise ConfigError(
                "no Wawp instance configured: set WAWP_INSTANCE_ID or add "
                f"[[wawp.instances]] to {self.source}"
            )
        for inst in self.wawp.instances:
            self.token_for(inst)
        return self.wawp.instances


# -- schema -------------------------------------------------------------------------------

_WAWP_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_url": str,
    "access_token": str,
    "instances": list,
    "timeout": (int, float),
    "page_size": int,
    "concurrency": int,
    "total_concurrency": int,
    "adaptive": bool,
    "warmup_seconds": (int, float),
    "retry_budget_seconds": (int, float),
    "overlap": int,
}
_INSTANCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "label": str,
    "access_token": str,
    "audit": dict,
}
_AUDIT_KEYS: dict[str, type | tuple[type, ...]] = {
    "allowed_groups": list,
    "allowed_groups_file": str,
}
_MEILI_KEYS: dict[str, type | tuple[type, ...]] = {"url": str, "api_key": str, "index": str}
_REINDEX_KEYS: dict[str, type | tuple[type, ...]] = {
    "min_ratio": (int, float),
    "batch_size": int,
    "state_dir": str,
}
_WEBHOOK_KEYS: dict[str, type | tuple[type, ...]] = {
    "hmac_key": str,
    "secret": str,
    "max_body": int,
    "max_queue": int,
}
_MESSAGES_KEYS: dict[str, type | tuple[type, ...]] = {"enabled": bool, "retention_days": int}
_SECTIONS = {
    "wawp": _WAWP_KEYS,
    "meilisearch": _MEILI_KEYS,
    "reindex": _REINDEX_KEYS,
    "audit": _AUDIT_KEYS,
    "webhooks": _WEBHOOK_KEYS,
    "messages": _MESSAGES_KEYS,
}
_TYPE_NAMES = {
    bool: "true or false",
    str: "a string",
    int: "an integer",
    list: "an array",
    float: "a number",
    dict: "a table",
}


def _type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return "a number"
    return _TYPE_NAMES.get(expected, expected.__name__)


def _check_table(
    table: Mapping[str, Any], schema: Mapping[str, type | tuple[type, ...]], prefix: str, src: str
) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            raise ConfigError(f"{src}: unknown key {name!r} (allowed: {allowed})")
        expected = schema[key]
        # bool is an int subclass; a boolean is never a valid count or duration here.
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ConfigError(
                f"{src}: {name!r} must be {_type_name(expected)}, got {type(value).__name__}"
            )


def _check_url(value: str, key: str, src: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{src}: {key!r} is not an http(s) URL: {value!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"{src}: {key!r} has an invalid port: {value!r}") from None
    return value.rstrip("/")


def _check_index(value: str, key: str, src: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value) or len(value) > 400:
        raise ConfigError(f"{src}: {key} must use only letters, digits, '-' and '_': {value!r}")
    return value


def _positive(value: float, key: str, src: str, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{src}: {key!r} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def find_config_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        return Path(path)
    if env.get("EXPLORER_CONFIG"):
        return Path(env["EXPLORER_CONFIG"])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _from_file(data: Mapping[str, Any], src: str) -> Config:
    for section, value in data.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"{src}: unknown section {section!r} (allowed: {', '.join(sorted(_SECTIONS))})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: {section!r} must be a table, got {type(value).__name__}")
        _check_table(value, _SECTIONS[section], f"{section}.", src)

    w = dict(data.get("wawp", {}))
    instances: list[Instance] = []
    seen: set[str] = set()
    for n, raw in enumerate(w.pop("instances", [])):
        key = f"wawp.instances[{n}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{src}: {key!r} must be a table, got {type(raw).__name__}")
        _check_table(raw, _INSTANCE_KEYS, f"{key}.", src)
        if not raw.get("id"):
            raise ConfigError(f"{src}: {key + '.id'!r} is required")
        if raw["id"] in seen:
            raise ConfigError(f"{src}: {key + '.id'!r} repeats instance {raw['id']!r}")
        seen.add(raw["id"])
        token = raw.get("access_token")
        audit = _audit(raw["audit"], f"{key}.audit.", src) if "audit" in raw else None
        instances.append(
            Instance(raw["id"], raw.get("label") or None, Secret(token) if token else None, audit)
        )
    token = w.pop("access_token", None)
    wawp = WawpSettings(
        **w, instances=tuple(instances), access_token=Secret(token) if token else None
    )
    m = dict(data.get("meilisearch", {}))
    key = m.pop("api_key", None)
    if "index" in m:
        _check_index(m["index"], "'meilisearch.index'", src)
    meili = MeiliSettings(**m, api_key=Secret(key) if key else None)
    reindex = ReindexSettings(**data.get("reindex", {}))
    audit = _audit(data["audit"], "audit.", src) if "audit" in data else AuditSettings()
    hooks = dict(data.get("webhooks", {}))
    hooks.update({k: Secret(hooks[k]) for k in ("hmac_key", "secret") if hooks.get(k)})
    webhooks = WebhookSettings(**hooks)
    messages = MessagesSettings(**data.get("messages", {}))
    return Config(
        wawp=wawp,
        meilisearch=meili,
        reindex=reindex,
        audit=audit,
        webhooks=webhooks,
        messages=messages,
        source=src,
    )


def _audit(table: Mapping[str, Any], prefix: str, src: str) -> AuditSettings:
    _check_table(table, _AUDIT_KEYS, prefix, src)
    allowed = table.get("allowed_groups", [])
    for n, item in enumerate(allowed):
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"{src}: '{prefix}allowed_groups[{n}]' must be a group JID or a name pattern, "
                f"got {item!r}"
            )
    file = table.get("allowed_groups_file")
    if file is not None and not Path(file).is_absolute():
        file = str(Path(src).parent / file)  # relative to the config file, as people expect
    return AuditSettings(tuple(a.strip() for a in allowed), file, f"{src} ({prefix[:-1]})")


def _apply_env(cfg: Config, env: Mapping[str, str]) -> Config:
    wawp, meili = cfg.wawp, cfg.meilisearch
    if env.get("WAWP_BASE_URL"):
        wawp = replace(
            wawp, base_url=_check_url(env["WAWP_BASE_URL"], "WAWP_BASE_URL", "environment")
        )
    if env.get("WAWP_ACCESS_TOKEN"):
        wawp = replace(wawp, access_token=Secret(env["WAWP_ACCESS_TOKEN"]))
    if env.get("WAWP_INSTANCE_ID"):
        wawp = replace(
            wawp,
            instances=_merge_ids(
                env["WAWP_INSTANCE_ID"], wawp.instances, "WAWP_INSTANCE_ID", "environment"
            ),
        )
    if env.get("MEILI_URL"):
        meili = replace(meili, url=_check_url(env["MEILI_URL"], "MEILI_URL", "environment"))
    if env.get("MEILI_API_KEY"):
        meili = replace(meili, api_key=Secret(env["MEILI_API_KEY"]))
    if env.get("EXPLORER_AUDIT_ALLOWED_FILE"):
        audit = replace(
            cfg.audit,
            allowed_groups_file=env["EXPLORER_AUDIT_ALLOWED_FILE"],
            source="environment (EXPLORER_AUDIT_ALLOWED_FILE)",
        )
        cfg = replace(cfg, audit=audit)
    if env.get("EXPLORER_INDEX"):
        meili = replace(
            meili, index=_check_index(env["EXPLORER_INDEX"], "EXPLORER_INDEX", "environment")
        )
    hooks = cfg.webhooks
    for var, key in (
        ("EXPLORER_WEBHOOK_HMAC_KEY", "hmac_key"),
        ("EXPLORER_WEBHOOK_SECRET", "secret"),
    ):
        if env.get(var):
            hooks = replace(hooks, **{key: Secret(env[var])})  # type: ignore[arg-type]
    messages = cfg.messages
    if env.get("EXPLORER_MESSAGES"):
        messages = replace(
            messages, enabled=_env_bool(env["EXPLORER_MESSAGES"], "EXPLORER_MESSAGES")
        )
    if env.get("EXPLORER_MESSAGES_RETENTION_DAYS"):
        raw = env["EXPLORER_MESSAGES_RETENTION_DAYS"].strip()
        if not raw.isascii() or not raw.isdigit():
            raise ConfigError(
                f"environment: EXPLORER_MESSAGES_RETENTION_DAYS must be a whole number of days, "
                f"got {raw!r}"
            )
        messages = replace(messages, retention_days=int(raw))
    return replace(cfg, wawp=wawp, meilisearch=meili, webhooks=hooks, messages=messages)


_TRUE: Final = ("1", "true", "on", "yes")
_FALSE: Final = ("0", "false", "off", "no")


def _env_bool(value: str, var: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"environment: {var} must be 1/true/on or 0/false/off, got {value!r}")


def _merge_ids(
    raw: str | list[str], known: tuple[Instance, ...], key: str, src: str
) -> tuple[Instance, ...]:
    """Instances named by env/flag win, but keep the label and token the file gave them."""
    ids = [i.strip() for i in (raw.split(",") if isinstance(raw, str) else raw)]
    if not all(ids):
        raise ConfigError(f"{src}: {key} has an empty instance id: {raw!r}")
    by_id = {i.id: i for i in known}
    return tuple(by_id.get(i, Instance(i)) for i in dict.fromkeys(ids))


def _validate(cfg: Config) -> Config:
    src = cfg.source
    w, m, r = cfg.wawp, cfg.meilisearch, cfg.reindex
    wawp = replace(w, base_url=_check_url(w.base_url, "wawp.base_url", src))
    meili = replace(m, url=_check_url(m.url, "meilisearch.url", src))
    _positive(w.timeout, "wawp.timeout", src)
    _positive(w.page_size, "wawp.page_size", src)
    _positive(w.concurrency, "wawp.concurrency", src)
    if w.total_concurrency is not None:
        _positive(w.total_concurrency, "wawp.total_concurrency", src)
    _positive(w.warmup_seconds, "wawp.warmup_seconds", src, allow_zero=True)
    _positive(w.retry_budget_seconds, "wawp.retry_budget_seconds", src, allow_zero=True)
    _positive(w.overlap, "wawp.overlap", src, allow_zero=True)
    _positive(r.batch_size, "reindex.batch_size", src)
    if w.overlap >= w.page_size:
        raise ConfigError(f"{src}: 'wawp.overlap' must be smaller than 'wawp.page_size'")
    _positive(cfg.webhooks.max_body, "webhooks.max_body", src)
    _positive(cfg.webhooks.max_queue, "webhooks.max_queue", src)
    for name in ("hmac_key", "secret"):
        value = getattr(cfg.webhooks, name)
        if value and len(value.reveal()) < MIN_WEBHOOK_SECRET:
            raise ConfigError(
                f"{src}: 'webhooks.{name}' must be a long random string "
                f"({MIN_WEBHOOK_SECRET}+ characters)"
            )
    _positive(cfg.messages.retention_days, "messages.retention_days", src)
    if not 0 <= r.min_ratio <= 1:
        raise ConfigError(f"{src}: 'reindex.min_ratio' must be between 0 and 1, got {r.min_ratio}")
    return replace(cfg, wawp=wawp, meilisearch=meili)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration.

    ``overrides`` holds CLI flags (``base_url``, ``instances``, ``meili_url``, ``index``);
    ``None`` values are ignored so click defaults never mask the environment.
    """
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    cfg = _from_file(read_toml(file), str(file)) if file else Config()
    cfg = _apply_env(cfg, env)
    o = {k: v for k, v in (overrides or {}).items() if v not in (None, (), [])}
    wawp, meili = cfg.wawp, cfg.meilisearch
    if "base_url" in o:
        wawp = replace(wawp, base_url=_check_url(o["base_url"], "--base-url", "command line"))
    if "instances" in o:
        wawp = replace(
            wawp,
            instances=_merge_ids(
                list(o["instances"]), wawp.instances, "--instance", "command line"
            ),
        )
    if "meili_url" in o:
        meili = replace(meili, url=_check_url(o["meili_url"], "--meili-url", "command line"))
    if "index" in o:
        meili = replace(meili, index=_check_index(o["index"], "--index", "command line"))
    return _validate(replace(cfg, wawp=wawp, meilisearch=meili))
