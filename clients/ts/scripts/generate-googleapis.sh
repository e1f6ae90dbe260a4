#!/usr/bin/env bash
# Regenerates src/gen-googleapis/ (google.rpc error details for TypeScript) from the
# error_details.proto that ships in the Python package googleapis-common-protos, so the
# schema comes from the same release the gateway encodes its errors with.
#
# Usage: clients/ts/scripts/generate-googleapis.sh [BASE_DIR]
#   Writes BASE_DIR/src/gen-googleapis; BASE_DIR defaults to clients/ts. The freshness
#   check passes a temporary directory and compares.
set -euo pipefail
ts_dir="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$ts_dir/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
buf="$repo/tools/node_modules/.bin/buf"
base="$(cd "${1:-$ts_dir}" && pwd)"

for tool in "$python" "$buf" "$ts_dir/node_modules/.bin/protoc-gen-es"; do
  if [ ! -x "$tool" ]; then
    echo "generate-googleapis: $tool is missing (set up the venv, npm ci --prefix tools, npm ci --prefix clients/ts)" >&2
    exit 1
  fi
done

rpc_dir="$("$python" -c 'import os, google.rpc.error_details_pb2 as m; print(os.path.dirname(m.__file__))')"
input="$(mktemp -d)"
trap 'rm -rf "$input"' EXIT
mkdir -p "$input/google/rpc"
cp "$rpc_dir/error_details.proto" "$input/google/rpc/"

rm -rf "$base/src/gen-googleapis"
# buf resolves the plugin path against the working directory and writes to -o + out.
cd "$ts_dir"
"$buf" generate "$input" --template buf.gen.googleapis.yaml -o "$base"
