"""Runs the documentation's walkthroughs as a new user would: each in a fresh project
outside the repository, against a gateway that is already running.

A walkthrough is a run of fenced code blocks in one Markdown page, each announced by an
HTML comment on the line above it (invisible on the rendered page):

    <!-- try: go file=main.go -->      the block is written to main.go in the project
    <!-- try: go -->                   a shell block (sh, bash, console), run in the project
    <!-- try: go expect="Bonjour" -->  ...whose output must contain the text

Blocks run in the order they appear. Every walkthrough gets its own temporary directory
holding `app/` (the project, where commands run) and `portico`, the checkout under test,
so the pages can say "from a checkout in ../portico" as a user next to one would.
The first failing step fails its walkthrough, with the page, the line and the output.

Usage: docs_examples.py [--only NAME ...] FILE.md ...
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!--\s*try:\s*(?P<name>[\w.-]+)(?P<args>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
SHELLS = {"sh", "bash", "console", "shell"}
STEP_TIMEOUT = 900  # seconds: a cold Maven or Go build on two cores


@dataclass
class Step:
    page: Path
    line: int
    lang: str
    text: str
    file: str | None = None
    expect: str | None = None


@dataclass
class Walkthrough:
    name: str
    page: Path
    steps: list[Step] = field(default_factory=list)


def parse(page: Path) -> list[Walkthrough]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found: dict[str, Walkthrough] = {}
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if not marker:
            i += 1
            continue
        args = dict(_options(marker["args"]))
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise SystemExit(f"{page}:{i + 1}: a `try:` marker must be followed by a code block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith(fence["fence"])), None)
        if end is None:
            raise SystemExit(f"{page}:{i + 2}: the code block never closes")
        lang = fence["lang"]
        if "file" not in args and lang not in SHELLS:
            raise SystemExit(f"{page}:{i + 1}: a {lang or 'plain'} block needs file=NAME (only shell blocks run)")
        walk = found.setdefault(marker["name"], Walkthrough(marker["name"], page))
        walk.steps.append(Step(page, i + 2, lang, "\n".join(lines[i + 2:end]) + "\n",
                               file=args.get("file"), expect=args.get("expect")))
        i = end + 1
    return list(found.values())


def _options(text: str) -> list[tuple[str, str]]:
    pairs = []
    for word in shlex.split(text):
        key, sep, value = word.partition("=")
        if not sep:
            raise SystemExit(f"marker option {word!r} is not key=value")
        pairs.append((key, value))
    return pairs


def run(walk: Walkthrough) -> bool:
    with tempfile.TemporaryDirectory(prefix=f"portico-docs-{walk.name}-") as tmp:
        root = Path(tmp)
        (root / "portico").symlink_to(REPO)
        app = root / "app"
        app.mkdir()
        env = {**os.environ, "HOME": str(root / "home")}
        for key in ("VIRTUAL_ENV", "PYTHONPATH"):  # the suite's own venv is not the user's
            env.pop(key, None)
        env["PATH"] = os.pathsep.join(
            p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(REPO / ".venv")))
        (root / "home").mkdir()
        _share_caches(env)
        started = time.monotonic()
        for step in walk.steps:
            where = f"{_shown(step.page)}:{step.line}"
            if step.file is not None:
                target = app / step.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step.text, encoding="utf-8")
                continue
            try:
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", step.text], cwd=app, env=env, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"FAIL {walk.name}: {where}: no end after {STEP_TIMEOUT} s")
                return False
            if done.returncode != 0:
                print(f"FAIL {walk.name}: {where}: exit {done.returncode}\n{_tail(done.stdout)}")
                return False
            if step.expect is not None and step.expect not in done.stdout:
                print(f"FAIL {walk.name}: {where}: output lacks {step.expect!r}\n{_tail(done.stdout)}")
                return False
        print(f"ok   {walk.name} ({len(walk.steps)} steps, {time.monotonic() - started:.0f} s)")
        return True


def _share_caches(env: dict[str, str]) -> None:
    """A fresh HOME, but the machine's package caches: a new user's second project
    downloads nothing again either, and the registries are the only network here."""
    home = Path(os.environ.get("HOME", "~")).expanduser()
    env.setdefault("GOMODCACHE", _go_env("GOMODCACHE"))
    env.setdefault("GOCACHE", _go_env("GOCACHE"))
    env.setdefault("GOPATH", _go_env("GOPATH"))
    env.setdefault("npm_config_cache", str(home / ".npm"))
    env.setdefault("PIP_CACHE_DIR", str(home / ".cache" / "pip"))
    maven = home / ".m2"
    if maven.exists():
        (Path(env["HOME"]) / ".m2").symlink_to(maven)


def _go_env(name: str) -> str:
    try:
        return subprocess.run(["go", "env", name], text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _shown(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else str(page)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--only", action="append", default=[], help="run just this walkthrough (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the walkthroughs and exit")
    args = parser.parse_args()
    walks = [w for page in args.pages for w in parse(page.resolve())]
    names = [w.name for w in walks]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise SystemExit(f"walkthroughs named on more than one page: {sorted(duplicated)}")
    if args.only:
        walks = [w for w in walks if w.name in args.only]
    if args.list:
        for w in walks:
            print(f"{w.name}: {_shown(w.page)} ({len(w.steps)} steps)")
        return 0
    if not walks:
        print("no walkthroughs found", file=sys.stderr)
        return 1
    failed = [w.name for w in walks if not run(w)]
    if failed:
        print(f"failed walkthroughs: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
