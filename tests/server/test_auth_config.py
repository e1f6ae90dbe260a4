"""The `auth:` section and `server.require_auth`: clear errors that never show a key,
and `portico keys hash`."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from harness import PORTICO_BIN
from portico_server.config import ConfigError, parse_config

DIGEST = hashlib.sha256(b"pk-config-test-0001").hexdigest()


def auth(**section: object) -> dict[str, object]:
    return {"providers": [{"name": "fake", "kind": "fake"}], "auth": section}


def test_a_key_pasted_where_its_digest_belongs_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match=r"auth\.keys\[0\]\.sha256: .*64 hex digits") as info:
        parse_config(auth(keys=[{"name": "billing", "sha256": "pk-live-do-not-print-me"}]))
    assert "pk-live-do-not-print-me" not in str(info.value)


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "billing", "sha256": DIGEST, "env": "KEY"}, "set sha256 or env, not both"),
    ({"name": "billing"}, "set one of sha256, env or subject"),
    ({"name": "billing", "env": "NOT A NAME"}, "must be the name of an environment variable"),
    ({"name": "has space", "sha256": DIGEST}, "name"),
    ({"name": "billing", "sha256": DIGEST, "budget": {"tokens": 0, "per": "day"}}, "budget.tokens"),
    ({"name": "billing", "sha256": DIGEST, "budget": {"tokens": 10, "per": "week"}}, "budget.per"),
    ({"name": "billing", "sha256": DIGEST, "allow": {"model": ["x"]}}, "allow.model"),
])
def test_a_wrong_key_entry_names_the_key(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(auth(keys=[entry]))


def test_names_are_unique_per_section_and_a_digest_is_stored_lowercase() -> None:
    with pytest.raises(ConfigError, match="the name 'billing' is used twice"):
        parse_config(auth(keys=[{"name": "billing", "sha256": DIGEST}, {"name": "billing", "subject": "CN=b"}]))
    config = parse_config(auth(keys=[{"name": "billing", "sha256": DIGEST.upper()}],
                               admin_keys=[{"name": "billing", "sha256": DIGEST}]))
    assert config.auth.keys[0].sha256 == DIGEST


def test_require_auth_needs_a_caller_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.require_auth is true but auth\.keys is empty"):
        parse_config({"server": {"require_auth": True}, **auth(admin_keys=[{"name": "ops", "sha256": DIGEST}])})
    config = parse_config({"server": {"require_auth": True}, **auth(keys=[{"name": "billing", "sha256": DIGEST}])})
    assert config.server.require_auth and config.auth.open_health and config.auth.open_reflection


def test_keys_hash_prints_the_digest_of_the_key_on_stdin() -> None:
    done = subprocess.run([PORTICO_BIN, "keys", "hash"], input="pk-config-test-0001\n",
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"{DIGEST}\n")
    assert "pk-config-test-0001" not in done.stderr


@pytest.mark.parametrize(("stdin", "message"), [("", "no key on stdin"), ("two words\n", "whitespace")])
def test_keys_hash_refuses_what_no_caller_could_send(stdin: str, message: str) -> None:
    done = subprocess.run([PORTICO_BIN, "keys", "hash"], input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and not done.stdout
