"""Named architectures for weights shipped as safetensors / state_dict files.

``register_architecture(name, factory)`` adds one; ``timm:<model>`` names build a timm model
(timm is optional and never a core dependency). The built-in ``tario_demo_cnn`` is the small
fixed CNN of the demo model: **a demo, not a pathology model**.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EncoderError

__all__ = ["register_architecture", "build_architecture", "ARCHITECTURES", "demo_cnn_class"]

ARCHITECTURES: dict[str, Callable[..., Any]] = {}


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


def build_architecture(name: str, kwargs: dict[str, Any] | None = None) -> Any:
    """Instantiate the architecture ``name`` with ``kwargs``.

    Raises
    ------
    EncoderError
        If the name is unknown, or timm is needed and not installed.
    """
    kwargs = dict(kwargs or {})
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError as err:
            raise EncoderError(
                f"architecture {name!r} needs timm, which is not installed (pip install timm); "
                "it is optional because it pulls torchvision"
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
        return ARCHITECTURES[name](**kwargs)
    except TypeError as err:
        raise EncoderError(
            f"architecture {name!r}: bad architecture_kwargs {kwargs}: {err}"
        ) from err
