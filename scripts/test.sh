#!/usr/bin/env bash
# The whole test suite: unit, integration (real redis-server, Chroma, SeaweedFS S3,
# dockerd) and the tiny benchmark.  Installs everything it needs first.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/lint-imports || exit 1
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing" >&2
  exit 1
fi
exit $rc
