"""Named architectures for weights shipped as safetensors / state_dict files.

``register_architecture(name, factory)`` adds one; ``timm:<model>`` names build a timm model
(timm is optional and never a core dependency). Built in: ``vit``, a Vision Transformer with timm's
parameter names (:mod:`tario_clinical.encode.vit`; the architecture of the pathology presets), and
``tario_demo_cnn``, the small fixed CNN of the demo model: **a demo, not a pathology model**.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EncoderError

__all__ = [
    "register_architecture",
    "build_architecture",
    "ARCHITECTURES",
    "demo_cnn_class",
    "builds_on_meta",
]

ARCHITECTURES: dict[str, Callable[..., Any]] = {}
# Architectures whose modules hold no buffers or initialisation that a checkpoint does not
# restore: they are built on the meta device and take the checkpoint's tensors as their own
# (no random init of a billion parameters, no second copy of the weights in memory).
_META_SAFE: set[str] = set()


def register_architecture(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory(**architecture_kwargs) -> torch.nn.Module`` under ``name``.

    Parameters
    ----------
    name : str
        Architecture name used by model cards; non-empty and not starting with ``"timm:"``
        (reserved for timm models).
    factory : callable
        Called with the model card's architecture keyword arguments; returns a
        ``torch.nn.Module``. Replaces any factory already registered under ``name``.

    Raises
    ------
    EncoderError
        If ``name`` is empty or reserved.
    """
    if not name or name.startswith("timm:"):
        raise EncoderError(f"architecture name {name!r} is reserved or empty")
    ARCHITECTURES[name] = factory


def demo_cnn_class() -> type:
    """The class of the demo CNN (defined lazily so torch is imported on first use)."""
    global _DEMO_CLS
    if _DEMO_CLS is not None:
        return _DEMO_CLS
    import torch
    from torch import nn

    class TarioDemoCNN(nn.Module):
        """Conv blocks (first with stride 2); embedding = per-channel mean and SD of each block's activations.

        A deliberately small, fixed (random-feature) network for demonstrations and tests.
        """

        def __init__(
            self, widths: tuple[int, ...] = (16, 32, 64), kernel0: int = 5, stride0: int = 2
        ) -> None:
            super().__init__()
            chans = [3, *widths]
            self.blocks = nn.ModuleList(
                nn.Conv2d(
                    chans[i],
                    chans[i + 1],
                    kernel0 if i == 0 else 3,
                    stride=stride0 if i == 0 else 1,
                    padding=(kernel0 if i == 0 else 3) // 2,
                )
                for i in range(len(widths))
            )
            self.embedding_width = 2 * sum(widths)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = []
            for i, conv in enumerate(self.blocks):
                x = torch.relu_(conv(x))
                var, m = torch.var_mean(x, dim=(2, 3), correction=0)
                feats.append(m)
                feats.append(var.sqrt())
                if i < len(self.blocks) - 1:
                    x = torch.nn.functional.avg_pool2d(x, 2)
            return torch.cat(feats, dim=1)

    _DEMO_CLS = TarioDemoCNN
    return TarioDemoCNN


_DEMO_CLS: type | None = None


def _demo_factory(**kwargs: Any) -> Any:
    widths = tuple(int(w) for w in kwargs.pop("widths", (16, 32, 64)))
    return demo_cnn_class()(widths=widths, **kwargs)


register_architecture("tario_demo_cnn", _demo_factory)


def _vit_factory(**kwargs: Any) -> Any:
    from .vit import VisionTransformer

    try:
        return VisionTransformer(**kwargs)
    except ValueError as err:
        raise EncoderError(f"architecture 'vit': {err}") from err


register_architecture("vit", _vit_factory)
_META_SAFE.add("vit")


def builds_on_meta(name: str) -> bool:
    """Whether :func:`build_architecture` can build ``name`` on the meta device for loading."""
    return name in _META_SAFE and ARCHITECTURES.get(name) is _vit_factory


def build_architecture(
    name: str, kwargs: dict[str, Any] | None = None, *, device: str | None = None
) -> Any:
    """Instantiate the architecture ``name`` with ``kwargs``.

    Parameters
    ----------
    name : str
    kwargs : dict, optional
        The model card's ``architecture_kwargs``.
    device : {"meta"} or None
        ``"meta"`` builds the module without memory (shapes only) for architectures where
        :func:`builds_on_meta` is true; the loader then assigns the checkpoint's tensors.

    Raises
    ------
    EncoderError
        If the name is unknown, the keyword arguments are wrong, or timm is needed and cannot be
        imported.
    """
    kwargs = dict(kwargs or {})
    if device is not None and not builds_on_meta(name):
        raise EncoderError(f"architecture {name!r} cannot be built on device {device!r}")
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError as err:
            raise EncoderError(
                f"architecture {name!r} needs timm, which is not installed (pip install timm); "
                "it is optional because it pulls torchvision. The pathology presets need no timm"
            ) from err
        except RuntimeError as err:  # torchvision built for another torch (e.g. CUDA vs CPU)
            import torch

            raise EncoderError(
                f"architecture {name!r}: timm cannot be imported because torchvision does not "
                f"fit torch {torch.__version__} ({err}). Install the torchvision build made for "
                "this torch (a CPU torch needs the CPU torchvision of the same release), or use "
                "architecture 'vit' / a preset, which need no timm"
            ) from err
        try:
            return timm.create_model(name[5:], pretrained=False, num_classes=0, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise EncoderError(f"timm cannot build {name[5:]!r}: {err}") from err
    if name not in ARCHITECTURES:
        raise EncoderError(
            f"unknown architecture {name!r}; registered: {sorted(ARCHITECTURES)} "
            "or timm:<model name>"
        )
    try:
        if device is not None:
            import torch

            with torch.device(device):
                return ARCHITECTURES[name](**kwargs)
        return ARCHITECTURES[name](**kwargs)
    except TypeError as err:
        raise EncoderError(
            f"architecture {name!r}: bad architecture_kwargs {kwargs}: {err}"
        ) from err
