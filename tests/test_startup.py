"""`portico serve` that cannot start says why in one line and exits 2, as a bad
configuration does: no traceback, and never a secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from harness import PORTICO_BIN

KEY = "sk-startup-test-0123456789abcdef"


def serve(*args: str, config: str | None = None, tmp_path: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [PORTICO_BIN, "serve", *args]
    if config is not None:
        assert tmp_path is not None
        (tmp_path / "portico.yaml").write_text(config)
        command += ["--config", str(tmp_path / "portico.yaml")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "portico: listening" not in result.stdout
    return result.stderr


def test_a_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--address", f"127.0.0.1:{port}")
    stderr = assert_one_line_exit_2(result)
    assert stderr.count("\n") == 1
    assert stderr == f"portico: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_serve_in_a_client_only_install_says_what_to_install():
    # The client-only install lacks the server extras; here their import is made to fail
    # the way a missing package does, in a real `portico` process.
    code = (
        "import sys\n"
        "for name in ('yaml', 'httpx', 'grpc_health', 'grpc_reflection'):\n"
        "    sys.modules[name] = None\n"
        "from portico_server.cli import main\n"
        "sys.exit(main(['serve', '--address', '127.0.0.1:0']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    stderr = assert_one_line_exit_2(result)
    assert stderr.count("\n") == 1
    assert "pip install 'portico[server]'" in stderr


@pytest.mark.parametrize("key", [KEY + "\n", KEY + " ", " " + KEY, KEY[:8] + "\t" + KEY[8:], KEY + "\x7f"])
def test_an_api_key_with_whitespace_is_a_configuration_error(tmp_path, key):
    config = (
        "providers:\n"
        "  - name: openai\n"
        "    kind: openai_compat\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    api_key: ${TEST_KEY}\n"
    )
    result = serve("--address", "127.0.0.1:0", config=config, tmp_path=tmp_path,
                   env={**os.environ, "TEST_KEY": key})
    stderr = assert_one_line_exit_2(result)
    assert "providers[0].api_key" in stderr and "trailing newline" in stderr
    assert KEY[:8] not in stderr + result.stdout


def test_a_header_value_with_a_newline_is_a_configuration_error(tmp_path):
    config = (
        "providers:\n"
        "  - name: openai\n"
        "    kind: openai_compat\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        '    headers: {"X-Team": "blue\\n"}\n'
    )
    stderr = assert_one_line_exit_2(serve("--address", "127.0.0.1:0", config=config, tmp_path=tmp_path))
    assert "providers[0].headers" in stderr and "'X-Team'" in stderr


def test_a_key_from_the_environment_with_a_newline_is_a_configuration_error():
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    result = serve("--address", "127.0.0.1:0", env={**env, "OPENAI_API_KEY": KEY + "\n"})
    stderr = assert_one_line_exit_2(result)
    assert "api_key" in stderr and "_API_KEY" in stderr
    assert KEY[:8] not in stderr
