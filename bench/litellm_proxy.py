"""LiteLLM proxy as a comparison target, in its own virtual environment (bench/.litellm-venv,
git-ignored), never a Portico dependency. Created on first use; if it cannot be installed
or started, the benchmark reports LiteLLM as unavailable and goes on."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import procs

HERE = Path(__file__).resolve().parent
VENV = HERE / ".litellm-venv"
#: The version compared against; change it deliberately, with the results.
REQUIREMENT = "litellm[proxy]==1.108.7"


def binary() -> Path:
    return VENV / "bin" / "litellm"


def ensure_venv(log: Path) -> str | None:
    """Create the venv if it is missing; returns why LiteLLM is unavailable, or None."""
    if binary().exists():
        return None
    print(f"litellm: creating {VENV.name} and installing {REQUIREMENT} (once; a few minutes)", flush=True)
    with log.open("ab") as out:
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], stdout=out, stderr=out, check=False)
        if made.returncode != 0:
            return f"could not create a virtual environment (see {log.name})"
        installed = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", REQUIREMENT], stdout=out, stderr=out,
            check=False, timeout=900,
        )
    if installed.returncode != 0 or not binary().exists():
        return f"pip install {REQUIREMENT!r} failed (see {log.name})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(upstream: str, log_dir: Path) -> procs.Server:
    """The proxy on a free port, with bench-chat and bench-embed routed to `upstream`."""
    config = log_dir / "litellm.yaml"
    api_base = f"http://{upstream}/v1"
    config.write_text(
        "model_list:\n"
        + "".join(
            f"  - model_name: {name}\n"
            f"    litellm_params: {{model: openai/{name}, api_base: '{api_base}', api_key: bench}}\n"
            for name in ("bench-chat", "bench-embed")
        )
        + "litellm_settings: {drop_params: true, telemetry: false}\n"
        # Portico checks no caller credentials either; a master key would add work LiteLLM
        # does per request that the gateway under comparison does not do.
        + "general_settings: {dangerously_permit_weak_or_unset_master_key: true}\n"
    )
    port = free_port()
    log = log_dir / "litellm.log"
    env = {"PATH": f"{VENV / 'bin'}:/usr/bin:/bin", "LITELLM_LOG": "ERROR", "HOME": str(log_dir),
           "LITELLM_TELEMETRY": "False", "NO_DOCS": "True", "DISABLE_ADMIN_UI": "True"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
             "--num_workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log_dir,
        )
    server = procs.Server("litellm", process, f"127.0.0.1:{port}", log)
    if not procs.wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, process):
        server.stop()
        raise RuntimeError(f"the proxy did not answer within 180 s; log: {log.read_text()[-1500:]}")
    return server
