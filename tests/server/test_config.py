"""Configuration: YAML, ${ENV} substitution, errors that name the bad key, the default."""

from __future__ import annotations

import pytest
from portico_server.app import Gateway
from portico_server.config import ConfigError, load_config


def write(tmp_path, text: str):
    path = tmp_path / "portico.yaml"
    path.write_text(text)
    return path


def test_env_substitution_and_defaults(tmp_path):
    path = write(tmp_path, """
server:
  address: "${HOST:-127.0.0.1}:6000"
providers:
  - name: fake
    kind: fake
    api_key: ${FAKE_KEY}
    models: [m]
""")
    config = load_config(path, environ={"FAKE_KEY": "sk-123"})
    assert config.server.address == "127.0.0.1:6000"
    assert config.providers[0].api_key.get_secret_value() == "sk-123"
    assert "sk-123" not in repr(config)  # secrets do not print


def test_missing_env_var_names_the_key(tmp_path):
    path = write(tmp_path, "providers:\n  - {name: openai, kind: fake, api_key: '${OPENAI_KEY}'}\n")
    with pytest.raises(ConfigError, match=r"providers\[0\]\.api_key: environment variable OPENAI_KEY is not set"):
        load_config(path, environ={})


@pytest.mark.parametrize(("text", "named"), [
    ("server: {adress: ':1'}\n", "server.adress"),
    ("server: {max_message_bytes: -1}\n", "server.max_message_bytes"),
    ("providers:\n  - {name: a, kind: fake, timeout: 0}\n", "providers[0].timeout"),
    ("providers:\n  - {kind: fake}\n", "providers[0].name"),
    ("providers:\n  - {name: a, kind: fake}\n  - {name: a, kind: fake}\n", "used twice"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("server: [unclosed\n", "not valid YAML"),
])
def test_a_wrong_file_names_the_bad_key(tmp_path, text, named):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert named in str(info.value)
    assert str(tmp_path / "portico.yaml") in str(info.value)


@pytest.mark.parametrize(("provider", "named"), [
    ("{name: a, kind: nosuchkind}", "unknown provider kind 'nosuchkind'"),
    ("{name: a, kind: fake, options: {chunk_size: 0}}", "providers[0].options.chunk_size"),
    ("{name: a, kind: fake, options: {colour: blue}}", "providers[0].options.colour"),
])
def test_bad_provider_kind_or_options_fail_at_start_up(tmp_path, provider, named):
    config = load_config(write(tmp_path, f"providers:\n  - {provider}\n"), environ={})
    with pytest.raises(ConfigError) as info:
        Gateway(config)
    assert named in str(info.value)


def test_alias_to_an_unknown_provider_is_refused(tmp_path):
    config = load_config(write(tmp_path, "providers: [{name: a, kind: fake}]\naliases: {fast: b/model}\n"), environ={})
    with pytest.raises(ConfigError, match=r"aliases\.fast"):
        Gateway(config)


def test_embedded_default_is_the_fake_provider():
    config = load_config(None, environ={})
    assert [(p.name, p.kind) for p in config.providers] == [("fake", "fake")]
    assert config.server.address == "127.0.0.1:50051"
