"""Checkpoints: safetensors round trip, and refusal of tampered/truncated/mismatched files."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mdi_exit_ros.model import CheckpointError, build_model, load_checkpoint, load_model
from mdi_exit_ros.model import save_checkpoint as save
from mdi_exit_ros.model.checkpoint import META_KEY, make_model_id, read_metadata

torch.set_num_threads(1)


def _model():
    torch.manual_seed(0)
    m = build_model("fmnist_cnn_ee", width=8)
    # non-trivial BN statistics so they are checked too
    m.train()
    with torch.no_grad():
        m(torch.randn(4, 1, 28, 28))
    return m.eval()


@pytest.fixture
def saved(tmp_path):
    m = _model()
    p = tmp_path / "m.safetensors"
    meta = save(m, p, {"exit_accuracy": [0.8, 0.85, 0.9], "thresholds": [0.9, 0.9, 0.0],
                       "dataset": "fmnist"})
    return m, p, meta


def _header_len(p) -> int:
    return struct.unpack("<Q", p.read_bytes()[:8])[0]


def test_round_trip(saved):
    m, p, meta = saved
    m2, meta2 = load_checkpoint(p)
    assert meta2 == json.loads(json.dumps(meta))
    assert meta2["model_id"].startswith("fmnist_cnn_ee-") and len(meta2["model_id"]) == 26
    assert meta2["dtype"] == "float16" and meta2["format_version"] == 1
    assert meta2["exit_accuracy"] == [0.8, 0.85, 0.9]
    assert meta2["input_spec"]["channels"] == 1 and meta2["class_names"][9] == "Ankle boot"
    assert [c["name"] for c in meta2["codecs"]] == ["identity", "identity"]
    assert not m2.training
    assert all(t.dtype == torch.float32 for t in m2.parameters())
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        for a, b in zip(m(x), m2(x), strict=True):
            torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)  # fp16 storage
    # the same weights give the same id; the metadata does not change it
    m3, _ = load_checkpoint(p)
    p2 = p.with_name("again.safetensors")
    assert save(m3, p2, {"thresholds": [0.5, 0.5, 0.0]})["model_id"] == meta["model_id"]


def test_fp32_storage_is_exact(tmp_path):
    m = _model()
    p = tmp_path / "m32.safetensors"
    save(m, p, dtype="float32")
    m2, meta = load_checkpoint(p)
    assert meta["dtype"] == "float32"
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_tampered_tensor_byte_is_refused(saved):
    _, p, _ = saved
    data = bytearray(p.read_bytes())
    pos = 8 + _header_len(p) + 100  # inside the tensor data
    data[pos] ^= 0x40
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model_id"):
        load_checkpoint(p)


def test_truncated_file_is_refused(saved):
    _, p, _ = saved
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 500])
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    p.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(p)


def test_garbage_and_missing_files(tmp_path):
    g = tmp_path / "g.safetensors"
    g.write_bytes(b"\x80\x04pickle-ish garbage")
    with pytest.raises(CheckpointError):
        load_checkpoint(g)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="neither a shipped model"):
        load_model("not_a_model_name")


def test_a_documented_but_unshipped_model_says_how_to_get_it():
    with pytest.raises(CheckpointError) as err:
        load_model("resnet50_ee_cifar10")
    msg = str(err.value)
    assert "'resnet50_ee_cifar10' is not available" in msg and "not shipped yet" in msg
    assert "mdi-exit train --model resnet50_ee" in msg and "docs/MODELS.md" in msg


def _rewrite(p, tensors, meta):
    """Write a self-consistent file (valid model_id) with changed content."""
    meta = dict(meta)
    meta["model_id"] = make_model_id(meta["arch"], tensors)
    save_file(tensors, str(p), metadata={META_KEY: json.dumps(meta)})


def _read(p):
    with safe_open(str(p), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()[META_KEY])


def test_mismatched_shapes_and_names_are_refused(saved):
    _, p, _ = saved
    tensors, meta = _read(p)
    bad = dict(tensors)
    key = "heads.0.3.weight"
    bad[key] = torch.zeros(10, 3, dtype=torch.float16)
    _rewrite(p, bad, meta)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(p)
    bad = dict(tensors)
    bad.pop(key)
    bad["extra.weight"] = torch.zeros(2, dtype=torch.float16)
    _rewrite(p, bad, meta)
    with pytest.raises(CheckpointError, match="missing.*unexpected"):
        load_checkpoint(p)
    # metadata that builds a different architecture than the tensors
    meta2 = dict(meta, arch_kwargs=dict(meta["arch_kwargs"], width=16))
    _rewrite(p, tensors, meta2)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_checkpoint(p)


def test_bad_metadata_is_refused(saved):
    _, p, _ = saved
    tensors, meta = _read(p)
    for change, msg in (
        ({"arch": "evil_net"}, "unknown architecture"),
        ({"format_version": 99}, "not supported"),
        ({"arch_kwargs": {"width": 8, "no_such_arg": 1}}, "cannot build"),
    ):
        _rewrite(p, tensors, dict(meta, **change))
        with pytest.raises(CheckpointError, match=msg):
            load_checkpoint(p)
    m2 = dict(meta)
    del m2["class_names"]
    _rewrite(p, tensors, m2)
    with pytest.raises(CheckpointError, match="lacks"):
        read_metadata(p)
    save_file(tensors, str(p))  # no metadata at all
    with pytest.raises(CheckpointError, match="not an mdi-exit checkpoint"):
        load_checkpoint(p)
    save_file(tensors, str(p), metadata={META_KEY: "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(p)


def test_non_finite_weights_are_refused(saved):
    _, p, _ = saved
    tensors, meta = _read(p)
    tensors["heads.0.3.bias"] = torch.full_like(tensors["heads.0.3.bias"], float("nan"))
    _rewrite(p, tensors, meta)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(p)


def test_autoencoder_model_round_trip(tmp_path):
    torch.manual_seed(0)
    m = build_model("resnet50_ee", input_size=32).eval()
    p = tmp_path / "r.safetensors"
    meta = save(m, p)
    assert meta["codecs"][0]["name"] == "autoencoder"
    assert meta["cut_wire_bytes"][0] * 256 == meta["cut_raw_bytes"][0]
    m2, _ = load_checkpoint(p)
    assert any(k.startswith("codecs.0.encoder") for k in m2.state_dict())


def test_no_pickle_loader_is_used():
    import inspect

    from mdi_exit_ros.model import checkpoint, train

    for mod in (checkpoint, train):
        src = inspect.getsource(mod)
        assert "torch.load(" not in src and "import pickle" not in src


def test_shipped_name_without_file(monkeypatch, tmp_path):
    from mdi_exit_ros.model import checkpoint

    monkeypatch.setattr(checkpoint, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="not installed"):
        load_model("fmnist_cnn_ee")
    assert checkpoint.available_models() == []


def test_update_metadata_keeps_model_id(saved):
    from mdi_exit_ros.model.checkpoint import update_metadata

    _, p, meta = saved
    new = update_metadata(p, {"thresholds": [0.5, 0.6, 0.0]})
    assert new["model_id"] == meta["model_id"]
    _, meta2 = load_checkpoint(p)
    assert meta2["thresholds"] == [0.5, 0.6, 0.0]
    with pytest.raises(ValueError, match="without retraining"):
        update_metadata(p, {"arch": "x"})
