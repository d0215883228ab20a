"""Train the small real models the demo, README and tests use."""

from __future__ import annotations

from pathlib import Path

MLP_SIZES = [784, 300, 100, 10]


def train_digits_mlp(epochs: int = 15, seed: int = 0):
    """The spec's ``mlp`` [784, 300, 100, 10], trained on real digits. Returns (model, test accuracy)."""
    import torch

    from modelpress.datasets import digits_28x28

    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = digits_28x28(seed)
    layers = []
    for i, (a, b) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(MLP_SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = fit_classifier(torch.nn.Sequential(*layers), x_train, y_train, epochs=epochs, seed=seed)
    return model, accuracy(model, x_test, y_test)


def fit_classifier(model, x, y, *, epochs: int, seed: int, lr: float = 1e-3, batch_size: int = 64):
    """Adam on cross-entropy, seeded shuffles; ``x``/``y`` numpy arrays or tensors. Returns the model in eval mode."""
    import torch

    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=generator).split(batch_size):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
    return model.eval()


def accuracy(model, x, y) -> float:
    import torch

    with torch.inference_mode():
        predictions = model(torch.as_tensor(x)).argmax(1).numpy()
    return float((predictions == y).mean())


def save_digits_mlp(path: str | Path, epochs: int = 15, seed: int = 0) -> float:
    from safetensors.torch import save_file

    model, acc = train_digits_mlp(epochs, seed)
    save_file(model.state_dict(), str(path))
    return acc
