"""Builders of early-exit models, registered by name (torchvision ``models/`` style).

Every builder takes only JSON-able keyword arguments; the resolved arguments
(defaults included) are stored in the model and its checkpoint so the exact
architecture can be rebuilt from a file without running any code from it.

Exit placement: a backbone is a list of blocks; the K-1 cuts are block
boundaries chosen so the tasks have similar FLOPs (paper, footnote 1) -
``balanced_cuts`` in :mod:`.profiling` finds them, and the defaults below are
its answers for each variant (``test_model_builders.py`` re-checks them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet50
from torchvision.ops.misc import Conv2dNormActivation

from .early_exit import EarlyExitModel, ExitHead, InputSpec, ModelInfo
from .profiling import balanced_cuts, block_flops, count_flops

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
FMNIST_MEAN = (0.2860,)
FMNIST_STD = (0.3530,)

MODEL_BUILDERS: dict[str, Callable[..., EarlyExitModel]] = {}


def register_model(fn: Callable[..., EarlyExitModel]) -> Callable[..., EarlyExitModel]:
    """Decorator: make ``fn`` buildable by name and record its resolved kwargs."""
    name = fn.__name__
    sig = inspect.signature(fn)

    def builder(**kwargs) -> EarlyExitModel:
        bound = sig.bind(**kwargs)
        bound.apply_defaults()
        resolved = {k: _jsonable(v) for k, v in bound.arguments.items()}
        model = fn(**bound.arguments)
        model.info.arch = name
        model.info.arch_kwargs = resolved
        return model

    builder.__name__ = name
    builder.__doc__ = fn.__doc__
    builder.__wrapped__ = fn  # type: ignore[attr-defined]
    MODEL_BUILDERS[name] = builder
    return builder


def _jsonable(v):
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"builder arguments must be JSON-able, got {type(v).__name__}")


def build_model(name: str, **kwargs) -> EarlyExitModel:
    """Build a registered architecture, e.g. ``build_model("mobilenet_v2_ee", input_size=32)``."""
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODEL_BUILDERS)}") from None
    return builder(**kwargs)


def with_codecs(model: EarlyExitModel, codecs: Sequence[str | dict]) -> EarlyExitModel:
    """The same network and weights with other codecs at its cuts (one spec per cut).

    How a learned codec is added to a trained model (``mdi-exit train --mode codec``): a
    codec whose weights fit is kept, a new one starts untrained.  The checkpoint of the
    result rebuilds with these codecs (they are part of ``arch_kwargs``).
    """
    if len(codecs) != model.num_exits - 1:
        raise ValueError(f"need {model.num_exits - 1} codecs (one per cut), got {len(codecs)}")
    new = build_model(model.arch, **{**model.info.arch_kwargs, "codecs": list(codecs)})
    target = new.state_dict()
    keep = {k: v for k, v in model.state_dict().items()
            if not k.startswith("codecs.") or (k in target and target[k].shape == v.shape)}
    missing, unexpected = new.load_state_dict(keep, strict=False)
    stray = [k for k in (*missing, *unexpected) if not k.startswith("codecs.")]
    if stray:
        raise ValueError(f"{model.arch}: the rebuilt model does not fit the weights: {stray[:5]}")
    return new


def list_models() -> list[str]:
    return sorted(MODEL_BUILDERS)


def _split(blocks: Sequence[nn.Module], cuts: Sequence[int]) -> list[nn.Sequential]:
    """Group blocks into stages at the cut positions (cut i: after blocks[:i])."""
    cuts = list(cuts)
    if cuts != sorted(set(cuts)) or (cuts and (cuts[0] < 1 or cuts[-1] >= len(blocks))):
        raise ValueError(f"cuts {cuts} must be increasing within 1..{len(blocks) - 1}")
    bounds = [0, *cuts, len(blocks)]
    return [nn.Sequential(*blocks[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _out_channels(blocks: Sequence[nn.Module], cut: int) -> int:
    """Channels after blocks[:cut]: those of the last conv of blocks[cut-1]."""
    convs = [m for m in blocks[cut - 1].modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class _ClassifierHead(nn.Sequential):
    """The backbone's own classifier (global pool, dropout, linear): the last exit."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(in_ch, num_classes),
        )


