"""The getting-started page's tool loop with no key: its `tools.yaml` runs a gateway,
and its Python example, run against that gateway, prints what the page says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import yaml
from portico_server.app import Gateway
from portico_server.config import parse_config

PAGE = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"


def blocks(language: str) -> list[str]:
    section = PAGE.read_text(encoding="utf-8").split("## Tool calling, with no key", 1)[1]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def run_example(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "__main__"})
    return out.getvalue()


async def test_the_documented_tool_loop_runs_as_the_page_says() -> None:
    import asyncio

    (config_text,) = blocks("yaml")
    (code,) = blocks("python")
    settings = yaml.safe_load(config_text)
    documented_address = settings["server"]["address"]
    settings["server"] |= {"address": "127.0.0.1:0", "health_probe_interval": 0}
    gateway = Gateway(parse_config(settings, "tools.yaml"))
    await gateway.start()
    try:
        printed = await asyncio.to_thread(run_example, code.replace(documented_address, gateway.address))
    finally:
        await gateway.stop(grace=0)
    # Each print's output is the comment beside it on the page.
    expected = [line.split("# ", 1)[1].strip() for line in code.splitlines() if "print(" in line]
    assert printed.splitlines() == expected
