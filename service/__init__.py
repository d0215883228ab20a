"""The HTTP edge of modelpress: routes, dependencies, the problem handler, templates. Never imports torch or ``worker``."""
