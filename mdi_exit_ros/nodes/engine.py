"""Running one task of the early-exit model on a worker: the torch side of a worker node.

A task's payload is what crosses a cut: for task 1 the normalised camera frame, for task
k > 1 the *encoded* features of cut k-1 (identity, fp16 or autoencoder code). Encoding right
after task k-1, even when task k stays local, keeps distributed inference identical to the
model's own forward pass (which applies every codec round trip) and to offline accuracy.

The model may run on a CUDA device (parameter `device`; fp16 autocast there when the
checkpoint allows), but whatever crosses a cut leaves on the CPU in the dtype the codec
gives on the CPU, so workers on different devices exchange the same tensors.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from std_msgs.msg import Header

from mdi_exit_ros.core import get_confidence_fn
from mdi_exit_ros.model.checkpoint import load_model
from mdi_exit_ros.model.device import autocast, resolve_device, use_fp16
from mdi_exit_ros.msg import Tensor
from mdi_exit_ros.wire import TensorLimits, msg_to_torch, torch_to_msg
from mdi_exit_ros.wire.tensor_codec import from_msg


@dataclass
class Payload:
    """What a core Task carries: the frame's header and task k's (encoded) input.

    `data` is a torch tensor when produced here and a Tensor message when received; a
    received one is decoded on the inference thread, not in the subscription callback.
    """

    header: Header
    data: torch.Tensor | Tensor

    def nbytes(self) -> int:
        if isinstance(self.data, Tensor):
            return len(self.data.data)
        return self.data.numel() * self.data.element_size()


@dataclass(frozen=True)
class WireContract:
    """Task k's input on the wire: shape, Tensor.data_type code and encoding."""

    shape: tuple[int, ...]
    data_type: int
    encoding: str


@dataclass(frozen=True)
class TaskRun:
    """The result of running task k once."""

    logits: np.ndarray  # exit k's logits, float32 (num_classes,)
    confidence: float  # C_k(d)
    compute_seconds: float  # measured, padded by compute_slowdown or to the service time
    next_data: torch.Tensor | None  # encoded input of task k+1 (None for the last task)
    overrun: bool = False  # the real compute took longer than the service time


