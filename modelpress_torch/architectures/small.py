"""Small architectures: ``mlp`` (a plain ``nn.Sequential``), ``lenet5``, ``lenet_300_100`` and ``cnn``."""

from __future__ import annotations

from pydantic import Field, PositiveInt, model_validator
from torch import nn

from modelpress_torch.architectures.registry import ArchitectureConfig, architecture


class MLPConfig(ArchitectureConfig):
    sizes: list[int] = Field(default=[784, 300, 100, 10], min_length=2, description="layer widths, input first")
    activation: str = Field(default="relu", pattern="^(relu|gelu|tanh)$")


_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@architecture(
    "mlp",
    MLPConfig,
    input_shape=lambda c: [1, c.sizes[0]],
    description="nn.Sequential(Linear, act, Linear, act, ..., Linear); keys 0.weight, 0.bias, 2.weight, ...",
    family="mlp",
)
def build_mlp(config: MLPConfig) -> nn.Module:
    layers: list[nn.Module] = []
    pairs = list(zip(config.sizes[:-1], config.sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(pairs) - 1:
            layers.append(_ACTIVATIONS[config.activation]())
    return nn.Sequential(*layers)


class LeNet5Config(ArchitectureConfig):
    num_classes: int = Field(default=10, ge=1)
    in_channels: int = Field(default=1, ge=1)


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 inputs (padding 2 on the first conv, as for MNIST)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@architecture(
    "lenet5",
    LeNet5Config,
    input_shape=lambda c: [1, c.in_channels, 28, 28],
    description="LeNet-5 (conv 6-16, fc 120-84-classes) for 28x28 images",
    family="cnn",
)
def build_lenet5(config: LeNet5Config) -> nn.Module:
    return LeNet5(config.num_classes, config.in_channels)


class LeNet300100Config(ArchitectureConfig):
    in_features: int = Field(default=784, ge=1)
    num_classes: int = Field(default=10, ge=1)


class LeNet300100(nn.Module):
    """The fully connected LeNet-300-100: ``fc1`` (in->300), ``fc2`` (300->100), ``fc3`` (100->classes)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.fc1(x.flatten(1)))
        return self.fc3(self.relu(self.fc2(x)))


@architecture(
    "lenet_300_100",
    LeNet300100Config,
    input_shape=lambda c: [1, c.in_features],
    description="LeNet-300-100 MLP; keys fc1.*, fc2.*, fc3.*; flattens image inputs",
    family="mlp",
)
def build_lenet_300_100(config: LeNet300100Config) -> nn.Module:
    return LeNet300100(config.in_features, config.num_classes)


class CNNConfig(ArchitectureConfig):
    in_channels: int = Field(default=3, ge=1)
    num_classes: int = Field(default=10, ge=1)
    channels: list[PositiveInt] = Field(
        default=[32, 64, 128], min_length=1, max_length=8, description="conv widths, one block each"
    )
    image_size: int = Field(default=32, ge=2, description="input height = width")

    @model_validator(mode="after")
    def _fits(self):
        if self.image_size < 2 ** len(self.channels):
            raise ValueError(f"image_size must be at least {2 ** len(self.channels)} for {len(self.channels)} blocks")
        return self


class CNN(nn.Module):
    """Blocks of conv3x3-BN-ReLU-maxpool2 in ``features``, global average pool, Linear ``classifier``."""

    def __init__(self, in_channels: int, num_classes: int, channels: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for width in channels:
            layers += [
                nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@architecture(
    "cnn",
    CNNConfig,
    input_shape=lambda c: [1, c.in_channels, c.image_size, c.image_size],
    description="configurable CNN: per width, features.{4i} conv / {4i+1} bn (+relu, maxpool); classifier Linear",
    family="cnn",
)
def build_cnn(config: CNNConfig) -> nn.Module:
    return CNN(config.in_channels, config.num_classes, config.channels)
