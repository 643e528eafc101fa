"""Benchmark harness: seeded RAG-stack datasets, peer tools (restic, borg, tar) and rag-backup, measured alike.

In: a scale, a seed and a tool list (python -m bench.run). Out: Markdown and JSON reports under bench/results/.
"""
