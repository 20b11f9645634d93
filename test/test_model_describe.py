"""The describe tool prints the task/cut tables used in docs/MODELS.md."""

from __future__ import annotations

import torch

from mdi_exit_ros.model import build_model
from mdi_exit_ros.model.describe import describe, main, task_times_ms

torch.set_num_threads(1)


def test_describe_tables(capsys):
    assert main(["--model", "fmnist_cnn_ee", "--model-kwargs", '{"width": 8}']) == 0
    out = capsys.readouterr().out
    assert "| task |" in out and "| cut |" in out
    assert out.count("\n| 1 |") == 2  # task 1 and cut 1 rows


def test_describe_with_timing_and_fp16():
    m = build_model("fmnist_cnn_ee", width=8, codecs=["fp16", "identity"]).eval()
    text = describe(m, timing=True)
    assert "float16" in text and "ms (1 thread)" in text
    times = task_times_ms(m, repeats=3)
    assert len(times) == 3 and all(t > 0 for t in times)
