"""Shared fixtures: a real model trained on real data (cached), and marks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester", "tests.ci_skips"]  # ci_skips: under CI a skipped test fails the run

CACHE = Path(os.environ.get("MODELPRESS_TEST_CACHE", Path(__file__).parent / ".cache"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def digits_mlp_path() -> Path:
    """mlp [784, 300, 100, 10] trained on scikit-learn's real digits; cached across runs."""
    from modelpress.examples import save_digits_mlp

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "digits_mlp_seed0.safetensors"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        save_digits_mlp(tmp)
        tmp.replace(path)
    return path


@pytest.fixture(scope="session")
def digits_lenet5_path() -> Path:
    """lenet5 trained on scikit-learn's real digits (28x28, 8 epochs); cached across runs."""
    import torch
    from safetensors.torch import save_file

    from modelpress.datasets import digits_28x28
    from modelpress.examples import fit_classifier
    from modelpress_torch.architectures import build_model

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "digits_lenet5_seed0.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        x_train, y_train, _, _ = digits_28x28(0)
        model = fit_classifier(build_model("lenet5", {}), x_train.reshape(-1, 1, 28, 28), y_train, epochs=8, seed=0)
        tmp = path.with_suffix(".tmp")
        save_file(model.state_dict(), str(tmp))
        tmp.replace(path)
    return path


@pytest.fixture(scope="session")
def digits_test_set():
    from modelpress.datasets import digits_28x28

    _, _, x_test, y_test = digits_28x28()
    return x_test, y_test
