"""Example modelpress plugin; the architectures live in ``modelpress_plugin_example.architectures``."""
