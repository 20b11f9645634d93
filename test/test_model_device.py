"""Device choice for eval, train and the workers: resolution, fp16 policy, refusal."""

from __future__ import annotations

import pytest
import torch

from mdi_exit_ros.model import evaluate as ev
from mdi_exit_ros.model import train as tr
from mdi_exit_ros.model.device import DeviceError, cuda_device_count, resolve_device, use_fp16
from mdi_exit_ros.nodes.engine import Engine, Payload

torch.set_num_threads(1)
MISSING = "cuda:7"  # more GPUs than this machine has (checked below)


@pytest.fixture(autouse=True)
def _missing_device_is_missing():
    if cuda_device_count() > 7:
        pytest.skip("this machine has a cuda:7")


@pytest.mark.parametrize(("spec", "count", "expected"), [
    ("auto", 0, "cpu"), ("auto", 2, "cuda:0"), ("cpu", 2, "cpu"), (" CPU ", 0, "cpu"),
    ("cuda", 1, "cuda:0"), ("cuda:1", 2, "cuda:1"),
])
def test_resolution(spec: str, count: int, expected: str) -> None:
    assert resolve_device(spec, cuda_count=count) == torch.device(expected)


@pytest.mark.parametrize(("spec", "count", "reason"), [
    ("cuda", 0, "torch sees no CUDA device"), ("cuda:2", 2, "sees 2 CUDA device"),
    ("gpu", 1, "not one of auto, cpu, cuda or cuda:N"), ("cuda:x", 1, "not one of"),
    ("cuda:-1", 1, "not one of"), ("", 0, "not one of"),
])
def test_refusal_names_the_reason(spec: str, count: int, reason: str) -> None:
    with pytest.raises(DeviceError, match=reason):
        resolve_device(spec, cuda_count=count)


def test_this_machine() -> None:
    assert resolve_device("auto") == torch.device("cuda:0" if cuda_device_count() else "cpu")
    with pytest.raises(DeviceError, match=f"'{MISSING}' does not exist"):
        resolve_device(MISSING)


def test_fp16_only_on_cuda_and_only_when_the_checkpoint_allows() -> None:
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert use_fp16(cuda, {"dtype": "float16"})
    assert not use_fp16(cpu, {"dtype": "float16"})
    assert not use_fp16(cuda, {"dtype": "float32"})
    assert not use_fp16(cuda, {"dtype": "float16", "fp16_inference": False})


def test_eval_and_train_refuse_a_missing_device(tmp_path, capsys) -> None:
    assert ev.main(["--model", "fmnist_cnn_ee", "--device", MISSING]) == 2
    assert f"'{MISSING}' does not exist" in capsys.readouterr().err
    work = tmp_path / "run"
    assert tr.main(["--model", "fmnist_cnn_ee", "--device", MISSING,
                    "--work-dir", str(work)]) == 2
    assert f"'{MISSING}' does not exist" in capsys.readouterr().err
    assert not work.exists()  # refused before anything was started


def test_engine_refuses_a_missing_device_and_runs_on_cpu() -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        Engine("fmnist_cnn_ee", 1, MISSING)
    engine = Engine("fmnist_cnn_ee", 1, "cpu")
    assert engine.device == torch.device("cpu") and not engine.fp16
    pixels = torch.randint(0, 256, (28, 28, 1), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).numpy()
    x = engine.preprocess(pixels)
    first = engine.run(1, Payload(header=None, data=x), 1.0, "max_softmax")
    assert first.next_data.dtype == torch.float32 and first.next_data.device.type == "cpu"
    second = engine.run(2, Payload(header=None, data=first.next_data), 1.0, "max_softmax")
    with torch.no_grad():
        expected = engine.model(x)[1][0]
    assert torch.allclose(torch.from_numpy(second.logits), expected, atol=1e-5)
