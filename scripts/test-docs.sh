#!/usr/bin/env bash
# The documentation's own test: the site builds in strict mode (a broken link, a missing
# page or a page left out of the navigation fails), then every walkthrough in the pages
# runs in a fresh project outside the repository against a gateway on its embedded
# default, as a reader would run it (scripts/docs_examples.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/bin:$PATH"   # grpcurl and grpc_health_probe, as a reader installs them

site="$(mktemp -d)"
gateway_log="$(mktemp)"
gateway=""
cleanup() {
  if [[ -n "$gateway" ]]; then kill "$gateway" 2>/dev/null || true; wait "$gateway" 2>/dev/null || true; fi
  rm -rf "$site" "$gateway_log"
}
trap cleanup EXIT

.venv/bin/mkdocs build --strict --quiet --site-dir "$site"
echo "docs site: built in strict mode"

# The pages address the gateway as a reader's does: 127.0.0.1:50051, the default.
if grpc_health_probe -addr 127.0.0.1:50051 -connect-timeout 200ms >/dev/null 2>&1; then
  echo "test-docs: something already answers on 127.0.0.1:50051; stop it first" >&2
  exit 1
fi
env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY \
  .venv/bin/portico serve --workers 1 >"$gateway_log" 2>&1 &
gateway=$!
for _ in $(seq 1 100); do
  if grpc_health_probe -addr 127.0.0.1:50051 -connect-timeout 200ms >/dev/null 2>&1; then break; fi
  if ! kill -0 "$gateway" 2>/dev/null; then cat "$gateway_log" >&2; exit 1; fi
  sleep 0.1   # polling a starting process, bounded at 10 s
done
grpc_health_probe -addr 127.0.0.1:50051 >/dev/null

.venv/bin/python scripts/docs_examples.py README.md docs/*.md docs/*/*.md "$@"
