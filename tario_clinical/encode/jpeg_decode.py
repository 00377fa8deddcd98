"""Batched JPEG tile decoding on the encoder's device (GPU decode of the slide's own tiles).

On CUDA the CPU cores cannot decode JPEG tiles as fast as the GPU encodes them (measured on an
H200: end to end 0.10-0.13 of the pure-forward throughput, ``benchmarks/results/
encode_cuda.json``). When a slide stores its pyramid as JPEG tiles (SVS, most tiled TIFFs),
the readers then only fetch the compressed tiles (:meth:`Slide.jpeg_tiles
<tario_clinical.slides.Slide.jpeg_tiles>`), and this module decodes a batch's tiles in one
``torchvision.io.decode_jpeg(..., device=...)`` call (nvJPEG on CUDA) and cuts the model tiles
out of them with tensor indexing on the same device, so the pixels never pass through host
memory.

The code is device-agnostic: on CPU the same path runs with torchvision's libjpeg-turbo decoder
(``decoder="torchvision"``) or with imagecodecs (``decoder="imagecodecs"``, the reference the
slide readers use), which is how it is tested on machines without a GPU. torchvision is optional
(the ``timm`` extra); without it :func:`gpu_decode_unavailable` says why and the engine reads
pixels as usual.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import EncoderError

__all__ = ["DECODERS", "DEFAULT_DECODER", "JpegBatchDecoder", "gpu_decode_unavailable"]

DECODERS = ("torchvision", "imagecodecs")
#: the decoder :func:`~tario_clinical.encode.encode_slides` uses for ``gpu_decode``
DEFAULT_DECODER: Literal["torchvision", "imagecodecs"] = "torchvision"


def gpu_decode_unavailable() -> str | None:
    """Why ``torchvision.io.decode_jpeg`` cannot be used here (``None``: it can)."""
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception as err:  # noqa: BLE001 - a CUDA torchvision beside CPU torch raises RuntimeError
        return f"torchvision.io.decode_jpeg is not importable ({type(err).__name__}: {err})"
    return None


class JpegBatchDecoder:
    """Decode :class:`~tario_clinical.slides._tiffdirect.JpegTiles` into model tiles on a device.

    Parameters
    ----------
    device : str
        Torch device of the decoded tiles (``"cuda"``, ``"cuda:1"``, ``"cpu"``).
    decoder : {"torchvision", "imagecodecs"}
        ``torchvision``: ``torchvision.io.decode_jpeg`` on ``device`` (batched; nvJPEG on CUDA).
        ``imagecodecs``: libjpeg-turbo through imagecodecs on the CPU, then moved to ``device``
        (the slide readers' decoder; a reference for tests).

    Raises
    ------
    EncoderError
        If ``decoder`` is unknown or torchvision is not importable for ``"torchvision"``.
    """

    def __init__(
        self, device: str, *, decoder: Literal["torchvision", "imagecodecs"] = "torchvision"
    ) -> None:
        import torch

        if decoder not in DECODERS:
            raise EncoderError(
                f"decoder={decoder!r} is not allowed; allowed: {', '.join(DECODERS)}"
            )
        if decoder == "torchvision":
            why = gpu_decode_unavailable()
            if why:
                raise EncoderError(
                    f"JPEG decoding on the device needs torchvision: {why}. Install the "
                    "torchvision build that matches your torch (pip install "
                    "'tario-clinical[timm]' on GPU machines) or use gpu_decode='off'"
                )
        self.device = torch.device(device)
        self.decoder = decoder

    def decode_streams(self, streams: list[bytes]) -> list[Any]:
        """Each complete JPEG stream as a ``(3, H, W)`` uint8 tensor on :attr:`device`."""
        import torch

        if self.decoder == "torchvision":
            from torchvision.io import ImageReadMode, decode_jpeg

            data = [torch.frombuffer(bytearray(s), dtype=torch.uint8) for s in streams]
            dev = str(self.device)
            out = decode_jpeg(data, mode=ImageReadMode.RGB, device=dev)
            return list(out)
        import imagecodecs

        res = []
        for s in streams:
            a = np.asarray(imagecodecs.jpeg8_decode(s))
            if a.ndim == 2:
                a = np.repeat(a[:, :, None], 3, axis=2)
            res.append(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).to(self.device))
        return res

    def regions(self, jt: Any) -> Any:
        """The regions of ``jt`` as an ``(n, h, w, 3)`` uint8 tensor on :attr:`device` (the
        layout of the tile loader's batches)."""
        import torch

        decoded = self.decode_streams(jt.streams)
        for k, t in zip(jt.keys.tolist(), decoded, strict=True):
            if t.shape[0] != 3 or t.shape[1] < jt.tile_h or t.shape[2] < jt.tile_w:
                raise EncoderError(
                    f"decoded JPEG tile {k} has shape {tuple(t.shape)}; expected (3, "
                    f"{jt.tile_h}, {jt.tile_w})"
                )
        where = {int(k): i for i, k in enumerate(jt.keys.tolist())}
        n, w, h = len(jt.xy), jt.w, jt.h
        out = torch.empty((n, h, w, 3), dtype=torch.uint8, device=self.device)
        tw, th, cols = jt.tile_w, jt.tile_h, jt.n_cols
        for i, (x, y) in enumerate(jt.xy.tolist()):
            for r in range(y // th, (y + h - 1) // th + 1):
                for c in range(x // tw, (x + w - 1) // tw + 1):
                    tile = decoded[where[r * cols + c]]
                    tx, ty = c * tw, r * th
                    ax0, ay0 = max(x, tx), max(y, ty)
                    ax1, ay1 = min(x + w, tx + tw), min(y + h, ty + th)
                    out[i, ay0 - y : ay1 - y, ax0 - x : ax1 - x] = tile[
                        :, ay0 - ty : ay1 - ty, ax0 - tx : ax1 - tx
                    ].permute(1, 2, 0)
        return out
