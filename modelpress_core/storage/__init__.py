"""Persistence: Redis keys and the job repository, and the artifact store."""
