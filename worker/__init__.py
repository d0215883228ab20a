"""The compute side of modelpress: Celery worker, model loading, compression methods."""
