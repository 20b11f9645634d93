"""The `train` and `eval` entry points on a tiny synthetic image folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mdi_exit_ros.model import evaluate as ev
from mdi_exit_ros.model import load_checkpoint
from mdi_exit_ros.model import train as tr

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two easy classes of 28x28 grey images: bright top half vs bright bottom half."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 12)):
        for cls in ("bottom", "top"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 60, (28, 28), dtype=np.uint8)
                rows = slice(0, 14) if cls == "top" else slice(14, 28)
                a[rows] = rng.integers(150, 256, (14, 28), dtype=np.uint8)
                Image.fromarray(a).save(d / f"{i}.png")
    return root


def _args(folder, work, *extra):
    return ["--model", "fmnist_cnn_ee", "--model-kwargs", '{"width": 8}',
            "--dataset", f"folder:{folder}", "--epochs", "3", "--batch-size", "16",
            "--lr", "0.05", "--val-size", "0", "--threads", "1", "--log-every", "0",
            "--work-dir", str(work), "--seed", "1", "--progress", "off", *extra]


def test_training_lowers_loss_and_writes_checkpoint(folder, tmp_path):
    work = tmp_path / "run"
    assert tr.main(_args(folder, work, "--distill", "0.5")) == 0
    hist = json.loads((work / "state.json").read_text())["history"]
    assert len(hist) == 3
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    model, meta = load_checkpoint(work / "model.safetensors")
    assert meta["class_names"] == ["bottom", "top"] and model.num_classes == 2
    assert meta["dataset"] == f"folder:{folder}"
    assert len(meta["exit_accuracy"]) == 3 and meta["exit_accuracy"][-1] >= 0.9
    assert len(meta["thresholds"]) == 3 and meta["thresholds"][-1] == 0.0
    assert "mdi-exit train" in meta["training"]["command"]
    assert set(meta["test_at_thresholds"]) >= {"accuracy", "exit_fraction", "avg_flops"}

    out = tmp_path / "eval"
    assert ev.main(["--model", str(work / "model.safetensors"), "--out-dir", str(out),
                    "--threads", "1"]) == 0
    for f in ("eval.md", "eval.csv", "eval.json", "eval.png"):
        assert (out / f).stat().st_size > 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["exit_accuracy"] == pytest.approx(meta["exit_accuracy"], abs=0.02)
    assert (out / "eval.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = str(work / "model.safetensors")
    assert ev.main(["--model", ckpt, "--thresholds", "0.9", "--write-thresholds",
                    "--threads", "1"]) == 0
    _, meta3 = load_checkpoint(ckpt)
    assert meta3["thresholds"] == [0.9, 0.9, 0.0] and meta3["model_id"] == meta["model_id"]


def test_eval_calibrates_per_exit_on_held_out_images_and_stores_it(folder, tmp_path):
    work = tmp_path / "run"
    assert tr.main(_args(folder, work, "--val-size", "20")) == 0
    ckpt = str(work / "model.safetensors")
    _, before = load_checkpoint(ckpt)
    out = tmp_path / "eval"
    assert ev.main(["--model", ckpt, "--out-dir", str(out), "--threads", "1", "--device", "cpu",
                    "--val-size", "20", "--max-drop", "5"]) == 0
    summary = json.loads((out / "eval.json").read_text())
    cal = summary["calibration"]
    assert cal["on"] == "heldout" and cal["images"] == 19  # a fifth of 96 at most
    assert summary["device"] == "cpu" and summary["fp16"] is False
    per_exit, shared = cal["per_exit"], cal["shared"]
    assert per_exit["accuracy"] >= cal["exit_accuracy"][-1] - 0.05 - 1e-9
    assert per_exit["avg_flops"] <= shared["avg_flops"]
    assert "per-exit T, calibrated on held-out" in (out / "eval.md").read_text()
    # the stored thresholds are the held-out calibration; the weights and model_id stay
    assert ev.main(["--model", ckpt, "--threads", "1", "--val-size", "20", "--max-drop", "5",
                    "--write-thresholds"]) == 0
    _, after = load_checkpoint(ckpt)
    assert after["thresholds"] == per_exit["threshold"][:-1] + [0.0]
    assert after["model_id"] == before["model_id"]
    assert "held out by mdi-exit train" in after["threshold_calibration"]["split"]
    assert after["test_at_thresholds"]["accuracy"] == summary["calibrated_per_exit"]["accuracy"]
    # never thresholds calibrated on the evaluated (test) images
    assert ev.main(["--model", ckpt, "--calibrate-on", "split", "--write-thresholds"]) == 2


def test_interrupted_run_resumes_to_the_same_model(folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert tr.main(_args(folder, a, "--epochs", "2")) == 0
    # stop mid-epoch (step 5 of 6 per epoch... 96 images / 16 = 6 steps), then resume
    assert tr.main(_args(folder, b, "--epochs", "2", "--stop-after-steps", "4")) == tr.EXIT_STOPPED
    assert not (b / "model.safetensors").exists()
    pos = json.loads((b / "state.json").read_text())["position"]
    assert pos == {"epoch": 0, "batch": 4, "step": 4}
    assert tr.main(_args(folder, b, "--epochs", "2")) == 0
    _, ma = load_checkpoint(a / "model.safetensors")
    _, mb = load_checkpoint(b / "model.safetensors")
    assert ma["model_id"] == mb["model_id"]  # bit-identical weights


def test_resume_refuses_changed_arguments(folder, tmp_path):
    w = tmp_path / "w"
    assert tr.main(_args(folder, w, "--epochs", "2", "--stop-after-steps", "2")) == tr.EXIT_STOPPED
    with pytest.raises(SystemExit, match="different arguments"):
        tr.main(_args(folder, w, "--epochs", "2", "--lr", "0.01"))


def test_heads_only_mode_keeps_backbone_frozen(folder, tmp_path):
    base = tmp_path / "base"
    assert tr.main(_args(folder, base, "--epochs", "1")) == 0
    init, _ = load_checkpoint(base / "model.safetensors")
    heads = tmp_path / "heads"
    assert tr.main(_args(folder, heads, "--epochs", "1", "--mode", "heads",
                         "--init", str(base / "model.safetensors"))) == 0
    after, _ = load_checkpoint(heads / "model.safetensors")
    sa, sb = init.state_dict(), after.state_dict()
    for k in sa:
        same = torch.equal(sa[k], sb[k])
        if k.startswith(("stages.", "heads.2.")):
            assert same, k  # frozen (weights and BN statistics)
    assert not torch.equal(sa["heads.0.3.weight"], sb["heads.0.3.weight"])


def test_lr_schedule_and_loss():
    class A:
        schedule, lr, warmup = "onecycle", 0.1, 0.2

    assert tr.lr_at(0, 100, A) == pytest.approx(0.004)
    assert tr.lr_at(20, 100, A) == pytest.approx(0.1, rel=1e-3)
    assert tr.lr_at(100, 100, A) < 1e-3
    outs = [torch.randn(4, 3, requires_grad=True) for _ in range(2)]
    y = torch.tensor([0, 1, 2, 0])
    loss, parts = tr.early_exit_loss(outs, y, [1.0, 0.0])
    assert loss.item() == pytest.approx(parts[0], rel=1e-5)
    loss_kd, _ = tr.early_exit_loss(outs, y, [1.0, 1.0], distill=0.5)
    loss_kd.backward()
    assert outs[0].grad is not None


def test_codec_mode_adds_a_trained_autoencoder_and_changes_nothing_else(folder, tmp_path):
    """--mode codec: the paper's autoencoder at cut 1 of a trained model; only its weights
    learn, so the model without it (the --init file) is the exact 'without' variant."""
    kw = '{"width": 8, "input_size": 32}'  # 16x16 features at cut 1 (a multiple of 4)
    base = tmp_path / "base"
    assert tr.main([*_args(folder, base, "--epochs", "1"), "--model-kwargs", kw]) == 0
    init_path = base / "model.safetensors"
    init, init_meta = load_checkpoint(init_path)
    codecs = '[{"name": "autoencoder", "code_channels": 4, "hidden_channels": 8}, "identity"]'
    ae = tmp_path / "ae"
    assert tr.main([*_args(folder, ae, "--epochs", "3", "--lr", "0.01"), "--model-kwargs", kw,
                    "--mode", "codec", "--init", str(init_path), "--codecs", codecs]) == 0
    after, meta = load_checkpoint(ae / "model.safetensors")
    assert meta["codecs"][0]["name"] == "autoencoder" and meta["codecs"][1] == {"name": "identity"}
    assert meta["arch_kwargs"]["codecs"][0]["name"] == "autoencoder"  # rebuilds with it
    assert meta["cut_wire_bytes"][0] == 4 * 4 * 4 * 4 < init_meta["cut_wire_bytes"][0]
    sa, sb = init.state_dict(), after.state_dict()
    assert set(sb) - set(sa) and all(k.startswith("codecs.0.") for k in set(sb) - set(sa))
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k  # weights and BN statistics untouched
    hist = json.loads((ae / "state.json").read_text())["history"]
    assert hist[0]["train_ce"][0] == pytest.approx(hist[-1]["train_ce"][0])  # exit 1: frozen
    assert hist[-1]["train_ce"][-1] < hist[0]["train_ce"][-1]  # the code learned something
    # refusals: nothing learned, or no model to add the codec to
    with pytest.raises(SystemExit, match="--mode codec"):
        tr.main([*_args(folder, tmp_path / "x"), "--mode", "codec", "--init", str(init_path)])
    with pytest.raises(SystemExit, match="--codecs replaces"):
        tr.main([*_args(folder, tmp_path / "y"), "--codecs", codecs])
    with pytest.raises(SystemExit, match="--codecs"):
        tr.main([*_args(folder, tmp_path / "z"), "--model-kwargs", kw, "--init", str(init_path),
                 "--codecs", '["identity"]'])
