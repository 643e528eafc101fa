#!/usr/bin/env bash
# The whole test suite: unit, integration (real redis-server, Chroma, SeaweedFS S3,
# dockerd) and the tiny benchmark.  Installs everything it needs first; arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/lint-imports || exit 1
# One worker per core (at most 4): the fixtures start their servers on free ports and temp dirs.
.venv/bin/pytest -p no:cacheprovider -n auto --maxprocesses 4 --dist worksteal "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing" >&2
  exit 1
fi
exit $rc
