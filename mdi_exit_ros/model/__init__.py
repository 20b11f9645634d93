"""The torch model layer of MDI-Exit: early-exit DNNs cut into tasks tau_1..tau_K.

Typical use on a worker::

    model, meta = load_model("fmnist_cnn_ee")
    x = model.input_spec.normalize(images)           # task 1 input
    feats, logits = model.run_task(1, x)
    wire = model.encode(1, feats)                     # send to the next worker
    feats2, logits2 = model.run_task(2, model.decode(1, wire))

No ROS here: this package depends on torch/torchvision only.
"""

from .builders import MODEL_BUILDERS, build_model, list_models
from .checkpoint import (
    CheckpointError,
    available_models,
    load_checkpoint,
    load_model,
    read_metadata,
    save_checkpoint,
)
from .codecs import AutoencoderCodec, BoundaryCodec, Fp16Codec, IdentityCodec, make_codec
from .device import DeviceError, resolve_device
from .early_exit import EarlyExitModel, ExitHead, InputSpec, ModelInfo
from .profiling import ModelProfile, ModuleRunCounter, count_flops, profile_model

__all__ = [
    "MODEL_BUILDERS",
    "AutoencoderCodec",
    "BoundaryCodec",
    "CheckpointError",
    "DeviceError",
    "EarlyExitModel",
    "ExitHead",
    "Fp16Codec",
    "IdentityCodec",
    "InputSpec",
    "ModelInfo",
    "ModelProfile",
    "ModuleRunCounter",
    "available_models",
    "build_model",
    "count_flops",
    "list_models",
    "load_checkpoint",
    "load_model",
    "make_codec",
    "profile_model",
    "read_metadata",
    "resolve_device",
    "save_checkpoint",
]
