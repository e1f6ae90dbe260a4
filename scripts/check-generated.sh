#!/usr/bin/env bash
# Fails when regenerating the stubs from proto/ changes any generated file, i.e. when
# generated code was edited by hand or not regenerated after a proto change.
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=(clients/python/portico/v1 clients/go/gen clients/ts/src/gen clients/ts/src/gen-googleapis)
snapshot() { find "${dirs[@]}" -type f ! -name '__init__.py' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; }
before=$(snapshot)
scripts/generate.sh
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "error: generated code is stale; run 'make generate' and commit the result:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "generated code is up to date"
