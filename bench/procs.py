"""Processes under benchmark: start one and wait for its "listening" line, read the CPU
time and resident memory of it and every process below it (the gateway's workers) from
/proc, and stop it."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """`pid` and every descendant still running."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its descendants (second field of /proc/PID/statm)."""
    total = 0
    for p in tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1])
        except FileNotFoundError:
            continue
    return total * PAGE / 2**20


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP the process tree: a server that burns CPU while idle must not tax the others."""
        for pid in tree(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in tree(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self, timeout: float = 15) -> None:
        self.resume()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start(name: str, command: list[str], marker: str, log_dir: Path, timeout: float = 60,
          env: dict[str, str] | None = None) -> Server:
    """Start `command`, whose first stdout line is "<...> listening on HOST:PORT"."""
    log = log_dir / f"{name.replace(' ', '-').replace('/', '-')}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline().decode() if ready else ""
    if marker not in line:
        process.kill()
        process.wait(5)
        raise RuntimeError(f"{name} did not start: {line!r}; log: {log.read_text()[-2000:]}")
    return Server(name, process, line.rsplit(" ", 1)[-1].strip(), log)


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes]) -> bool:
    """Poll `url` until it answers 200 (for servers that print no ready line)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False
