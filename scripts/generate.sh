#!/usr/bin/env bash
# Regenerates every committed stub from proto/: Python (grpc_tools), then Go and
# TypeScript (buf generate with buf.gen.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PWD/tools/bin:$PATH"
scripts/generate-python.sh
if [ -f buf.gen.yaml ]; then
  tools/node_modules/.bin/buf generate
fi
