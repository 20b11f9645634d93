"""Builders: task shapes/dtypes, split == un-split forward, exit placement, metadata."""

from __future__ import annotations

import json

import pytest
import torch

from mdi_exit_ros.model import EarlyExitModel, build_model, list_models
from mdi_exit_ros.model.builders import (
    MOBILENET_V2_DEFAULT_CUTS,
    RESNET50_DEFAULT_CUTS,
    backbone_blocks,
    block_costs,
)
from mdi_exit_ros.model.profiling import balanced_cuts

torch.set_num_threads(1)

# (name, kwargs, batch) - small variants for the heavy checks
SMALL = [
    ("fmnist_cnn_ee", {}, 3),
    ("mobilenet_v2_ee", {"input_size": 32}, 2),
    ("mobilenet_v2_ee", {"input_size": 32, "width_mult": 0.5, "strides": [1, 2, 2, 2, 1, 2, 1]}, 2),
    ("resnet50_ee", {"input_size": 32, "codecs": ["identity", "identity"]}, 1),
]
EXITS = {"fmnist_cnn_ee": 3, "mobilenet_v2_ee": 5, "resnet50_ee": 3}


def _seeded(name, **kw) -> EarlyExitModel:
    torch.manual_seed(0)
    return build_model(name, **kw).eval()


def test_registry_lists_builders():
    assert {"fmnist_cnn_ee", "mobilenet_v2_ee", "resnet50_ee"} <= set(list_models())
    with pytest.raises(KeyError, match="unknown model"):
        build_model("nope")


@pytest.mark.parametrize(("name", "kw", "n"), SMALL)
def test_tasks_shapes_dtypes_and_split_equals_forward(name, kw, n):
    m = _seeded(name, **kw)
    spec = m.input_spec
    assert m.num_exits == EXITS[name]
    x = torch.randn(n, spec.channels, spec.size, spec.size)
    with torch.no_grad():
        full = m(x)
        assert len(full) == m.num_exits
        h = x
        for k in range(1, m.num_exits + 1):
            h_in_shape = tuple(h.shape)
            feats, logits = m.run_task(k, h)
            assert h.dtype == torch.float32 and feats.dtype == torch.float32
            assert logits.shape == (n, m.num_classes) and logits.dtype == torch.float32
            assert feats.shape[0] == n and feats.ndim == 4, h_in_shape
            torch.testing.assert_close(logits, full[k - 1], rtol=1e-5, atol=1e-5)
            if k < m.num_exits:
                wire = m.encode(k, feats)
                assert torch.equal(wire, feats)  # identity codec: exact
                h = m.decode(k, wire)
    prof = m.profile()
    assert len(prof.task_flops) == m.num_exits and all(f > 0 for f in prof.task_flops)
    assert len(prof.cut_wire_bytes) == m.num_exits - 1


def test_task_index_is_one_based_and_checked():
    m = _seeded("fmnist_cnn_ee")
    with pytest.raises(IndexError):
        m.run_task(0, torch.zeros(1, 1, 28, 28))
    with pytest.raises(IndexError):
        m.run_task(4, torch.zeros(1, 1, 28, 28))
    with pytest.raises(IndexError):
        m.encode(3, torch.zeros(1))


def test_224_variants_single_shape_check():
    """One forward at 224x224 for the paper-sized variants (batch 1)."""
    for name, n_exits in (("mobilenet_v2_ee", 5), ("resnet50_ee", 3)):
        m = _seeded(name, input_size=224)
        with torch.no_grad():
            outs = m(torch.randn(1, 3, 224, 224))
        assert [tuple(o.shape) for o in outs] == [(1, 10)] * n_exits
        prof = m.profile()
        if name == "resnet50_ee":
            # the paper's crossing at cut 1: 256x56x56 fp32 = 3.2 MB
            assert prof.cut_shapes[0] == [256, 56, 56]
            assert prof.cut_raw_bytes[0] == 256 * 56 * 56 * 4
            assert prof.cut_wire_bytes[0] == 16 * 14 * 14 * 4  # autoencoder code, 12.5 KB


def test_fmnist_tasks_are_balanced_and_cheap():
    m = _seeded("fmnist_cnn_ee")
    f = m.profile().task_flops
    assert max(f) / min(f) < 1.5
    assert sum(f) < 20e6


