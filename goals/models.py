"""Models of the experiments, built by name.

- ``mlp`` (digits): flatten, two hidden layers of ``128 * width`` units with ReLU.
- ``cnn`` (digits): two 3x3 conv layers (``16`` and ``32 * width`` channels) with ReLU and 2x2 max
  pooling, then one hidden layer of ``64 * width`` units.
- ``3c3d`` (CIFAR on CPU): the DeepOBS "3c3d" network: conv 64 5x5 valid, conv 96 3x3 valid, conv
  128 3x3 same, each followed by ReLU and 3x3 stride-2 max pooling, then dense layers of 512 and
  256 units with ReLU (channels and units ``* width``).
- ``resnet18`` (CIFAR on GPU): torchvision's ResNet-18 with the usual CIFAR stem: the 7x7 stride-2
  first convolution becomes 3x3 stride 1 and the max pooling after it is removed; stage widths
  64/128/256/512 ``* width``.
- ``efficientnet_b0`` (CIFAR on GPU): timm's EfficientNet-B0 (``pretrained=False``), adapted to
  32x32 inputs by giving the stem convolution stride 1 instead of 2, so the last feature map is
  2x2 rather than 1x1 (overall stride 16, not 32). All else is timm's, including its channel
  rounding, with ``channel_multiplier = width``.

``width`` scales channel and unit counts (rounded, at least 1), to make CPU-sized variants of the
same shapes; ``width=1`` is the published size. The 3c3d pooling uses PyTorch padding 1, which
gives the same feature-map sizes (28 -> 14, 12 -> 6, 6 -> 3 at 32x32) as TensorFlow's "same"
pooling used by DeepOBS. DeepOBS also adds L2 weight decay to 3c3d; here weight decay, if wanted,
belongs to the optimizer (``optimizer`` overrides of a run).

Nothing is downloaded: every model starts from its library's default random initialisation, seeded
by the caller (:func:`goals.runs.run_one` seeds torch before building the model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Model names accepted by :func:`build_model`.
MODELS: tuple[str, ...] = ("mlp", "cnn", "3c3d", "resnet18", "efficientnet_b0")


def scaled(channels: int, width: float) -> int:
    """Return ``channels * width`` rounded to an integer, at least 1."""
    return max(1, int(round(channels * width)))


def build_model(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float = 1.0,
) -> nn.Module:
    """Build a freshly initialised classifier that maps ``(N, C, H, W)`` images to logits.

    Args:
        name: one of :data:`MODELS`.
        num_classes: number of output logits.
        in_channels: channels of the input images.
        image_size: height (= width) of the input images in pixels.
        width: channel multiplier (``1.0`` = published size).

    Returns:
        The model, on the CPU, in training mode.

    Raises:
        ValueError: unknown name, non-positive width, or an image too small for the model.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    builders: dict[str, Callable[..., nn.Module]] = {
        "mlp": _mlp,
        "cnn": _cnn,
        "3c3d": _three_c_three_d,
        "resnet18": _resnet18,
        "efficientnet_b0": _efficientnet_b0,
    }
    return builders[name](num_classes, in_channels, image_size, width)


def _flat_size(features: nn.Module, in_channels: int, image_size: int) -> int:
    # One dummy forward pass tells the size the classifier head receives.
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, in_channels, image_size, image_size))
    except RuntimeError as error:
        raise ValueError(f"image size {image_size} is too small for this model ({error})") \
            from error
    if out.numel() == 0:
        raise ValueError(f"image size {image_size} is too small for this model")
    return out.numel()


def _mlp(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    hidden = scaled(128, width)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _cnn(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    c1, c2, hidden = scaled(16, width), scaled(32, width), scaled(64, width)
    features = nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    flat = _flat_size(features, in_channels, image_size)
    return nn.Sequential(
        features,
        nn.Linear(flat, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _three_c_three_d(num_classes: int, in_channels: int, image_size: int,
                     width: float) -> nn.Module:
    c1, c2, c3 = scaled(64, width), scaled(96, width), scaled(128, width)
    d1, d2 = scaled(512, width), scaled(256, width)
    features = nn.Sequential(
        nn.Conv2d(in_channels, c1, 5),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(c1, c2, 3),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(c2, c3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Flatten(),
    )
    flat = _flat_size(features, in_channels, image_size)
    return nn.Sequential(
        features,
        nn.Linear(flat, d1),
        nn.ReLU(),
        nn.Linear(d1, d2),
        nn.ReLU(),
        nn.Linear(d2, num_classes),
    )


def _resnet18(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    class CifarResNet(ResNet):
        """torchvision's ResNet with a 3x3 stride-1 stem, no max pooling, scaled widths."""

        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001
            # torchvision builds the stages with planes 64, 128, 256, 512 and tracks the input
            # channels in self.inplanes; scaling planes here scales the whole network.
            if planes == 64:
                self.inplanes = scaled(64, width)
            return super()._make_layer(block, scaled(planes, width), blocks, stride, dilate)

    model = CifarResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    stem = scaled(64, width)
    model.conv1 = nn.Conv2d(in_channels, stem, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.bn1 = nn.BatchNorm2d(stem)
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(scaled(512, width), num_classes)
    return model


def _efficientnet_b0(num_classes: int, in_channels: int, image_size: int,
                     width: float) -> nn.Module:
    try:
        # timm's public entry point fixes channel_multiplier=1; its generator takes it as an
        # argument, which is how a width other than 1 is built.
        from timm.models.efficientnet import _gen_efficientnet
    except ImportError as error:
        raise ImportError(
            "efficientnet_b0 needs timm: pip install 'goals-companion[models]' "
            "(or pip install timm)"
        ) from error

    model = _gen_efficientnet(
        "efficientnet_b0",
        channel_multiplier=width,
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_channels,
    )
    # 32x32 adaptation: stem stride 2 -> 1 (padding 1 keeps the spatial size for a 3x3 kernel).
    model.conv_stem.stride = (1, 1)
    return model