def _assemble(
    blocks: list[nn.Module],
    cuts: Sequence[int],
    final_channels: int,
    num_classes: int,
    input_spec: InputSpec,
    class_names: Sequence[str],
    head_hidden: int,
    head_pool: int,
    dropout: float,
    codecs: Sequence[str | dict] | None,
) -> EarlyExitModel:
    stages = _split(blocks, cuts)
    chans = [_out_channels(blocks, c) for c in cuts]
    heads: list[nn.Module] = [ExitHead(c, num_classes, head_hidden, head_pool) for c in chans]
    heads.append(_ClassifierHead(final_channels, num_classes, dropout))
    info = ModelInfo(arch="", arch_kwargs={}, input_spec=input_spec, class_names=list(class_names))
    return EarlyExitModel(stages, heads, info, codecs=codecs, feature_channels=chans)


def block_costs(
    blocks: Sequence[nn.Module], spec: InputSpec, head_hidden: int, head_pool: int,
    num_classes: int = 10,
) -> tuple[list[int], list[int], list[list[int]]]:
    """FLOPs of each block, of an exit head after each block, and the shapes there."""
    x = torch.zeros(1, spec.channels, spec.size, spec.size)
    was = [b.training for b in blocks]
    for b in blocks:
        b.eval()
    flops, shapes = block_flops(blocks, x)
    for b, w in zip(blocks, was, strict=True):
        b.train(w)
    heads = []
    for sh in shapes:
        head = ExitHead(sh[1], num_classes, head_hidden, head_pool).eval()
        heads.append(count_flops(lambda h=head, s=sh: h(torch.zeros(s))))
    return flops, heads, [list(s[1:]) for s in shapes]


def _balance(
    blocks: Sequence[nn.Module], spec: InputSpec, k: int, head_hidden: int, head_pool: int,
    fixed: Sequence[int] = (),
) -> list[int]:
    flops, heads, _ = block_costs(blocks, spec, head_hidden, head_pool)
    return balanced_cuts(flops, k, fixed=fixed, head_costs=heads)


MAX_INPUT_SIZE = 1024


def _check_size(input_size: int, minimum: int) -> None:
    """Refuse absurd sizes (a checkpoint's kwargs come from a file we did not write)."""
    if not isinstance(input_size, int) or not minimum <= input_size <= MAX_INPUT_SIZE:
        raise ValueError(f"input_size must be an int in {minimum}..{MAX_INPUT_SIZE}")


def _class_names(class_names: Sequence[str] | None, num_classes: int, default: list[str]):
    if class_names is None:
        same = num_classes == len(default)
        class_names = default if same else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    return list(class_names)


# --------------------------------------------------------------------------- MobileNetV2
# torchvision's MobileNetV2 feature blocks are features[0..18]: stem, 17 inverted
# residuals, the final 1x1 conv to 1280 channels.  Cut i = after features[:i].
TORCHVISION_MBV2_STRIDES = (1, 2, 2, 2, 1, 2, 1)
# CIFAR variant: stride-1 stem AND stride-1 second group (the 24-channel blocks run at
# 32x32, as in the common CIFAR MobileNetV2); the last features are 4x4, not 1x1.
CIFAR_MBV2_STRIDES = (1, 1, 2, 2, 1, 2, 1)
# balanced_cuts() answers, keyed by (input_size, cifar_stem, strides); see MODELS.md.
MOBILENET_V2_DEFAULT_CUTS = {
    (224, False, TORCHVISION_MBV2_STRIDES): [3, 8, 13, 16],
    (32, True, TORCHVISION_MBV2_STRIDES): [3, 8, 13, 16],
    (32, True, CIFAR_MBV2_STRIDES): [5, 11, 14, 17],
}


