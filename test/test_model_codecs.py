"""Boundary codecs: identity exact, fp16 close, autoencoder shape/dtype/size reduction."""

from __future__ import annotations

import pytest
import torch

from mdi_exit_ros.model import AutoencoderCodec, build_model, make_codec

torch.set_num_threads(1)


def test_identity_and_fp16_round_trip():
    x = torch.randn(2, 8, 6, 6).relu()
    ident = make_codec("identity", 8)
    assert torch.equal(ident.decode(ident.encode(x)), x)
    fp16 = make_codec("fp16", 8)
    wire = fp16.encode(x)
    assert wire.dtype == torch.float16 and wire.shape == x.shape
    back = fp16.decode(wire)
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, x, rtol=1e-3, atol=1e-3)
    # training path: value of the round trip, gradient passes straight through
    xr = x.clone().requires_grad_(True)
    fp16(xr).sum().backward()
    assert torch.equal(xr.grad, torch.ones_like(x))


def test_autoencoder_shapes_dtypes_and_reduction():
    ae = AutoencoderCodec(256, code_channels=16, hidden_channels=64).eval()
    x = torch.rand(2, 256, 16, 16)
    wire = ae.encode(x)
    assert wire.shape == (2, 16, 4, 4) and wire.dtype == torch.float32
    out = ae.decode(wire)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert wire[0].numel() * 256 == x[0].numel()  # 16x fewer channels, 16x fewer pixels
    ae16 = AutoencoderCodec(256, wire_dtype="float16")
    assert ae16.encode(x).dtype == torch.float16
    assert ae16.decode(ae16.encode(x)).dtype == torch.float32
    with pytest.raises(ValueError):
        AutoencoderCodec(8, wire_dtype="int8")


def test_unknown_codec():
    with pytest.raises(ValueError, match="unknown codec"):
        make_codec("zip", 4)


def test_resnet_autoencoder_cut_reduces_bytes_and_matches_forward():
    torch.manual_seed(0)
    m = build_model("resnet50_ee", input_size=32).eval()
    prof = m.profile()
    assert m.codec_configs()[0]["name"] == "autoencoder"
    assert prof.cut_raw_bytes[0] == 256 * 32 * 32 * 4
    assert prof.cut_wire_bytes[0] == 16 * 8 * 8 * 4
    assert prof.cut_raw_bytes[0] / prof.cut_wire_bytes[0] == 256
    assert prof.codec_flops[0] > 0 and prof.codec_flops[1] == 0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        full = m(x)
        f1, _ = m.run_task(1, x)
        f2, l2 = m.run_task(2, m.decode(1, m.encode(1, f1)))
    torch.testing.assert_close(l2, full[1], rtol=1e-4, atol=1e-4)


def test_set_codec_swaps_weightless_codecs_only():
    m = build_model("fmnist_cnn_ee").eval()
    m.set_codec(1, "fp16")
    assert m.profile().cut_wire_bytes[0] == 32 * 14 * 14 * 2
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        full = m(x)
        f1, _ = m.run_task(1, x)
        wire = m.encode(1, f1)
        assert wire.dtype == torch.float16
        _, l2 = m.run_task(2, m.decode(1, wire))
    torch.testing.assert_close(l2, full[1])  # forward applies the same fp16 round trip
    r = build_model("resnet50_ee", input_size=32)
    with pytest.raises(ValueError, match="learned codec"):
        r.set_codec(1, "identity")
    with pytest.raises(ValueError):
        m.set_codec(1, {"name": "autoencoder"})
