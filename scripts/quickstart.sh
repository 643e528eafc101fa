#!/usr/bin/env bash
# The main job end to end on an embedded default: agent + controller on loopback
# (mutual TLS), a local repository, generated RAG-like data; backup, change,
# backup, diff, restore, verify, in-place recovery.  Output in ./rag-backup-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ragctl demo --workdir rag-backup-demo
