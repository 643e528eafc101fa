#!/usr/bin/env bash
# Regenerates the Python gRPC code from proto/ragbackup/v1/*.proto.
# Run from anywhere: bash proto/generate.sh   (needs grpcio-tools in the active Python)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(command -v "${PYTHON:-python3}")"
cd "$here"
rm -f ragbackup/v1/*_pb2.py ragbackup/v1/*_pb2_grpc.py ragbackup/v1/*_pb2.pyi
"$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. ragbackup/v1/*.proto
