"""Imports every built-in architecture module so their ``@architecture`` decorators run."""

from modelpress_torch.architectures import (  # noqa: F401
    bert,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    small,
    vgg,
)
