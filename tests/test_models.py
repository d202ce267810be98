"""Models: forward and backward passes at their input sizes, adaptations, width, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from goals.models import MODELS, build_model

torch.set_num_threads(1)

#: (name, channels, image size, width) at which each model is exercised; small widths on CPU.
CASES = [
    ("mlp", 1, 8, 1.0),
    ("cnn", 1, 8, 1.0),
    ("3c3d", 3, 32, 0.25),
    ("resnet18", 3, 32, 0.125),
    ("efficientnet_b0", 3, 32, 0.25),
]


def test_cases_cover_every_model():
    assert sorted(name for name, *_ in CASES) == sorted(MODELS)


@pytest.mark.parametrize("name, channels, size, width", CASES)
def test_forward_and_backward(name, channels, size, width):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=channels, image_size=size, width=width)
    x = torch.randn(4, channels, size, size)
    logits = model(x)
    assert logits.shape == (4, 7)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name, channels, size, width", CASES)
def test_same_seed_same_initialisation(name, channels, size, width):
    torch.manual_seed(3)
    first = build_model(name, 10, channels, size, width)
    torch.manual_seed(3)
    second = build_model(name, 10, channels, size, width)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_3c3d_matches_deepobs_layer_sizes():
    model = build_model("3c3d", num_classes=10, in_channels=3, image_size=32)
    # conv 5x5x3x64, conv 3x3x64x96, conv 3x3x96x128, dense 3*3*128 -> 512 -> 256 -> 10.
    expected = ((5 * 5 * 3 * 64 + 64) + (3 * 3 * 64 * 96 + 96) + (3 * 3 * 96 * 128 + 128)
                + (1152 * 512 + 512) + (512 * 256 + 256) + (256 * 10 + 10))
    assert sum(p.numel() for p in model.parameters()) == expected


def test_resnet18_has_cifar_stem():
    model = build_model("resnet18", num_classes=10, in_channels=3, image_size=32, width=0.25)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.conv1.out_channels == 16 and model.fc.in_features == 128
    # Four stages: 32 -> 32 -> 16 -> 8 -> 4 pixels before pooling.
    features = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1,
                             model.layer2, model.layer3, model.layer4)
    assert features(torch.zeros(1, 3, 32, 32)).shape == (1, 128, 4, 4)


def test_resnet18_full_width_matches_torchvision_body():
    import torchvision

    ours = build_model("resnet18", num_classes=10, in_channels=3, image_size=32)
    reference = torchvision.models.resnet18(num_classes=10)
    # Only the stem differs: 3x3x3x64 instead of 7x7x3x64.
    difference = sum(p.numel() for p in reference.parameters()) - sum(
        p.numel() for p in ours.parameters())
    assert difference == (7 * 7 - 3 * 3) * 3 * 64


def test_efficientnet_b0_adapted_to_32_pixels():
    model = build_model("efficientnet_b0", num_classes=10, in_channels=3, image_size=32, width=0.25)
    assert model.conv_stem.stride == (1, 1)
    assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (2, 2)
    full = build_model("efficientnet_b0", num_classes=10, in_channels=3, image_size=32)
    assert model.num_features < full.num_features == 1280


def test_width_scales_parameters():
    small = build_model("cnn", 10, 1, 8, width=0.5)
    large = build_model("cnn", 10, 1, 8, width=2.0)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in large.parameters())


def test_errors():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg", 10, 3, 32)
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", 10, 1, 8, width=0.0)
    with pytest.raises(ValueError, match="too small"):
        build_model("3c3d", 10, 3, 8)
