"""rag-backup: backup and disaster recovery for production RAG stacks."""
__version__ = "0.1.0"
