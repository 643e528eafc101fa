"""The shipped Grafana dashboard's structure (no Grafana server here): unique panel ids, a grid that
fits 24 columns without overlaps, a unit and a query per panel on the $datasource variable, only
metrics the controller exports, the runbook's panels present; the provisioning file points at it."""
from __future__ import annotations

import json
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "packaging", "grafana")
METRICS_DOC = os.path.join(ROOT, "docs", "OBSERVABILITY.md")


def _dash() -> dict:
    with open(os.path.join(DIR, "rag-backup.json"), encoding="utf-8") as f:
        return json.load(f)


def test_panels_ids_grid_units_and_datasource():
    dash = _dash()
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"] and all(t["expr"] for t in p["targets"])
    assert [v["name"] for v in dash["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]


def test_queries_use_only_documented_metrics():
    documented = set(re.findall(r"`((?:rag_backup|process)_[a-z_]+)[`{]", open(METRICS_DOC, encoding="utf-8").read()))
    for p in _dash()["panels"]:
        for t in p["targets"]:
            for name in re.findall(r"(?:rag_backup|process)_[a-z_]+", t["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in documented or base in documented or name.endswith("_"), (p["title"], name)


def test_runbook_panels_are_there():
    titles = " | ".join(p["title"].lower() for p in _dash()["panels"])
    for needle in ("duration", "size", "success rate", "drill", "volume", "rpo", "replication lag", "repository"):
        assert needle in titles, needle


def test_provisioning_file():
    with open(os.path.join(DIR, "provisioning.yml"), encoding="utf-8") as f:
        prov = yaml.safe_load(f)
    assert prov["apiVersion"] == 1
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
