#!/usr/bin/env bash
# Builds dist/rag-backup_VERSION_ARCH.deb from this checkout, in one command (as any user; no root needed):
#   bash packaging/deb/build.sh            # version from pyproject.toml; RAG_DEB_VERSION overrides
# A self-contained venv at /opt/rag-backup/venv (Debian's /usr/bin/python3 3.11, the interpreter the
# package depends on), the units from systemd/, example configs in /etc/rag-backup, maintainer scripts
# from packaging/deb/debian/. Plain dpkg-deb: why, and the lintian tags that remain, in docs/PACKAGING.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
[ -x "$py" ] || { echo "build.sh: $py is missing (the package targets Debian's python3)" >&2; exit 3; }
command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb is missing (apt-get install dpkg-dev)" >&2; exit 3; }
pyver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
version=${RAG_DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)}
arch=$(dpkg --print-architecture)
out=${RAG_DEB_OUT:-$repo/dist}
work=$(mktemp -d "${TMPDIR:-/tmp}/rag-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/stage
venv=/opt/rag-backup/venv

# 1. the venv, relocated from the stage to /opt/rag-backup/venv
"$py" -m venv "$stage$venv"
"$stage$venv/bin/pip" install -q --no-compile --disable-pip-version-check "$repo"
"$stage$venv/bin/pip" uninstall -q -y pip setuptools >/dev/null 2>&1 || true
# only the interpreter links and our three commands stay in bin/ (the dependencies' own scripts are not ours to ship)
find "$stage$venv/bin" -mindepth 1 ! -name 'python*' ! -name ragctl ! -name 'rag-backup-*' -delete
grep -rlI "$stage" "$stage$venv" | xargs -r sed -i "s#$stage##g"
find "$stage$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$stage$venv" -name '*.so' -exec strip --strip-unneeded {} + 2>/dev/null || true
# bundled data compressed with gzip (botocore's service models) keeps its build time in each header
# (lintian: package-contains-timestamped-gzip): zeroed, as gzip -n writes it, so the package is reproducible
find "$stage$venv" -name '*.gz' -type f -print0 | xargs -0 -r "$py" -c '
import sys
for path in sys.argv[1:]:
    with open(path, "r+b") as f:
        head = f.read(10)  # magic, method, flags, mtime (4 bytes), xfl, os; no header CRC when flag 2 is off
        if len(head) == 10 and head[:2] == b"\x1f\x8b" and not head[3] & 2 and head[4:8] != bytes(4):
            f.seek(4)
            f.write(bytes(4))
'

# 2. commands on PATH, units, example configs, docs
install -d -m 0755 "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/rag-backup" \
    "$stage/usr/share/doc/rag-backup" "$stage/usr/share/lintian/overrides"
for cmd in ragctl rag-backup-agent rag-backup-controller; do ln -s "$venv/bin/$cmd" "$stage/usr/bin/$cmd"; done
install -m 0644 "$repo"/systemd/*.service "$repo"/systemd/*.timer "$stage/lib/systemd/system/"
for u in "$repo"/systemd/*.path; do [ -e "$u" ] && install -m 0644 "$u" "$stage/lib/systemd/system/"; done
install -m 0644 "$repo/packaging/controller.toml" "$stage/etc/rag-backup/controller.toml.example"
install -m 0644 "$repo/packaging/agent.toml" "$stage/etc/rag-backup/agent.toml.example"
install -m 0644 "$here/debian/copyright" "$stage/usr/share/doc/rag-backup/copyright"
sed "s/@VERSION@/$version/" "$here/debian/changelog" | gzip -9n >"$stage/usr/share/doc/rag-backup/changelog.gz"
install -m 0644 "$here/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/rag-backup"

# 3. control files
install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@PYVER@/$pyver/g" \
    -e "s/@PYNEXT@/${pyver%.*}.$(( ${pyver#*.} + 1 ))/" "$here/debian/control" >"$stage/DEBIAN/control"
(cd "$stage/etc" && find rag-backup -type f | sed 's#^#/etc/#' | sort) >"$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/debian/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's#  \./#  #') \
    >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/control"

mkdir -p "$out"
deb="$out/rag-backup_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip -z6 --build "$stage" "$deb" >/dev/null
echo "$deb"
