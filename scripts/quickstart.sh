#!/usr/bin/env bash
# The whole stack's backup and recovery end to end on an embedded default: a real
# redis-server and a real Chroma server (containers of a private Docker engine),
# documents, processing state and config; agent + controller on loopback (mutual
# TLS), a local repository; full backup, change, backup, damage, in-place
# recovery checked against the facts, point-in-time restore, verify.
# Everything is kept in ./rag-backup-demo for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
exec .venv/bin/ragctl demo --workdir rag-backup-demo --keep
