#!/usr/bin/env bash
# TypeScript client: installs its npm packages (pinned by clients/ts/package-lock.json),
# checks that its generated code is fresh, type-checks and builds it, then runs its tests
# against a real gateway (`portico serve`, or $PORTICO_BIN). Any failure, or a missing
# toolchain, exits non-zero: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
ts=clients/ts

fail() { echo "test-ts: $*" >&2; exit 1; }

for tool in node npm openssl; do
  command -v "$tool" >/dev/null || fail "'$tool' is not installed; the TypeScript tests need Node.js 20+, npm and openssl"
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || fail "Node.js 20 or newer is needed, found $(node --version)"

# npm ci only when the lock file changed since the last install: quick on a second run.
npm_ci() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
}
npm_ci tools
npm_ci "$ts"

if [ -z "${PORTICO_BIN:-}" ] && [ ! -x .venv/bin/portico ]; then
  scripts/setup-python.sh server
fi

echo "test-ts: generated code is fresh?"
# Regenerate into a scratch directory and compare, so the check never touches the tree.
# The TypeScript entries are taken from the root buf.gen.yaml, without the Go plugins.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
template=$(.venv/bin/python - <<'PY'
import json, yaml
with open("buf.gen.yaml") as f:
    config = yaml.safe_load(f)
config["clean"] = False
config["plugins"] = [p for p in config["plugins"] if "protoc-gen-es" in p.get("local", "")]
if not config["plugins"]:
    raise SystemExit("buf.gen.yaml has no protoc-gen-es plugin")
print(json.dumps(config))
PY
)
tools/node_modules/.bin/buf generate --template "$template" -o "$scratch"
"$ts/scripts/generate-googleapis.sh" "$scratch/$ts"
stale=0
for dir in src/gen src/gen-googleapis; do
  if ! diff -r "$ts/$dir" "$scratch/$ts/$dir" >/dev/null; then
    echo "test-ts: $ts/$dir is stale:" >&2
    diff -r "$ts/$dir" "$scratch/$ts/$dir" | head -40 >&2 || true
    stale=1
  fi
done
[ "$stale" = 0 ] || fail "regenerate (make generate; $ts/scripts/generate-googleapis.sh) and commit the result"

echo "test-ts: type-check and build"
rm -rf "$ts/dist"
npm run --prefix "$ts" --silent build

echo "test-ts: tests"
export PORTICO_BIN="${PORTICO_BIN:-$repo/.venv/bin/portico}"
cd "$ts"
node --test --test-timeout=60000 dist/test/*.test.js
