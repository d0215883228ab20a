"""torchvision-compatible ResNets: ``resnet18/34/50/101/152`` (same state_dict keys and shapes)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelpress_torch.architectures.registry import ArchitectureConfig, architecture
from modelpress_torch.architectures.torchvision_layers import init_like_torchvision


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride, padding=1, groups=groups, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and width_per_group=64")
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers: list[int], num_classes=1000, groups=1, width_per_group=64):
        super().__init__()
        self.inplanes = 64
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_like_torchvision(self, linear_std=None)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class BasicResNetConfig(ArchitectureConfig):
    num_classes: int = Field(default=1000, ge=1)


class BottleneckResNetConfig(ArchitectureConfig):
    num_classes: int = Field(default=1000, ge=1)
    groups: int = Field(default=1, ge=1, description="grouped 3x3 convs (ResNeXt uses 32)")
    width_per_group: int = Field(default=64, ge=1, description="128 gives Wide ResNet")


def _imagenet_input(config) -> list[int]:
    return [1, 3, 224, 224]


_VARIANTS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], BasicResNetConfig),
    "resnet34": (BasicBlock, [3, 4, 6, 3], BasicResNetConfig),
    "resnet50": (Bottleneck, [3, 4, 6, 3], BottleneckResNetConfig),
    "resnet101": (Bottleneck, [3, 4, 23, 3], BottleneckResNetConfig),
    "resnet152": (Bottleneck, [3, 8, 36, 3], BottleneckResNetConfig),
}


def _register(name: str, block, layers: list[int], config_model) -> None:
    def build(config) -> nn.Module:
        extra = {}
        if isinstance(config, BottleneckResNetConfig):
            extra = {"groups": config.groups, "width_per_group": config.width_per_group}
        return ResNet(block, layers, config.num_classes, **extra)

    architecture(
        name,
        config_model,
        input_shape=_imagenet_input,
        description=f"torchvision {name} ({block.__name__} x {layers}); loads torchvision checkpoints",
        family="resnet",
    )(build)


for _name, (_block, _layers, _config) in _VARIANTS.items():
    _register(_name, _block, _layers, _config)
