"""Boundary codecs: how the features at cut k travel from task k to task k+1.

The paper cuts the DNN at its early-exit points; whatever a worker produces at
cut k may have to cross the network to another worker.  A codec turns the
features into the tensor that goes on the wire (``encode``, run by the sender)
and back (``decode``, run by the receiver).

* ``identity``    - send fp32 features as they are (exact).
* ``fp16``        - halve the bytes; the error is far below what changes a
  prediction.
* ``autoencoder`` - the paper's learned compressor (Sec. V): two conv+ReLU
  layers on the sender shrink the tensor, two (transposed) conv+ReLU layers on
  the receiver restore its shape.  It has weights, so it is trained with the
  model and stored in its checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

CODEC_NAMES = ("identity", "fp16", "autoencoder")


class BoundaryCodec(nn.Module):
    """Base class: ``decode(encode(x))`` must have the shape and dtype of ``x``."""

    name = "identity"

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Sender side: features (N, C, H, W) -> tensor for the wire."""
        return features

    def decode(self, wire: torch.Tensor) -> torch.Tensor:
        """Receiver side: wire tensor -> fp32 features for the next task."""
        return wire.float()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Round trip, used while training so later stages see what they will get."""
        return self.decode(self.encode(features))

    def config(self) -> dict:
        """JSON-able description stored in checkpoint metadata."""
        return {"name": self.name}


class IdentityCodec(BoundaryCodec):
    """Features cross the network unchanged (fp32)."""

    name = "identity"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class Fp16Codec(BoundaryCodec):
    """Half-precision on the wire: 2x fewer bytes, no weights."""

    name = "fp16"

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        return features.to(torch.float16)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Rounding is not differentiable in a useful way; pass gradients straight through.
        return features + (features.to(torch.float16).float() - features).detach()


class AutoencoderCodec(BoundaryCodec):
    """Learned compressor from the paper: 2x(conv+ReLU) encoder, 2x(conv+ReLU) decoder.

    Each encoder conv has stride 2, so the code has ``code_channels`` channels at
    1/4 of the spatial size; the decoder mirrors it with stride-2 transposed
    convolutions.  The last ReLU matches the post-ReLU features it replaces.
    Feature height and width must be multiples of 4 so the shape comes back exact.
    """

    name = "autoencoder"

    def __init__(
        self,
        in_channels: int,
        code_channels: int = 16,
        hidden_channels: int = 64,
        wire_dtype: str = "float32",
    ) -> None:
        super().__init__()
        if wire_dtype not in ("float32", "float16"):
            raise ValueError(f"wire_dtype must be float32 or float16, not {wire_dtype!r}")
        self.in_channels = in_channels
        self.code_channels = code_channels
        self.hidden_channels = hidden_channels
        self.wire_dtype = wire_dtype
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, code_channels, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(code_channels, hidden_channels, 2, stride=2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hidden_channels, in_channels, 2, stride=2),
            nn.ReLU(inplace=True),
        )

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        code = self.encoder(features.float())
        return code.to(getattr(torch, self.wire_dtype))

    def decode(self, wire: torch.Tensor) -> torch.Tensor:
        return self.decoder(wire.float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        code = self.encoder(features)
        if self.wire_dtype == "float16":
            code = code + (code.to(torch.float16).float() - code).detach()
        return self.decoder(code)

    def config(self) -> dict:
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "code_channels": self.code_channels,
            "hidden_channels": self.hidden_channels,
            "wire_dtype": self.wire_dtype,
        }


def make_codec(spec: str | dict | BoundaryCodec, in_channels: int) -> BoundaryCodec:
    """Build a codec from a name ("fp16"), a config dict, or pass one through."""
    if isinstance(spec, BoundaryCodec):
        return spec
    cfg = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = cfg.pop("name", None)
    if name == "identity":
        return IdentityCodec()
    if name == "fp16":
        return Fp16Codec()
    if name == "autoencoder":
        cfg.pop("in_channels", None)
        return AutoencoderCodec(in_channels, **cfg)
    raise ValueError(f"unknown codec {name!r}; expected one of {CODEC_NAMES}")
