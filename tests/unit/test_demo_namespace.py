"""The demo's private Docker engine: its containerd namespace is one containerd accepts.

In: exec-root paths as tempfile.mkdtemp names them (a suffix of letters, digits and "_").
Out: namespaces matching containerd's identifier rule, distinct per exec root.
"""
from __future__ import annotations

import re

from ragbackup.cli.demo_services import containerd_namespace

# containerd's identifier rule (namespaces.Validate), quoted in its "namespace validation" error
IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$")


def test_a_temporary_name_with_underscores_still_makes_a_valid_namespace() -> None:
    roots = ["/run/rag-backup-demo-_cco59lz", "/run/rag-backup-demo-ab__c_d_", "/run/rag-backup-demo-k3x9q2mz"]
    names = [containerd_namespace(r) for r in roots]
    assert all(IDENTIFIER.match(n) and IDENTIFIER.match(n + "-plugins") for n in names), names
    assert len(set(names)) == len(names)
    assert not IDENTIFIER.match("rag-backup-demo-_cco59lz")  # the name the old rule made: refused
