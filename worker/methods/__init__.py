"""Compression methods: one module per method, each registering handlers for its step configs."""

from worker.methods.registry import StepContext, apply_step, handler_for

__all__ = ["StepContext", "apply_step", "handler_for"]
