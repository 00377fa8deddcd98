"""Load a frozen encoder described by a model card.

Formats: TorchScript, ``torch.export`` programs, safetensors or ``state_dict`` weights for a named
architecture (``state_dict`` files are read with ``torch.load(weights_only=True)`` only; every
key must match the architecture, missing and unexpected keys are listed), and
ONNX (onnxruntime). The weight file's SHA-256 is computed (and checked against the card when
the card gives one); the model is put in eval mode with gradients off and run under
``torch.inference_mode``. On CUDA the forward pass runs in channels-last memory format under
bf16 autocast; on CPU in float32 (both can be chosen: ``precision``, ``channels_last``).
``compile=True`` wraps the model in ``torch.compile``; where that fails (no compiler, an
unsupported model or platform) the model runs eagerly and the reason is recorded.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

import numpy as np

from ..errors import EncoderError
from ..provenance import sha256_file
from .architectures import build_architecture, builds_on_meta
from .head import ExpressionHead
from .model_card import ModelCard, load_model_card

__all__ = ["FrozenEncoder", "load_encoder", "resolve_device", "DEVICES", "PRECISIONS"]

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bfloat16")


def _first(keys: Any, n: int = 8) -> str:
    keys = list(keys)
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return "[" + ", ".join(map(str, keys[:n])) + "]" + more


def resolve_device(device: str = "auto") -> str:
    """Map ``"auto"`` to ``"cuda"`` when available, else ``"cpu"``; validate the others.

    Raises
    ------
    EncoderError
        If ``device`` is not one of ``auto, cpu, cuda[:N]`` or CUDA is requested but absent.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise EncoderError(
                f"device={device!r} requested but CUDA is not available; use --device cpu or auto"
            )
        return device
    raise EncoderError(f"device={device!r} is not allowed; allowed: auto, cpu, cuda, cuda:N")


