"""The torch-free, FastAPI-free contracts both the API (``service``) and the workers (``worker``)
import: job record and states, spec and steps, capability table, errors, settings, Redis keys and
repositories, artifact stores, upload intake checks, artifact formats. Imports neither of them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modelpress")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