class Engine:
    """The model, its metadata and the per-task compute, for one worker process."""

    def __init__(self, model_ref: str, torch_threads: int = 1, device: str = "auto") -> None:
        """Load `model_ref` onto `device` (auto, cpu, cuda, cuda:N).

        Raises DeviceError (a ValueError) for a device that does not exist, before the
        model is read, and CheckpointError for a model that cannot be loaded.
        """
        self.device = resolve_device(device)
        torch.set_num_threads(torch_threads)
        self.model, self.meta = load_model(model_ref)
        self.model.eval()
        self.fp16 = use_fp16(self.device, self.meta)
        names = self.meta.get("cut_wire_dtypes") or self.model.profile().wire_dtypes
        self._wire_dtypes = [getattr(torch, name) for name in names]
        self.model.to(self.device)
        self.model_id: str = self.meta["model_id"]
        self.num_exits: int = self.model.num_exits
        self.class_names: list[str] = list(self.model.class_names)
        self.spec = self.model.input_spec
        self.contracts = self._contracts()

    @torch.no_grad()
    def _contracts(self) -> dict[int, WireContract]:
        """What task k's input looks like on the wire, from one forward pass of a blank frame.

        Checked field by field against a received tensor before anything is decoded, so a
        peer cannot make this worker allocate or compute beyond what its model needs.
        """
        x = self.spec.normalize(torch.zeros(1, self.spec.channels, self.spec.size,
                                            self.spec.size, dtype=torch.uint8))
        contracts = {}
        for k in range(1, self.num_exits + 1):
            wire = self.to_wire(k, x)  # exactly what a sender puts on the wire
            contracts[k] = WireContract(tuple(int(d) for d in wire.shape.dims), wire.data_type,
                                        wire.encoding)
            if k < self.num_exits:
                x = self.run(k, Payload(Header(), x), 1.0, "max_softmax").next_data
        return contracts

    def measure_task_seconds(self, repeats: int = 3) -> list[float]:
        """Each task's compute time on a blank frame here (best of `repeats`, unpadded).

        What a source knows about its own speed before any frame arrived; its cold start
        admits at the rate this gives (see SourceNode, core.frame_seconds).
        """
        best = [float("inf")] * self.num_exits
        for _ in range(max(1, repeats)):
            x = self.spec.normalize(torch.zeros(1, self.spec.channels, self.spec.size,
                                                self.spec.size, dtype=torch.uint8))
            for k in range(1, self.num_exits + 1):
                run = self.run(k, Payload(Header(), x), 1.0, "max_softmax")
                best[k - 1] = min(best[k - 1], run.compute_seconds)
                x = run.next_data
        return best

    def exit_fraction(self, thresholds: tuple[float, ...]) -> list[float] | None:
        """The checkpoint's measured share of frames per exit, if measured at `thresholds`.

        Valid only for the thresholds it was measured at (the suggested ones); None otherwise.
        """
        measured = (self.meta.get("test_at_thresholds") or {}).get("exit_fraction")
        suggested = self.meta.get("thresholds")
        if not measured or not suggested or len(measured) != self.num_exits:
            return None
        if tuple(float(v) for v in suggested) != tuple(thresholds):
            return None
        return [float(f) for f in measured]

    def suggested_thresholds(self) -> tuple[float, ...]:
        """The checkpoint's calibrated T_e^k (0.9 at every exit if it has none)."""
        values = self.meta.get("thresholds") or [0.9] * self.num_exits
        values = list(values)[: self.num_exits]
        values += [1.0] * (self.num_exits - len(values))
        return tuple(float(v) for v in values)

    def encoding(self, cut: int) -> str:
        """Tensor.encoding for the features crossing cut `cut` (0 = the input frame)."""
        if cut == 0:
            return "raw"
        name = self.model.codecs[cut - 1].name
        return {"identity": "raw", "fp16": "fp16"}.get(name, f"ae:{name}{cut}")

    @torch.no_grad()
    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:
        """HxWxC uint8 pixels -> task 1's input (1, C, size, size), normalised."""
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0)
        channels = self.spec.channels
        if x.shape[1] == 3 and channels == 1:  # colour camera, grey model: ITU-R 601 luma
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * weights).sum(dim=1, keepdim=True).round().to(torch.uint8)
        elif x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return self.spec.normalize(x)

    def to_wire(self, task_index: int, data: torch.Tensor | Tensor, name: str = "") -> Tensor:
        """The Tensor message that carries task `task_index`'s input."""
        if isinstance(data, Tensor):
            return data
        return torch_to_msg(data, name=name or f"input_of_task_{task_index}",
                            encoding=self.encoding(task_index - 1))

    def check_wire(self, task_index: int, msg: Tensor, limits: TensorLimits) -> str:
        """Why a received tensor cannot be task `task_index`'s input ('' if it can).

        Compares the message's fields with the task's contract first (no copy, no decode),
        then validates the buffer itself as a zero-copy view.
        """
        want = self.contracts[task_index]
        if msg.encoding != want.encoding:
            return f"encoding {msg.encoding[:40]!r} for task {task_index}, expected " \
                   f"{want.encoding!r}"
        if msg.data_type != want.data_type:
            return f"data_type {msg.data_type} for task {task_index}, expected {want.data_type}"
        dims = tuple(int(d) for d in msg.shape.dims[:9])
        if dims != want.shape:
            return f"shape {list(dims)} for task {task_index}, expected {list(want.shape)}"
        try:
            from_msg(msg, limits)
        except ValueError as exc:
            return str(exc)
        return ""

    @torch.no_grad()
    def run(self, task_index: int, payload: Payload, slowdown: float, confidence: str,
            stop: threading.Event | None = None,
            service_time: float | None = None) -> TaskRun:
        """Run task k on its payload; pad the compute time to `service_time` seconds when a
        device profile gives one (an emulated device whose speed does not depend on how
        loaded this machine is), else to `slowdown` x measured.

        A real compute longer than `service_time` cannot be padded: the run says so
        (`overrun`) and reports the real time. The padding waits on `stop`, so a worker
        shutting down is not held by an emulated slow device.
        """
        start = time.perf_counter()
        data = payload.data
        x = msg_to_torch(data) if isinstance(data, Tensor) else data
        x = x.to(self.device)
        with autocast(self.device, self.fp16):
            if task_index > 1:
                x = self.model.decode(task_index - 1, x)
            features, logits = self.model.run_task(task_index, x)
            next_data = None
            if task_index < self.num_exits:
                next_data = self.model.encode(task_index, features)
        if next_data is not None:  # the CPU's wire dtype, whatever ran the task
            next_data = next_data.to("cpu", self._wire_dtypes[task_index - 1]).contiguous()
        row = logits[0].float().cpu().numpy()  # (waits for the device)
        conf = get_confidence_fn(confidence)(row.tolist())
        elapsed = time.perf_counter() - start
        if service_time is not None:
            if elapsed > service_time:
                return TaskRun(row, conf, elapsed, next_data, overrun=True)
            (stop or threading.Event()).wait(service_time - elapsed)
            return TaskRun(row, conf, service_time, next_data)
        if slowdown > 1.0:
            (stop or threading.Event()).wait(elapsed * (slowdown - 1.0))
        return TaskRun(row, conf, elapsed * slowdown, next_data)
