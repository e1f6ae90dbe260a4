#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing (Python packages,
# buf, the Go tools, Prometheus from Debian, npm and Maven dependencies), checks generated code and lint, then
# runs the Python, Go, TypeScript and Java tests. Every stage runs; any failure fails.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
stage() {
  local name=$1; shift
  echo
  echo "=== $name"
  if "$@"; then
    echo "--- $name: ok"
  else
    echo "--- $name: FAILED"
    failed+=("$name")
  fi
}

need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null; then
      echo "error: '$tool' is not installed; the test suite needs it (see docs/development.md)" >&2
      exit 1
    fi
  done
}
need python3 go node npm java mvn

# Setup failures stop the run: nothing after them could mean anything.
scripts/setup-python.sh dev || exit 1
npm ci --prefix tools --no-audit --no-fund --loglevel=error || exit 1
scripts/install-go-tools.sh || exit 1
scripts/install-debian-packages.sh || exit 1
if [ -f clients/ts/package-lock.json ]; then
  npm ci --prefix clients/ts --no-audit --no-fund --loglevel=error || exit 1
fi
scripts/copy-googleapis-protos.sh || exit 1
export PATH="$PWD/.venv/bin:$PWD/tools/bin:$PATH"

stage "generated code is fresh" scripts/check-generated.sh
stage "buf lint" tools/node_modules/.bin/buf lint
# The API may only grow: any change that would break a caller built against the
# committed baseline fails here, until someone accepts it with `make proto-baseline`.
stage "buf breaking" tools/node_modules/.bin/buf breaking proto --against proto/baseline.binpb
stage "ruff" ruff check .
stage "mypy" mypy
stage "python tests" pytest
for lang in go ts java; do
  if [ -x "scripts/test-$lang.sh" ]; then
    stage "$lang tests" "scripts/test-$lang.sh"
  fi
done

# Last: the documentation's walkthroughs use the clients the stages above tested.
stage "docs" scripts/test-docs.sh

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}"
  exit 1
fi
echo "all stages passed"
