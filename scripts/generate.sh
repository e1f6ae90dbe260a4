#!/usr/bin/env bash
# Regenerates every committed stub from proto/: copies the googleapis protos the API
# imports into third_party/, then Python (grpc_tools), then Go and TypeScript (buf generate
# with buf.gen.yaml), then the google.rpc error-detail messages the TypeScript client
# decodes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PWD/tools/bin:$PATH"
scripts/copy-googleapis-protos.sh
scripts/generate-python.sh
tools/node_modules/.bin/buf generate
clients/ts/scripts/generate-googleapis.sh
