#!/usr/bin/env bash
# Creates .venv and installs Portico with the extras named in $1 (default: server).
# Quick when nothing changed: the install is redone only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-server}"
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "error: $python not found; Portico needs Python 3.11 or newer" >&2
  exit 1
fi
"$python" - <<'PY' || { echo "error: Portico needs Python 3.11 or newer" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
  touch "$stamp"
fi