class FrozenEncoder:
    """A frozen tile encoder: uint8 RGB tiles in, float32 features out.

    Create with :func:`load_encoder`.

    Attributes
    ----------
    card : ModelCard
    device : str
    dtype : {"float32", "bfloat16"}
        Compute dtype (bf16 autocast on CUDA for torch models).
    weights_sha256 : str
    head_sha256 : str or None
    feature_names : list of str
        Gene symbols (expression output) or ``f0..`` (embedding output).
    channels_last : bool
        Whether the forward pass runs in channels-last memory format.
    compile_status : str
        ``"off"``, ``"on (<backend>)"`` or ``"fallback: <reason>"`` (running eagerly).
    """

    def __init__(
        self,
        card: ModelCard,
        *,
        device: str = "auto",
        precision: Literal["auto", "float32", "bfloat16"] = "auto",
        channels_last: bool | None = None,
        compile: bool | str = False,  # noqa: A002 - torch's word for it
    ) -> None:
        import torch

        if precision not in PRECISIONS:
            raise EncoderError(
                f"precision={precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}"
            )
        self.card = card
        self.device = resolve_device(device)
        self._torch_device = torch.device(self.device)
        is_cuda = self._torch_device.type == "cuda"
        self.channels_last = is_cuda if channels_last is None else bool(channels_last)
        wpath = card.weights_path
        if not wpath.is_file():
            raise EncoderError(
                f"model card {card.path}: key 'weights' points to a missing file: {wpath}"
            )
        self.weights_sha256 = sha256_file(wpath)
        expected = card.data.get("sha256")
        if expected and expected != self.weights_sha256:
            raise EncoderError(
                f"model weights {wpath} have SHA-256 {self.weights_sha256}; the model card "
                f"(key 'sha256') expects {expected}. The file is corrupt or not the one described"
            )
        self._onnx = None
        self._module = None
        fmt = card.format
        if fmt == "onnx":
            self._onnx = self._load_onnx(wpath)
            self.dtype: Literal["float32", "bfloat16"] = "float32"
            self.channels_last = False
        else:
            self._module = self._load_torch(fmt, wpath)
            auto = "bfloat16" if is_cuda else "float32"
            self.dtype = auto if precision == "auto" else precision  # type: ignore[assignment]
        self._compiled: Any = None
        self.compile_status = "off"
        self.head: ExpressionHead | None = None
        self._head_torch = None
        self.head_sha256: str | None = None
        hpath = card.head_path
        if hpath is not None:
            if not hpath.is_file():
                raise EncoderError(
                    f"model card {card.path}: key 'head.weights' points to a missing file: {hpath}"
                )
            self.head_sha256 = sha256_file(hpath)
            hexp = card.data["head"].get("sha256")
            if hexp and hexp != self.head_sha256:
                raise EncoderError(
                    f"ExpressionHead weights {hpath} have SHA-256 {self.head_sha256}; the model "
                    f"card (key 'head.sha256') expects {hexp}"
                )
            self.head = ExpressionHead.load(hpath)
            self._head_torch = self.head.to_torch().to(self._torch_device)
        mean = torch.tensor(card.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(card.std, dtype=torch.float32).view(1, 3, 1, 1)
        self._mean = mean.to(self._torch_device)
        self._std = std.to(self._torch_device)
        self.feature_names = self._check_output()
        if compile:
            self._compile("inductor" if compile is True else str(compile))

    # -- loading --------------------------------------------------------------------------------
    def _load_torch(self, fmt: str, wpath: os.PathLike[str]) -> Any:
        import torch

        try:
            if fmt == "torchscript":
                module = torch.jit.load(str(wpath), map_location="cpu")
            elif fmt == "torch_export":
                module = torch.export.load(str(wpath)).module()
            else:
                if fmt == "safetensors":
                    from safetensors.torch import load_file

                    state = load_file(str(wpath), device="cpu")
                else:  # state_dict: never unpickle arbitrary objects
                    state = torch.load(str(wpath), map_location="cpu", weights_only=True)
                    if not isinstance(state, dict):
                        raise EncoderError(
                            f"weights {wpath}: expected a state_dict (dict of tensors); "
                            f"got {type(state).__name__}"
                        )
                module = self._load_state(state, wpath)
        except EncoderError:
            raise
        except Exception as err:  # noqa: BLE001 - torch raises many types for bad archives
            raise EncoderError(
                f"cannot load {fmt} model from {wpath} (model card key 'format'={fmt!r}): {err}"
            ) from err
        try:
            module.eval()
        except (NotImplementedError, RuntimeError):  # exported programs may refuse .eval()
            logger.debug("module.eval() not supported for %s", fmt)
        for p in getattr(module, "parameters", lambda: [])():
            p.requires_grad_(False)
        module = module.to(self._torch_device)
        if self.channels_last:
            try:
                module = module.to(memory_format=torch.channels_last)
            except (TypeError, RuntimeError):
                logger.debug("channels_last not supported for this module")
        return module

    def _load_state(self, state: dict[str, Any], wpath: os.PathLike[str]) -> Any:
        """Build the card's architecture and load ``state`` into it; every key must match.

        Architectures that allow it (:func:`builds_on_meta`, the presets' ViT) are built on the
        meta device and take the checkpoint's tensors (cast to float32) as their parameters, so a
        billion-parameter model is neither randomly initialised nor held twice in memory.
        """
        import torch

        card = self.card
        arch = card.data["architecture"]
        meta = builds_on_meta(arch)
        try:
            module = build_architecture(
                arch, card.data.get("architecture_kwargs"), device="meta" if meta else None
            )
        except EncoderError as err:
            raise EncoderError(f"model card {card.path}: key 'architecture': {err}") from err
        convert = getattr(module, "convert_state_dict", None)
        if callable(convert):
            state = convert(state)
        if meta:
            state = {
                k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                for k, v in state.items()
            }
        missing, unexpected = module.load_state_dict(state, strict=False, assign=meta)
        if missing or unexpected:
            layout = (card.data.get("architecture_kwargs") or {}).get("layout", "timm")
            what = f"preset {card.preset!r}" if card.preset else f"architecture {arch!r}"
            raise EncoderError(
                f"weights {wpath} do not fit {what} (checkpoint key layout {layout!r}): "
                f"{len(missing)} missing key(s) {_first(missing)}; {len(unexpected)} unexpected "
                f"key(s) {_first(unexpected)}. Is this the right checkpoint for the card?"
            )
        if meta:
            left = [n for n, t in [*module.named_parameters(), *module.named_buffers()]
                    if t.is_meta]  # fmt: skip
            if left:
                raise EncoderError(
                    f"weights {wpath}: {len(left)} tensor(s) not filled by the checkpoint: "
                    f"{_first(left)}"
                )
        return module

    def _load_onnx(self, wpath: os.PathLike[str]) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise EncoderError(
                "ONNX models need onnxruntime (pip install onnxruntime, or onnxruntime-gpu)"
            ) from err
        providers = ["CPUExecutionProvider"]
        if (
            self._torch_device.type == "cuda"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            return ort.InferenceSession(str(wpath), sess_options=opts, providers=providers)
        except Exception as err:  # noqa: BLE001
            raise EncoderError(f"cannot load ONNX model {wpath}: {err}") from err

    def _compile(self, backend: str) -> None:
        """Wrap the module in ``torch.compile``; record why not where that is impossible."""
        import torch

        if self._module is None:
            self.compile_status = "fallback: ONNX models are not compiled"
            return
        if isinstance(self._module, torch.jit.ScriptModule):
            self.compile_status = "fallback: TorchScript models are not compiled"
            return
        try:
            self._compiled = torch.compile(self._module, backend=backend, dynamic=False)
        except Exception as err:  # noqa: BLE001 - unsupported Python/platform/backend
            self._compile_failed(err)
            return
        self.compile_status = f"on ({backend})"

    def _compile_failed(self, err: BaseException) -> None:
        self._compiled = None
        self.compile_status = f"fallback: {type(err).__name__}: {str(err)[:200]}"
        logger.warning("torch.compile is not available for %r (%s); running the model eagerly",
                       self.card.name, err)  # fmt: skip

    # -- inference ------------------------------------------------------------------------------
    def _raw(self, x: Any) -> Any:
        """Backbone forward on a normalised float32 NCHW tensor; returns a float32 tensor."""
        import torch

        out_idx = int(self.card.data["output"].get("output_index", 0))
        if self._onnx is not None:
            name = self._onnx.get_inputs()[0].name
            res = self._onnx.run(None, {name: x.detach().cpu().numpy().astype(np.float32)})
            return torch.from_numpy(np.asarray(res[out_idx], dtype=np.float32)).to(x.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self._torch_device.type, dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"
        ):
            y = None
            if self._compiled is not None:
                try:
                    y = self._compiled(x)
                except Exception as err:  # noqa: BLE001 - compiler errors surface on first call
                    self._compile_failed(err)
            if y is None:
                y = self._module(x)
        if isinstance(y, tuple | list):
            y = y[out_idx]
        elif isinstance(y, dict):
            y = list(y.values())[out_idx]
        return y.float()

    def forward(self, tiles: Any) -> Any:
        """Encode a batch of uint8 tiles.

        Parameters
        ----------
        tiles : torch.Tensor
            ``(N, H, W, 3)`` uint8 (as produced by the tile loader), on any device.

        Returns
        -------
        torch.Tensor
            ``(N, n_features)`` float32 on :attr:`device`.
        """
        import torch

        with torch.inference_mode():
            x = tiles.to(self._torch_device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div_(self.card.value_scale)
            x = (x - self._mean) / self._std
            y = self._raw(x)
            out = self.card.data["output"]
            transform = out.get("transform", "none")
            if transform == "softmax":
                y = torch.softmax(y, dim=1)
            elif transform == "sigmoid":
                y = torch.sigmoid(y)
            elif transform == "expm1":
                y = torch.expm1(y)
            elif transform == "log1p":
                y = torch.log1p(y.clamp_min(0))
            if y.ndim > 2:
                if out.get("spatial_reduce", "none") != "mean":
                    raise EncoderError(
                        f"model {self.card.name!r} outputs shape {tuple(y.shape)}; set model card "
                        "key 'output.spatial_reduce' to 'mean' for spatial outputs"
                    )
                y = y.flatten(2).mean(dim=2)
            if self._head_torch is not None:
                y = self._head_torch(y)
            return y.float()

    __call__ = forward

    def encode_array(self, tiles: np.ndarray) -> np.ndarray:
        """Encode ``(N, H, W, 3)`` uint8 tiles held in memory; returns float32 ``(N, F)``."""
        import torch

        return self.forward(torch.from_numpy(np.ascontiguousarray(tiles))).cpu().numpy()

    def _check_output(self) -> list[str]:
        t = self.card.tile_px
        try:
            y = self.encode_array(np.full((1, t, t, 3), 200, dtype=np.uint8))
        except EncoderError:
            raise
        except Exception as err:  # noqa: BLE001
            raise EncoderError(
                f"model {self.card.name!r} (card {self.card.path}) fails on a {t}x{t} RGB tile "
                f"(model card key 'input.tile_px'={t}): {err}"
            ) from err
        width = y.shape[1]
        out = self.card.data["output"]
        if self.head is not None:
            return list(self.head.genes_)
        if out["kind"] == "expression":
            genes = list(out["genes"])
            if len(genes) != width:
                raise EncoderError(
                    f"model {self.card.name!r} outputs {width} features but the model card "
                    f"{self.card.path} lists {len(genes)} genes (key 'output.genes')"
                )
            return genes
        if int(out["width"]) != width:
            raise EncoderError(
                f"model {self.card.name!r} outputs {width} features but the model card "
                f"{self.card.path} says output.width={out['width']} (key 'output.width')"
            )
        return [f"f{i}" for i in range(width)]

    def provenance(self) -> dict[str, Any]:
        """Model card, weight hashes, device and dtype for provenance records."""
        return {
            "model_card": self.card.to_dict(),
            "weights_sha256": self.weights_sha256,
            "head_sha256": self.head_sha256,
            "device": self.device,
            "dtype": self.dtype,
            "channels_last": bool(self.channels_last),
            "compile": self.compile_status,
            "head_fit": None if self.head is None else self.head.fit_record(),
        }

    def __repr__(self) -> str:
        return (
            f"FrozenEncoder({self.card.name!r}, format={self.card.format}, "
            f"{len(self.feature_names)} features, device={self.device}, dtype={self.dtype})"
        )


def load_encoder(
    model: Any,
    *,
    device: str = "auto",
    weights: str | os.PathLike[str] | None = None,
    precision: Literal["auto", "float32", "bfloat16"] = "auto",
    channels_last: bool | None = None,
    compile: bool | str = False,  # noqa: A002 - torch's word for it
) -> FrozenEncoder:
    """Load a frozen encoder.

    Parameters
    ----------
    model : "demo", preset name, path to a model card, dict, ModelCard or FrozenEncoder
        ``"demo"`` loads the demo model (a small fixed CNN + ExpressionHead fitted on synthetic
        paired data; **not a pathology model**). A preset name (``uni``, ``uni2-h``,
        ``virchow2``, ``h-optimus-0``, ``h-optimus-1``, ``prov-gigapath``, ``phikon-v2``) needs
        ``weights``.
    device : {"auto", "cpu", "cuda"}
    weights : path, optional
        Local weights for a preset (Hugging Face snapshot folder or the weight file), or a
        replacement for a card's ``weights``.
    precision : {"auto", "float32", "bfloat16"}
        ``auto``: bf16 autocast on CUDA, float32 on CPU (ONNX models: float32).
    channels_last : bool, optional
        Channels-last memory format for the forward pass (default: on CUDA).
    compile : bool or str
        ``torch.compile`` the model (``True``: the inductor backend; a string names another
        backend). Where compiling is not possible the model runs eagerly, with a warning, and
        :attr:`FrozenEncoder.compile_status` (also in provenance) says why.

    Returns
    -------
    FrozenEncoder

    Raises
    ------
    EncoderError
        If the card is invalid, the weights are missing, corrupt or do not match the card.
    """
    options = {"precision": precision, "channels_last": channels_last, "compile": compile}
    if isinstance(model, FrozenEncoder) and weights is None:
        if compile and model.compile_status == "off":
            model._compile("inductor" if compile is True else str(compile))
        return model
    if isinstance(model, FrozenEncoder):
        model = model.card
    if isinstance(model, str) and model == "demo":
        from .demo import demo_card_path

        model = demo_card_path()
    return FrozenEncoder(load_model_card(model, weights=weights), device=device, **options)
