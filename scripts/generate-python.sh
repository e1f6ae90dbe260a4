#!/usr/bin/env bash
# Regenerates the Python stubs (messages, gRPC stubs and their type stubs) from proto/.
# The pinned grpcio-tools and mypy-protobuf in pyproject.toml keep the output stable.
set -euo pipefail
cd "$(dirname "$0")/.."
out=clients/python
rm -f "$out"/portico/v1/*_pb2*.py "$out"/portico/v1/*_pb2*.pyi
python -m grpc_tools.protoc -I proto -I third_party/googleapis \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  proto/portico/v1/*.proto
# Only llm_service.proto, admin_service.proto and vector_service.proto declare services; the empty stub modules
# of the others are noise.
rm -f "$out"/portico/v1/types_pb2_grpc.py* "$out"/portico/v1/error_reason_pb2_grpc.py*
