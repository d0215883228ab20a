"""docs/configuration.md is generated from the Settings class; these fail when the two disagree."""

from pathlib import Path

from scripts.export_config_docs import OUT, env_name, render, undocumented
from modelpress_core.config import Settings


def test_every_setting_has_a_description():
    assert undocumented() == [], "give these settings Field(description=...) in modelpress_core/config.py"


def test_committed_configuration_page_matches_the_settings_class():
    assert OUT.read_text() == render(), (
        "docs/configuration.md drifted from modelpress_core/config.py: run `python -m scripts.export_config_docs`"
    )


def test_the_page_names_every_environment_variable_once():
    page = OUT.read_text()
    for name in Settings.model_fields:
        assert page.count(f"| `{env_name(name)}` |") == 1, env_name(name)


def test_defaults_do_not_depend_on_the_machine():
    # data_dir defaults to ~/.modelpress, expanded when the class is defined; the page must say "~"
    assert str(Path.home()) not in render()
    assert "| `MODELPRESS_DATA_DIR` | path | `~/.modelpress` |" in render()
