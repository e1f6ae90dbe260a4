"""The `portico` command: `serve` as a real process, the client commands against it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import PORTICO_BIN, running_gateway, spawned_gateway
from portico_server import cli, domain
from portico_server.providers.fake import FakeProvider, hash_embedding

PORTICO = PORTICO_BIN

CONFIG = """\
server: {address: "127.0.0.1:0", health_probe_interval: 0.2}
providers:
  - name: fake
    kind: fake
    models: [fake-chat, fake-embed]
    default_model: fake-chat
    embedding_model: fake-embed
    options:
      chunk_size: 4
      rules:
        - when_contains: "weather"
          tool_calls: [{name: get_weather, arguments: '{"city":"Paris"}'}]
  - name: slow
    kind: fake
    models: [slow-chat]
    options: {chunk_size: 4, chunk_delay: 0.3}
  - name: sick
    kind: fake
    models: [sick-chat]
    options: {healthy: false}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with spawned_gateway(CONFIG, tmp_path_factory.mktemp("cli")) as (_, address):
        yield address


def portico(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PORTICO, *args], input=stdin, capture_output=True, text=True, timeout=30, env=env)


# -- chat -------------------------------------------------------------------------------------


def test_chat_prints_the_answer(gateway: str) -> None:
    result = portico("chat", "hello from the shell", "--address", gateway, "--provider", "fake")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello from the shell\n", "")


def test_chat_reads_the_prompt_from_stdin(gateway: str) -> None:
    result = portico("chat", "--address", gateway, "--model", "fake-chat", stdin="piped prompt")
    assert (result.returncode, result.stdout) == (0, "piped prompt\n")


def test_a_piped_prompt_loses_its_trailing_newline(gateway: str) -> None:
    piped = portico("chat", "--address", gateway, "--provider", "fake", stdin="piped prompt\n")
    dash = portico("chat", "-", "--address", gateway, "--provider", "fake", stdin="two lines\nof prompt\r\n")

    # The fake echoes the prompt: one newline at the end is the CLI's own.
    assert (piped.returncode, piped.stdout) == (0, "piped prompt\n")
    assert (dash.returncode, dash.stdout) == (0, "two lines\nof prompt\n")


@pytest.mark.parametrize("stdin", ["", "\n", "  \n\n"], ids=["nothing", "a newline", "blank lines"])
def test_chat_with_an_empty_prompt_says_so_and_exits_2(gateway: str, stdin: str) -> None:
    result = portico("chat", "--address", gateway, "--provider", "fake", stdin=stdin)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "portico: error: the prompt is empty: give it as an argument, or pipe it to standard input\n"
    )


def test_chat_with_an_empty_argument_exits_2_without_calling(tmp_path: Path) -> None:
    # Nothing listens at port 1: the prompt is refused before any connection is tried.
    result = portico("chat", "", "--address", "127.0.0.1:1")
    assert result.returncode == 2 and "the prompt is empty" in result.stderr


