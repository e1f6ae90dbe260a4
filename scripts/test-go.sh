#!/usr/bin/env bash
# Go client: formatting, `go vet`, then the tests, which start the Python gateway
# (PORTICO_BIN, default .venv/bin/portico) on the fake provider themselves.
# Dependencies come from the Go module proxy at the versions in clients/go/go.sum;
# nothing is installed outside the module cache.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "test-go: the Go toolchain ('go') is not on PATH; install Go 1.24 or newer" >&2
  exit 1
fi
portico_bin="${PORTICO_BIN:-$PWD/.venv/bin/portico}"
if [[ ! -x "$portico_bin" ]]; then
  echo "test-go: the gateway executable $portico_bin is missing; run scripts/setup-python.sh dev (or set PORTICO_BIN)" >&2
  exit 1
fi
export PORTICO_BIN="$portico_bin"

cd clients/go
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
  echo "test-go: gofmt would change these files:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 5m ./...
