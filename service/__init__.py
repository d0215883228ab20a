"""The HTTP side of modelpress. Never imports torch."""

__version__ = "0.1.0"
