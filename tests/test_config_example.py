from __future__ import annotations

import re
from pathlib import Path

from explorer.config import _INSTANCE_KEYS, _SECTIONS, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_config_example_is_valid_and_complete() -> None:
    cfg = load_config(ROOT / "config.example.toml", env={})
    assert [i.id for i in cfg.wawp.instances] == ["ABC123DEF456", "GHI789JKL012"]
    assert cfg.wawp.instances[0].label == "Cairo support"
    text = (ROOT / "config.example.toml").read_text()
    keys = [k for schema in (*_SECTIONS.values(), _INSTANCE_KEYS) for k in schema]
    env = ["WAWP_BASE_URL", "WAWP_ACCESS_TOKEN", "WAWP_INSTANCE_ID", "MEILI_URL", "MEILI_API_KEY"]
    for key in [*keys, *env, "EXPLORER_INDEX", "EXPLORER_AUDIT_ALLOWED_FILE"]:
        assert re.search(rf"\b{key}\b", text), f"{key} is not documented in config.example.toml"


def test_config_example_allow_lists_are_valid() -> None:
    from explorer.jobs.housekeeping import load_allow_list

    cfg = load_config(ROOT / "config.example.toml", env={})
    assert load_allow_list(cfg.audit).patterns == ("Support *",)
    sales = cfg.audit_for(cfg.wawp.instances[1])
    assert load_allow_list(sales).jids == frozenset({"120363012345678901@g.us"})
