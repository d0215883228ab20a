"""torchvision-compatible VGGs: ``vgg11``, ``vgg11_bn``, ``vgg16``, ``vgg16_bn``."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelpress_torch.architectures.registry import ArchitectureConfig, architecture
from modelpress_torch.architectures.torchvision_layers import init_like_torchvision

# conv widths, "M" = 2x2 max-pool (torchvision's configurations "A" and "D")
_LAYOUTS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def _make_features(layout: list[int | str], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for v in layout:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        init_like_torchvision(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class VGGConfig(ArchitectureConfig):
    num_classes: int = Field(default=1000, ge=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)


def _register(name: str, layout: list[int | str], batch_norm: bool) -> None:
    def build(config: VGGConfig) -> nn.Module:
        return VGG(_make_features(layout, batch_norm), config.num_classes, config.dropout)

    architecture(
        name,
        VGGConfig,
        input_shape=lambda c: [1, 3, 224, 224],
        description=f"torchvision {name}; loads torchvision checkpoints",
        family="vgg",
    )(build)


for _base, _layout in _LAYOUTS.items():
    _register(_base, _layout, batch_norm=False)
    _register(f"{_base}_bn", _layout, batch_norm=True)