@register_model
def mobilenet_v2_ee(
    num_classes: int = 10,
    input_size: int = 224,
    width_mult: float = 1.0,
    cifar_stem: bool | None = None,
    strides: Sequence[int] | None = None,
    cuts: Sequence[int] | None = None,
    head_hidden: int = 128,
    head_pool: int = 1,
    dropout: float = 0.2,
    codecs: Sequence[str | dict] | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> EarlyExitModel:
    """MobileNetV2 (torchvision, weights=None) with 5 exits.

    ``cifar_stem`` (default: on when ``input_size`` <= 64) makes the stem conv
    stride 1 so a 32x32 image is not cut to 16x16 by the first layer;
    ``strides`` overrides the strides of the 7 inverted-residual groups
    (default torchvision's 1,2,2,2,1,2,1, or 1,1,2,2,1,2,1 with the CIFAR stem).
    ``cuts`` are the 4 block boundaries (default: balanced FLOPs, computed
    once per variant; unknown variants are balanced at build time).
    """
    _check_size(input_size, 16)
    if cifar_stem is None:
        cifar_stem = input_size <= 64
    if strides is None:
        strides = CIFAR_MBV2_STRIDES if cifar_stem else TORCHVISION_MBV2_STRIDES
    strides = [int(s) for s in strides]
    if len(strides) != 7:
        raise ValueError("strides needs one value per inverted-residual group (7)")
    setting = [
        [1, 16, 1, strides[0]],
        [6, 24, 2, strides[1]],
        [6, 32, 3, strides[2]],
        [6, 64, 4, strides[3]],
        [6, 96, 3, strides[4]],
        [6, 160, 3, strides[5]],
        [6, 320, 1, strides[6]],
    ]
    net = mobilenet_v2(
        weights=None, num_classes=num_classes, width_mult=width_mult,
        inverted_residual_setting=setting, dropout=dropout,
    )  # fmt: skip
    blocks = list(net.features)
    if cifar_stem:
        stem = blocks[0]
        blocks[0] = Conv2dNormActivation(
            3, stem[0].out_channels, kernel_size=3, stride=1,
            norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6,
        )  # fmt: skip
        nn.init.kaiming_normal_(blocks[0][0].weight, mode="fan_out")
    spec = InputSpec(input_size, 3, tuple(mean), tuple(std))
    if cuts is None:
        key = (input_size, bool(cifar_stem), tuple(strides))
        cuts = MOBILENET_V2_DEFAULT_CUTS.get(key) or _balance(
            blocks, spec, 5, head_hidden, head_pool
        )
    if len(cuts) != 4:
        raise ValueError("mobilenet_v2_ee has 5 exits: give 4 cuts")
    names = _class_names(class_names, num_classes, CIFAR10_CLASSES)
    return _assemble(
        blocks, cuts, net.last_channel, num_classes, spec, names,
        head_hidden, head_pool, dropout, codecs,
    )  # fmt: skip


def backbone_blocks(model: EarlyExitModel) -> list[nn.Module]:
    """The backbone blocks of a built model, in order (for exit placement)."""
    return [b for s in model.stages for b in s]


# --------------------------------------------------------------------------- ResNet-50
# Blocks: stem (conv1, bn1, relu, maxpool), layer1 (3), layer2 (4), layer3 (6), layer4 (3).
# Cut 1 is fixed after layer1 (block 4), where the paper puts its autoencoder
# (3.2 MB of fp32 features at 224x224); cuts 2 balance the rest.  Keyed by
# (input_size, cifar_stem, stem_stride); balanced_cuts() answers, re-checked by the tests.
RESNET50_DEFAULT_CUTS = {(224, False, 1): [4, 10], (32, True, 1): [4, 10], (32, True, 2): [4, 10]}


@register_model
def resnet50_ee(
    num_classes: int = 10,
    input_size: int = 224,
    cifar_stem: bool | None = None,
    stem_stride: int = 1,
    zero_init_residual: bool = False,
    cuts: Sequence[int] | None = None,
    head_hidden: int = 128,
    head_pool: int = 1,
    dropout: float = 0.0,
    codecs: Sequence[str | dict] | None = (
        {"name": "autoencoder", "code_channels": 16, "hidden_channels": 64},
        "identity",
    ),
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> EarlyExitModel:
    """ResNet-50 (torchvision, weights=None) with 3 exits and an autoencoder at cut 1.

    ``cifar_stem`` (default for ``input_size`` <= 64): 3x3 first conv and no
    max-pool, the usual CIFAR adaptation; ``stem_stride`` 2 (CIFAR stem only)
    halves the feature maps of every later layer, i.e. a quarter of the FLOPs,
    which is what makes ResNet-50 trainable on a CPU (docs/MODELS.md).
    ``zero_init_residual`` starts each bottleneck as the identity (last BN
    gamma = 0; Goyal et al. 2017), which helps short schedules.
    """
    _check_size(input_size, 16)
    if cifar_stem is None:
        cifar_stem = input_size <= 64
    if stem_stride not in (1, 2) or (stem_stride != 1 and not cifar_stem):
        raise ValueError("stem_stride must be 1 or 2, and 2 only with the CIFAR stem")
    net = resnet50(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, 3, stride=stem_stride, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        stem = nn.Sequential(net.conv1, net.bn1, net.relu)
    else:
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    blocks: list[nn.Module] = [stem, *net.layer1, *net.layer2, *net.layer3, *net.layer4]
    spec = InputSpec(input_size, 3, tuple(mean), tuple(std))
    if cuts is None:
        cuts = RESNET50_DEFAULT_CUTS.get((input_size, cifar_stem, stem_stride)) or _balance(
            blocks, spec, 3, head_hidden, head_pool, fixed=[4]
        )
    if len(cuts) != 2:
        raise ValueError("resnet50_ee has 3 exits: give 2 cuts")
    names = _class_names(class_names, num_classes, CIFAR10_CLASSES)
    return _assemble(
        blocks, cuts, 2048, num_classes, spec, names,
        head_hidden, head_pool, dropout, codecs,
    )  # fmt: skip


# --------------------------------------------------------------------------- FMNIST CNN
def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _PoolHead(nn.Sequential):
    """Cheap exit: average-pool to a small grid, then one linear layer."""

    def __init__(self, in_ch: int, num_classes: int, pool: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(pool),
            nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(in_ch * pool * pool, num_classes),
        )


@register_model
def fmnist_cnn_ee(
    num_classes: int = 10,
    input_size: int = 28,
    width: int = 32,
    dropout: float = 0.1,
    codecs: Sequence[str | dict] | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = FMNIST_MEAN,
    std: Sequence[float] = FMNIST_STD,
) -> EarlyExitModel:
    """A small 3-exit CNN for the embedded demo (28x28 grey, Fashion-MNIST).

    Five workers share two CPU cores in the demo, so a task must take well
    under 2 ms on one thread: three stages of two 3x3 convs each (widths
    w, 2w, 3w at 14, 7 and 4 pixels), sized so the tasks cost about the same
    (~4-5 MFLOPs each).  The exits pool to a small grid (cheap, and keeps the
    spatial layout that clothes are told apart by).
    """
    _check_size(input_size, 8)
    if not 2 <= width <= 1024:
        raise ValueError("width must be in 2..1024")
    w = width
    stages = [
        nn.Sequential(_conv_bn(1, w), _conv_bn(w, w, 2)),  # 28 -> 14
        nn.Sequential(_conv_bn(w, 2 * w, 2), _conv_bn(2 * w, 2 * w)),  # 14 -> 7
        nn.Sequential(_conv_bn(2 * w, 3 * w, 2), _conv_bn(3 * w, 3 * w)),  # 7 -> 4
    ]
    heads = [
        _PoolHead(w, num_classes, 4),
        _PoolHead(2 * w, num_classes, 3),
        _PoolHead(3 * w, num_classes, 2, dropout),
    ]
    spec = InputSpec(input_size, 1, tuple(mean), tuple(std))
    names = _class_names(class_names, num_classes, FMNIST_CLASSES)
    info = ModelInfo(arch="", arch_kwargs={}, input_spec=spec, class_names=names)
    return EarlyExitModel(stages, heads, info, codecs=codecs, feature_channels=[w, 2 * w])