def test_chat_streams_text_as_it_arrives(gateway: str) -> None:
    # 6 chunks, 0.3 s apart: the first must be on the terminal long before the end.
    process = subprocess.Popen(
        [PORTICO, "chat", "twenty-four characters..", "--address", gateway, "--provider", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        first = os.read(process.stdout.fileno(), 1024) if ready else b""
        still_running = process.poll() is None
        rest = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)

    assert first == b"twen"
    assert still_running
    assert first + rest == b"twenty-four characters..\n"
    assert process.returncode == 0


def test_chat_prints_tool_calls(gateway: str) -> None:
    result = portico("chat", "what is the weather?", "--address", gateway, "--provider", "fake")
    assert (result.returncode, result.stdout) == (0, '[tool call] get_weather({"city":"Paris"})\n')


def test_chat_failure_is_one_line_and_exit_1(gateway: str) -> None:
    bad = portico("chat", "hi", "--address", gateway, "--provider", "fake", "--temperature", "5")
    unknown = portico("chat", "hi", "--address", gateway, "--provider", "nope")

    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("portico: error: INVALID_ARGUMENT: temperature")
    assert bad.stderr.count("\n") == 1
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("portico: error: NOT_FOUND: ")
    assert "nope" in unknown.stderr and unknown.stderr.count("\n") == 1


def test_chat_without_a_gateway_says_which_address_it_tried(tmp_path: Path) -> None:
    result = portico("chat", "hi", "--address", "127.0.0.1:1", "--timeout", "10")
    assert result.returncode == 1
    assert result.stderr.startswith("portico: error: cannot reach the gateway at 127.0.0.1:1: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


async def test_chat_options_reach_the_provider(capsys: pytest.CaptureFixture[str]) -> None:
    config = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"]}]}
    async with running_gateway(config) as gw:
        argv = [
            "chat", "a fairly long question for the model", "--address", gw.address,
            "--model", "fake-chat", "--system", "Answer in French.",
            "--temperature", "0.25", "--max-tokens", "3",
        ]
        code = await asyncio.to_thread(cli.main, argv)
        provider = gw.provider("fake")
        assert isinstance(provider, FakeProvider)
        sent = provider.last_request

    assert code == 0
    # The fake cuts its answer at 4 characters per allowed token.
    assert capsys.readouterr().out == "a fairly lon\n"
    assert sent is not None
    assert [(m.role, m.content) for m in sent.messages] == [
        (domain.Role.SYSTEM, "Answer in French."),
        (domain.Role.USER, "a fairly long question for the model"),
    ]
    assert (sent.temperature, sent.max_tokens) == (0.25, 3)


# -- embed, providers ---------------------------------------------------------------------------


def test_embed_prints_one_json_vector_per_text(gateway: str) -> None:
    result = portico("embed", "first", "second", "--address", gateway, "--model", "fake-embed")
    short = portico("embed", "first", "--address", gateway, "--provider", "fake", "--dimensions", "8")

    assert result.returncode == 0
    vectors = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(vectors) == 2
    for vector, text in zip(vectors, ["first", "second"], strict=True):
        assert vector == pytest.approx(hash_embedding(text, 64), abs=1e-6)
    assert len(json.loads(short.stdout)) == 8


def test_providers_table_and_json(gateway: str) -> None:
    table = portico("providers", "--address", gateway)
    from_env = portico("providers", "--json", env={**os.environ, "PORTICO_ADDRESS": gateway})

    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "HEALTH", "DEFAULT", "MODEL", "MODELS"]
    assert rows[0].split() == ["fake", "fake", "serving", "fake-chat", "fake-chat,", "fake-embed"]
    assert from_env.returncode == 0
    listed = json.loads(from_env.stdout)
    assert [p["name"] for p in listed] == ["fake", "slow", "sick"]
    assert listed[0] == {
        "name": "fake", "kind": "fake", "health": "serving",
        "default_model": "fake-chat", "models": ["fake-chat", "fake-embed"],
    }


# -- health -------------------------------------------------------------------------------------


def test_health_is_serving_for_the_server_and_the_service(gateway: str) -> None:
    whole = portico("health", "--address", gateway)
    service = portico("health", "--address", gateway, "--service", "portico.v1.LLMService")
    provider = portico("health", "--address", gateway, "--service", "portico.provider.fake")

    for result in (whole, service, provider):
        assert (result.returncode, result.stdout) == (0, "SERVING\n")


def test_health_of_an_unhealthy_provider_exits_1(gateway: str) -> None:
    # The probe runs every 0.2 s; wait (bounded) for its first verdict.
    deadline = time.monotonic() + 15
    result = portico("health", "--address", gateway, "--service", "portico.provider.sick")
    while result.stdout != "NOT_SERVING\n" and time.monotonic() < deadline:
        result = portico("health", "--address", gateway, "--service", "portico.provider.sick")
    assert (result.returncode, result.stdout) == (1, "NOT_SERVING\n")


def test_health_of_an_unknown_service_or_no_gateway_exits_1(gateway: str) -> None:
    unknown = portico("health", "--address", gateway, "--service", "nope")
    nobody = portico("health", "--address", "127.0.0.1:1")

    assert unknown.returncode == 1
    assert unknown.stderr == "portico: error: NOT_FOUND: the gateway has no health entry 'nope'\n"
    assert nobody.returncode == 1
    assert nobody.stderr.startswith("portico: error: cannot reach the gateway at 127.0.0.1:1")


# -- serve --------------------------------------------------------------------------------------


def test_serve_with_a_bad_key_names_it_and_exits_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - name: fake\n    kind: fake\n    modelz: [fake-chat]\n")
    result = portico("serve", "--config", str(bad), "--address", "127.0.0.1:0")
    missing = portico("serve", "--config", str(tmp_path / "absent.yaml"))
    from_env = portico("serve", env={**os.environ, "PORTICO_CONFIG": str(bad)})

    assert result.returncode == 2
    assert "providers[0].modelz" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert missing.returncode == 2
    assert "absent.yaml" in missing.stderr and "Traceback" not in missing.stderr
    assert from_env.returncode == 2 and "providers[0].modelz" in from_env.stderr


def test_serve_without_config_runs_the_embedded_default_and_stops_on_sigterm(tmp_path: Path) -> None:
    with spawned_gateway(None, tmp_path) as (process, address):
        listed = portico("providers", "--json", "--address", address)
        process.send_signal(signal.SIGTERM)
        code = process.wait(20)

    assert "fake" in [p["name"] for p in json.loads(listed.stdout)]
    assert code == 0


def test_every_option_and_argument_has_help_text() -> None:
    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")

    walk(cli._parser(), "portico")
    assert missing == []


def test_connection_options_are_in_every_client_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["chat"], ["embed"], ["providers"], ["health"], ["admin", "breakers"]):
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"])
        shown = capsys.readouterr().out
        for option in ("--api-key", "--tls", "--ca-file", "--cert-file", "--key-file"):
            assert option in shown, (command, option)
        assert "PORTICO_API_KEY" in shown


def test_usage_errors_exit_2() -> None:
    result = portico("chat", "hi", "--temperature", "warm")
    assert result.returncode == 2
    assert "--temperature" in result.stderr

