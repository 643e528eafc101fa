"""Deployment configuration of the benchmark's RAG stack: .env, compose, monitoring/, k8s/.

In: an output root and a seed (fake secrets come from it). Out: small text files under config/.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.gen_files import BASE_EPOCH, DAY, write_bytes

COMPOSE = """services:
  chromadb:
    image: chromadb/chroma:1.5.9
    container_name: rag-chromadb-prod
    volumes: ["./data/chroma:/data"]
    environment: ["ANONYMIZED_TELEMETRY=False"]
    ports: ["127.0.0.1:8000:8000"]
  redis:
    image: redis:7.0
    container_name: rag-redis-prod
    command: ["redis-server", "--save", "900 1", "--appendonly", "no"]
    volumes: ["./data/redis:/data"]
  api:
    image: registry.example.internal/rag-api:{version}
    env_file: .env
    depends_on: [chromadb, redis]
    volumes: ["./data/documents:/srv/documents", "./data/processing:/srv/processing"]
  worker:
    image: registry.example.internal/rag-worker:{version}
    env_file: .env
    deploy: {{replicas: {replicas}}}
"""

PROMETHEUS = """global:
  scrape_interval: 15s
scrape_configs:
  - job_name: rag-api
    static_configs: [{targets: ["api:9100"]}]
  - job_name: rag-backup
    static_configs: [{targets: ["backup:9108"]}]
rule_files: ["alerts.yml"]
"""

ALERTS = """groups:
  - name: rag
    rules:
      - alert: BackupTooOld
        expr: time() - rag_backup_last_success_timestamp_seconds > 90000
        for: 10m
      - alert: RedisDown
        expr: up{job="redis"} == 0
        for: 2m
"""

K8S_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: rag-{name}, labels: {{app: rag-{name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: rag-{name}}}}}
  template:
    metadata: {{labels: {{app: rag-{name}}}}}
    spec:
      containers:
        - name: {name}
          image: registry.example.internal/rag-{name}:{version}
          envFrom: [{{secretRef: {{name: rag-secrets}}}}]
          resources: {{limits: {{memory: {memory}Mi, cpu: "{cpu}"}}}}
"""


def _secret(rng: np.random.Generator, n: int = 32) -> str:
    return rng.bytes(n).hex()


def _env(rng: np.random.Generator) -> str:
    lines = [
        f"OPENAI_API_KEY=sk-bench-{_secret(rng, 24)}",
        f"REDIS_PASSWORD={_secret(rng, 16)}",
        f"CHROMA_SERVER_AUTHN_CREDENTIALS={_secret(rng, 16)}",
        f"AWS_SECRET_ACCESS_KEY={_secret(rng, 20)}",
        "AWS_ACCESS_KEY_ID=AKIABENCHBENCHBENCH0",
        "CHROMA_HOST=chromadb", "REDIS_URL=redis://redis:6379/0", "EMBEDDING_DIM=384",
        f"JWT_SECRET={_secret(rng)}",
    ]
    return "\n".join(lines) + "\n"


def _dashboard(rng: np.random.Generator, name: str) -> str:
    panels = [{"id": i, "title": f"{name} panel {i}", "type": "timeseries",
               "targets": [{"expr": f"rate(rag_{name}_requests_total[5m]) * {int(rng.integers(1, 9))}"}]}
              for i in range(int(rng.integers(6, 20)))]
    return json.dumps({"title": f"RAG {name}", "panels": panels}, indent=2)


def config_files(seed: int) -> dict[str, str]:
    """Relative path -> content for every file under config/."""
    rng = np.random.default_rng([seed, 5])
    version = f"1.{int(rng.integers(0, 30))}.{int(rng.integers(0, 10))}"
    files = {
        ".env": _env(rng),
        ".env.example": "OPENAI_API_KEY=\nREDIS_PASSWORD=\nCHROMA_HOST=chromadb\n",
        "docker-compose.yml": COMPOSE.format(version=version, replicas=int(rng.integers(2, 6))),
        "docker-compose.prod.yml": COMPOSE.format(version=version, replicas=8),
        "monitoring/prometheus.yml": PROMETHEUS,
        "monitoring/alerts.yml": ALERTS,
        "k8s/secret.yaml": f"apiVersion: v1\nkind: Secret\nmetadata: {{name: rag-secrets}}\n"
                           f"stringData: {{JWT_SECRET: {_secret(rng)}}}\n",
    }
    for name in ("api", "worker", "ingest"):
        files[f"monitoring/grafana/dashboards/{name}.json"] = _dashboard(rng, name)
        files[f"k8s/{name}-deployment.yaml"] = K8S_DEPLOYMENT.format(
            name=name, replicas=int(rng.integers(1, 6)), version=version,
            memory=int(rng.integers(4, 64)) * 128, cpu=int(rng.integers(1, 8)))
    return files


def write_config(root: Path, seed: int) -> int:
    """Write config/; return the number of files."""
    files = config_files(seed)
    for rel, text in files.items():
        write_bytes(root / "config" / rel, text.encode(), BASE_EPOCH - 3 * DAY)
    (root / "config" / ".env").chmod(0o600)
    return len(files)

