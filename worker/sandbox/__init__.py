"""The sandbox around user model code: a fresh, confined child interpreter per job that runs user code.

    policy     which formats run user code; the read roots; the start-up overlap check
    landlock   the Landlock syscalls (filesystem, TCP, scopes)
    confine    what the child does to itself first: die with its parent, no network, Landlock
    protocol   the typed JSON-lines messages on the child's pipe, with a size cap per message
    child      the child's entry point (``python -m worker.sandbox.child``): confine, then run the pipeline
    host       the worker's side: start the child, relay progress, cancel, kill, collect the result
    outputs    the worker's checks on every result file the child names
    probe      the start-up probe: can a confined child be started on this host?

See docs/sandbox.md.
"""
