"""torchvision-compatible ``mobilenet_v3_small`` and ``mobilenet_v3_large``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from pydantic import Field
from torch import nn

from modelpress_torch.architectures.registry import ArchitectureConfig, architecture
from modelpress_torch.architectures.torchvision_layers import (
    Conv2dNormActivation,
    SqueezeExcitation,
    init_like_torchvision,
    make_divisible,
)


@dataclass(frozen=True)
class BlockSpec:
    """One bottleneck row of the paper's table (channels before ``width_mult``)."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    activation: str  # "RE" (ReLU) or "HS" (Hardswish)
    stride: int


_SMALL = [
    BlockSpec(16, 3, 16, 16, True, "RE", 2),
    BlockSpec(16, 3, 72, 24, False, "RE", 2),
    BlockSpec(24, 3, 88, 24, False, "RE", 1),
    BlockSpec(24, 5, 96, 40, True, "HS", 2),
    BlockSpec(40, 5, 240, 40, True, "HS", 1),
    BlockSpec(40, 5, 240, 40, True, "HS", 1),
    BlockSpec(40, 5, 120, 48, True, "HS", 1),
    BlockSpec(48, 5, 144, 48, True, "HS", 1),
    BlockSpec(48, 5, 288, 96, True, "HS", 2),
    BlockSpec(96, 5, 576, 96, True, "HS", 1),
    BlockSpec(96, 5, 576, 96, True, "HS", 1),
]

_LARGE = [
    BlockSpec(16, 3, 16, 16, False, "RE", 1),
    BlockSpec(16, 3, 64, 24, False, "RE", 2),
    BlockSpec(24, 3, 72, 24, False, "RE", 1),
    BlockSpec(24, 5, 72, 40, True, "RE", 2),
    BlockSpec(40, 5, 120, 40, True, "RE", 1),
    BlockSpec(40, 5, 120, 40, True, "RE", 1),
    BlockSpec(40, 3, 240, 80, False, "HS", 2),
    BlockSpec(80, 3, 200, 80, False, "HS", 1),
    BlockSpec(80, 3, 184, 80, False, "HS", 1),
    BlockSpec(80, 3, 184, 80, False, "HS", 1),
    BlockSpec(80, 3, 480, 112, True, "HS", 1),
    BlockSpec(112, 3, 672, 112, True, "HS", 1),
    BlockSpec(112, 5, 672, 160, True, "HS", 2),
    BlockSpec(160, 5, 960, 160, True, "HS", 1),
    BlockSpec(160, 5, 960, 160, True, "HS", 1),
]

_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


class InvertedResidual(nn.Module):
    """[expand 1x1] -> depthwise -> [squeeze-excite] -> project 1x1; keys ``block.N.*``."""

    def __init__(self, spec: BlockSpec, width_mult: float):
        super().__init__()
        inp = make_divisible(spec.input_channels * width_mult)
        expanded = make_divisible(spec.expanded_channels * width_mult)
        out = make_divisible(spec.out_channels * width_mult)
        self.use_res_connect = spec.stride == 1 and inp == out
        activation = nn.Hardswish if spec.activation == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(Conv2dNormActivation(inp, expanded, 1, norm_layer=_NORM, activation_layer=activation))
        layers.append(
            Conv2dNormActivation(
                expanded,
                expanded,
                spec.kernel,
                spec.stride,
                groups=expanded,
                norm_layer=_NORM,
                activation_layer=activation,
            )
        )
        if spec.use_se:
            squeeze = make_divisible(expanded // 4)
            layers.append(SqueezeExcitation(expanded, squeeze, scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(expanded, out, 1, norm_layer=_NORM, activation_layer=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    def __init__(self, specs: list[BlockSpec], last_channel: int, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        first = make_divisible(specs[0].input_channels * width_mult)
        layers: list[nn.Module] = [
            Conv2dNormActivation(3, first, stride=2, norm_layer=_NORM, activation_layer=nn.Hardswish)
        ]
        layers += [InvertedResidual(spec, width_mult) for spec in specs]
        lastconv_in = make_divisible(specs[-1].out_channels * width_mult)
        lastconv_out = 6 * lastconv_in
        layers.append(
            Conv2dNormActivation(lastconv_in, lastconv_out, 1, norm_layer=_NORM, activation_layer=nn.Hardswish)
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last_channel = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv_out, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        init_like_torchvision(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class MobileNetV3Config(ArchitectureConfig):
    num_classes: int = Field(default=1000, ge=1)
    width_mult: float = Field(default=1.0, gt=0, le=4)
    dropout: float = Field(default=0.2, ge=0, lt=1)


def _register(name: str, specs: list[BlockSpec], last_channel: int) -> None:
    def build(config: MobileNetV3Config) -> nn.Module:
        return MobileNetV3(specs, last_channel, config.num_classes, config.width_mult, config.dropout)

    architecture(
        name,
        MobileNetV3Config,
        input_shape=lambda c: [1, 3, 224, 224],
        description=f"torchvision {name}; loads torchvision checkpoints",
        family="mobilenet",
    )(build)


_register("mobilenet_v3_small", _SMALL, 1024)
_register("mobilenet_v3_large", _LARGE, 1280)
