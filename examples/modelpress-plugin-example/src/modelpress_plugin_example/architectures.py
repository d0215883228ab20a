"""Registers ``tiny_convnet`` with modelpress when the worker imports this module."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelpress_torch.architectures import ArchitectureConfig, architecture


class TinyConvNetConfig(ArchitectureConfig):
    """Config fields become the API's JSON schema; unknown keys are rejected."""

    in_channels: int = Field(default=1, ge=1)
    num_classes: int = Field(default=10, ge=1)
    width: int = Field(default=8, ge=1, description="channels of the first conv; the second has twice as many")
    image_size: int = Field(default=28, ge=4)


class TinyConvNet(nn.Module):
    def __init__(self, config: TinyConvNetConfig):
        super().__init__()
        w = config.width
        self.conv1 = nn.Conv2d(config.in_channels, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(2 * w, config.num_classes)

    def forward(self, x):
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        return self.head(x.mean(dim=(2, 3)))


@architecture(
    "tiny_convnet",
    TinyConvNetConfig,
    input_shape=lambda c: [1, c.in_channels, c.image_size, c.image_size],
    description="two 3x3 convs and a linear head (example plugin)",
    family="cnn",
)
def build_tiny_convnet(config: TinyConvNetConfig) -> nn.Module:
    return TinyConvNet(config)
