"""Shared pytest configuration: fixture modules live in tests/fixtures/.

Each fixture module starts a real component (S3 server, redis-server, Chroma,
dockerd, the rag-backup daemons) on loopback and stops it by PID.
Under CI=true a skipped test is a failure (fixtures.ci_skips).
"""
pytest_plugins = [
    "fixtures.ci_skips",
    "fixtures.procs",
    "fixtures.s3server",
    "fixtures.motoserver",
    "fixtures.s3tiers",
    "fixtures.redis_server",
    "fixtures.chroma_server",
    "fixtures.dockerd",
    "fixtures.components_e2e",
    "fixtures.stack",
    "fixtures.syslog_sink",
]

