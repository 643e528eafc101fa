"""Benchmark harness: seeded RAG-stack datasets; restic, borg, tar and rag-backup measured alike.

In: a scale, a seed and a tool list (python -m bench.run). Out: Markdown + JSON reports in bench/results/.
"""
