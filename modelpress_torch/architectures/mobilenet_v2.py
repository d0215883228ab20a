"""torchvision-compatible ``mobilenet_v2`` (same state_dict keys and shapes)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelpress_torch.architectures.registry import ArchitectureConfig, architecture
from modelpress_torch.architectures.torchvision_layers import Conv2dNormActivation, init_like_torchvision, make_divisible

# expansion t, output channels c, repeats n, first stride s
_INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1); keys ``conv.N.*``."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2):
        super().__init__()
        input_channel = make_divisible(32 * width_mult)
        last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2, activation_layer=nn.ReLU6)]
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, last_channel, kernel_size=1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))
        init_like_torchvision(self)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(x.flatten(1))


class MobileNetV2Config(ArchitectureConfig):
    num_classes: int = Field(default=1000, ge=1)
    width_mult: float = Field(default=1.0, gt=0, le=4)
    dropout: float = Field(default=0.2, ge=0, lt=1)


@architecture(
    "mobilenet_v2",
    MobileNetV2Config,
    input_shape=lambda c: [1, 3, 224, 224],
    description="torchvision mobilenet_v2; loads torchvision checkpoints",
    family="mobilenet",
)
def build_mobilenet_v2(config: MobileNetV2Config) -> nn.Module:
    return MobileNetV2(config.num_classes, config.width_mult, config.dropout)
