"""Shared contracts: no FastAPI, no torch, so both the service and the worker use them."""
