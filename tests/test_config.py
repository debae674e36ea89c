from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import load_config
from explorer.errors import ConfigError

FULL = """
[wawp]
base_url = "https://wawp.example.test"
access_token = "file-token-aaaaaaaaaaaaaaaa"
timeout = 12
page_size = 50
concurrency = 3

[[wawp.instances]]
id = "AAA111BBB222"
label = "Cairo support"

[[wawp.instances]]
id = "CCC333DDD444"
access_token = "own-token-bbbbbbbbbbbbbbbbb"

[meilisearch]
url = "http://meili.example.test:7700"
api_key = "meili-file-key-cccccccccccc"
index = "file_chats"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_config() -> None:
    cfg = load_config(env={})
    assert cfg.wawp.base_url == "https://api.wawp.net"
    assert cfg.meilisearch.url == "http://127.0.0.1:7700"
    assert cfg.meilisearch.index == "chats"
    assert cfg.wawp.instances == ()


def test_file_values_are_read(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.toml", FULL), env={})
    assert cfg.wawp.base_url == "https://wawp.example.test"
    assert [i.id for i in cfg.wawp.instances] == ["AAA111BBB222", "CCC333DDD444"]
    assert cfg.wawp.instances[0].label == "Cairo support"
    assert cfg.token_for(cfg.wawp.instances[0]).reveal() == "file-token-aaaaaaaaaaaaaaaa"
    assert cfg.token_for(cfg.wawp.instances[1]).reveal() == "own-token-bbbbbbbbbbbbbbbbb"
    assert cfg.wawp.timeout == 12 and cfg.wawp.page_size == 50 and cfg.wawp.concurrency == 3
    assert cfg.meilisearch.index == "file_chats"


def test_env_beats_file_and_flag_beats_env(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL)
    env = {
        "WAWP_BASE_URL": "https://env.example.test",
        "WAWP_ACCESS_TOKEN": "env-token-dddddddddddddddd",
        "WAWP_INSTANCE_ID": "CCC333DDD444, EEE555FFF666",
        "MEILI_URL": "http://env-meili:7700",
        "MEILI_API_KEY": "env-meili-key",
        "EXPLORER_INDEX": "env_chats",
    }
    cfg = load_config(path, env=env)
    assert cfg.wawp.base_url == "https://env.example.test"
    assert [i.id for i in cfg.wawp.instances] == ["CCC333DDD444", "EEE555FFF666"]
    # an instance named by env keeps the token the file gave it; others use the shared one
    assert cfg.token_for(cfg.wawp.instances[0]).reveal() == "own-token-bbbbbbbbbbbbbbbbb"
    assert cfg.token_for(cfg.wawp.instances[1]).reveal() == "env-token-dddddddddddddddd"
    assert cfg.meilisearch.url == "http://env-meili:7700"
    assert cfg.meilisearch.api_key is not None
    assert cfg.meilisearch.api_key.reveal() == "env-meili-key"
    assert cfg.meilisearch.index == "env_chats"

    flags = {
        "base_url": "https://flag.example.test",
        "instances": ("GGG777",),
        "meili_url": "http://flag-meili:7700",
        "index": "flag_chats",
    }
    cfg = load_config(path, env=env, overrides=flags)
    assert cfg.wawp.base_url == "https://flag.example.test"
    assert [i.id for i in cfg.wawp.instances] == ["GGG777"]
    assert cfg.meilisearch.url == "http://flag-meili:7700"
    assert cfg.meilisearch.index == "flag_chats"


def test_unset_flags_do_not_mask_env() -> None:
    cfg = load_config(
        env={"EXPLORER_INDEX": "from_env"}, overrides={"index": None, "instances": ()}
    )
    assert cfg.meilisearch.index == "from_env"


def test_config_file_discovery_order(tmp_path: Path, isolated_env: Path) -> None:
    write(isolated_env / "explorer.toml", '[meilisearch]\nindex = "cwd_file"\n')
    assert load_config(env={}).meilisearch.index == "cwd_file"
    other = write(tmp_path / "env.toml", '[meilisearch]\nindex = "env_file"\n')
    assert load_config(env={"EXPLORER_CONFIG": str(other)}).meilisearch.index == "env_file"
    flag = write(tmp_path / "flag.toml", '[meilisearch]\nindex = "flag_file"\n')
    cfg = load_config(flag, env={"EXPLORER_CONFIG": str(other)})
    assert cfg.meilisearch.index == "flag_file"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[wawp\nbase_url = 1", "invalid TOML"),
        ('[wawp]\nbase_ur = "https://x"\n', "unknown key 'wawp.base_ur'"),
        ('[meili]\nurl = "http://x"\n', "unknown section 'meili'"),
        ('[wawp]\ntimeout = "fast"\n', "'wawp.timeout' must be a number, got str"),
        ("[wawp]\npage_size = true\n", "'wawp.page_size' must be an integer, got bool"),
        ('[wawp]\ninstances = "abc"\n', "'wawp.instances' must be an array"),
        ('[[wawp.instances]]\nlabel = "x"\n', "'wawp.instances[0].id' is required"),
        ('[[wawp.instances]]\nid = "A"\ntoken = "x"\n', "unknown key 'wawp.instances[0].token'"),
        ('[meilisearch]\nurl = "localhost:7700"\n', "'meilisearch.url' is not an http(s) URL"),
        ('[wawp]\nbase_url = "http://host:99999"\n', "'wawp.base_url' has an invalid port"),
        ("[wawp]\nconcurrency = 0\n", "'wawp.concurrency' must be > 0"),
        ('[meilisearch]\nindex = "bad name"\n', "'meilisearch.index' must use only"),
        ("[reindex]\nmin_ratio = 1.5\n", "'reindex.min_ratio' must be between 0 and 1"),
        ('[webhooks]\nhmac_key = "my-secret-key"\n', "'webhooks.hmac_key' must be a long random"),
        ('[webhooks]\nsecret = "short"\n', "'webhooks.secret' must be a long random"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert needle in str(exc.value)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bad_env_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MEILI_URL"):
        load_config(env={"MEILI_URL": "ftp://nope"})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml", env={})


def test_missing_token_names_the_instance(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.toml", '[[wawp.instances]]\nid = "NOTOKEN1"\n'), env={})
    with pytest.raises(ConfigError, match="no access token for Wawp instance 'NOTOKEN1'"):
        cfg.require_instances()


def test_no_instance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no Wawp instance configured"):
        load_config(env={}).require_instances()


def test_secrets_are_masked_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.toml", FULL), env={"MEILI_API_KEY": "env-meili-key-x"})
    text = repr(cfg) + str(cfg)
    for secret in ("file-token-aaaa", "own-token-bbbb", "env-meili-key-x"):
        assert secret not in text
    assert "***" in text


@pytest.mark.parametrize(
    "text",
    ["[wawp\n", "[wawp]\nnope = 1\n", '[meilisearch]\nurl = "nope"\n'],
)
def test_cli_reports_bad_config_in_one_line_with_exit_2(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(path) in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("token", ["tok-123\n", "tok\r\nX-Evil: 1", "tok\x07", "tok✓"])
def test_cli_a_token_that_cannot_travel_in_a_header_is_exit_2_without_the_token(token: str) -> None:
    env = {"WAWP_INSTANCE_ID": "ABC", "WAWP_ACCESS_TOKEN": token}
    result = CliRunner().invoke(cli, ["check"], env=env)
    assert result.exit_code == 2
    assert "the access token for Wawp instance 'ABC' holds a line break" in result.output
    assert token.strip() not in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_missing_token_is_exit_2() -> None:
    result = CliRunner().invoke(cli, ["check"], env={"WAWP_INSTANCE_ID": "ABC"})
    assert result.exit_code == 2
    assert "no access token for Wawp instance 'ABC'" in result.output


def test_a_bad_index_is_blamed_on_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^environment: EXPLORER_INDEX must use only"):
        load_config(env={"EXPLORER_INDEX": "bad name"})
    with pytest.raises(ConfigError, match="^command line: --index must use only"):
        load_config(env={}, overrides={"index": "bad/name"})
    path = tmp_path / "x.toml"
    path.write_text('[meilisearch]\nindex = "ok"\n')
    assert load_config(path, env={}).meilisearch.index == "ok"


def test_an_empty_instance_id_names_the_flag_or_the_variable() -> None:
    with pytest.raises(ConfigError, match="^command line: --instance has an empty"):
        load_config(env={}, overrides={"instances": ("A1", " ")})
    with pytest.raises(ConfigError, match="^environment: WAWP_INSTANCE_ID has an empty"):
        load_config(env={"WAWP_INSTANCE_ID": "A1,,B2"})


def test_a_bad_reindex_at_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["schedule", "--reindex-at", "25:99"])
    assert result.exit_code == 2 and "--reindex-at" in result.output
    assert "HH:MM" in result.output