@pytest.mark.parametrize(
    ("key", "cuts"), [(k, v) for k, v in MOBILENET_V2_DEFAULT_CUTS.items() if k[0] == 32]
)
def test_mobilenet_default_cuts_are_the_balanced_ones(key, cuts):
    size, stem, strides = key
    m = build_model("mobilenet_v2_ee", input_size=size, cifar_stem=stem, strides=list(strides))
    assert m.info.arch_kwargs["cuts"] is None
    blocks = backbone_blocks(m)
    flops, heads, _ = block_costs(blocks, m.input_spec, 128, 1)
    assert balanced_cuts(flops, 5, head_costs=heads) == cuts
    tasks = m.profile().task_flops
    assert max(tasks) / min(tasks) < 2.0  # similar cost per task (paper, footnote 1)


@pytest.mark.parametrize(
    ("key", "cuts"), [(k, v) for k, v in RESNET50_DEFAULT_CUTS.items() if k[0] == 32]
)
def test_resnet_default_cuts_keep_cut1_after_layer1(key, cuts):
    size, stem, stride = key
    m = build_model("resnet50_ee", input_size=size, cifar_stem=stem, stem_stride=stride,
                    codecs=["identity", "identity"])
    assert m.info.arch_kwargs["cuts"] is None
    flops, heads, _ = block_costs(backbone_blocks(m), m.input_spec, 128, 1)
    assert balanced_cuts(flops, 3, fixed=[4], head_costs=heads) == cuts


def test_resnet_stride2_stem_quarters_the_maps():
    """The CPU-trainable CIFAR variant: layer1 at 16x16, the autoencoder code 16x4x4."""
    m = build_model("resnet50_ee", input_size=32, stem_stride=2, zero_init_residual=True)
    prof = m.profile()
    assert prof.cut_shapes == [[256, 16, 16], [1024, 4, 4]]
    assert prof.cut_wire_bytes[0] == 16 * 4 * 4 * 4
    full = build_model("resnet50_ee", input_size=32).profile()
    assert 0.2 < sum(prof.task_flops) / sum(full.task_flops) < 0.3
    # zero-init: every bottleneck's last BN starts at gamma 0, so each block starts as identity
    gammas = [mod.bn3.weight for s in m.stages for mod in s.modules() if hasattr(mod, "bn3")]
    assert len(gammas) == 16 and all(float(g.detach().abs().sum()) == 0.0 for g in gammas)
    with pytest.raises(ValueError):
        build_model("resnet50_ee", input_size=224, cifar_stem=False, stem_stride=2)
    with pytest.raises(ValueError):
        build_model("resnet50_ee", input_size=32, stem_stride=3)


def test_balanced_cuts_small_cases():
    assert balanced_cuts([1, 1, 1, 1], 2) == [2]
    assert balanced_cuts([5, 1, 1, 1, 1, 1], 2) == [1]
    assert balanced_cuts([1, 1, 1, 1], 2, fixed=[1]) == [1]
    assert balanced_cuts([1, 2, 3], 3) == [1, 2]
    with pytest.raises(ValueError):
        balanced_cuts([1, 2], 3)


def test_custom_cuts_and_validation():
    m = build_model("mobilenet_v2_ee", input_size=32, cuts=[2, 4, 6, 8])
    assert len(m.stages[0]) == 2
    with pytest.raises(ValueError):
        build_model("mobilenet_v2_ee", input_size=32, cuts=[4, 2, 6, 8])
    with pytest.raises(ValueError):
        build_model("mobilenet_v2_ee", input_size=32, cuts=[2, 4])


def test_metadata_is_json_and_complete():
    m = build_model("fmnist_cnn_ee")
    meta = m.metadata()
    json.dumps(meta)
    for key in ("arch", "arch_kwargs", "num_exits", "input_spec", "class_names", "codecs",
                "task_flops", "cut_wire_bytes", "cut_raw_bytes"):
        assert key in meta
    assert meta["input_spec"] == {"size": 28, "channels": 1, "mean": [0.286], "std": [0.353]}
    assert meta["class_names"][0] == "T-shirt/top"
    assert m.info.arch_kwargs["width"] == 32  # defaults are recorded
    with pytest.raises(TypeError):
        build_model("fmnist_cnn_ee", width=object())


def test_input_spec_normalize_resizes_and_scales():
    m = build_model("mobilenet_v2_ee", input_size=32)
    x = m.input_spec.normalize(torch.full((2, 3, 16, 16), 255, dtype=torch.uint8))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    expected = (1 - m.input_spec.mean[0]) / m.input_spec.std[0]
    assert abs(float(x[0, 0, 0, 0]) - expected) < 1e-4
