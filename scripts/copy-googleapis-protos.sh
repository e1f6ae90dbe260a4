#!/usr/bin/env bash
# Copies the googleapis .proto files the API imports (google/api/field_behavior.proto)
# from the installed googleapis-common-protos wheel into third_party/googleapis, which
# buf.yaml lists as a second module. buf cannot fetch them from the Buf Schema Registry
# without network access, and the wheel is already a pinned dependency, so every machine
# gets the same file. The folder is not committed: run this after scripts/setup-python.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-$PWD/.venv/bin/python}"
if [ ! -x "$python" ]; then
  echo "copy-googleapis-protos: $python is missing; run scripts/setup-python.sh dev first" >&2
  exit 1
fi
api_dir="$("$python" -c 'import os, google.api.field_behavior_pb2 as m; print(os.path.dirname(m.__file__))')"
out=third_party/googleapis/google/api
mkdir -p "$out"
cp "$api_dir/field_behavior.proto" "$out/"
