"""A plain Vision Transformer whose parameters are named as timm names them.

Why our own module and not ``timm.create_model``: the public pathology backbones (UNI, UNI2-h,
Virchow2, H-optimus, Prov-GigaPath, Phikon-v2) are all the same pre-norm ViT with a handful of
switches (patch size, widths, register tokens, LayerScale, GELU MLP or packed SwiGLU, which
tokens carry a position embedding). Building it here keeps the presets free of timm, whose import
needs a torchvision that matches the installed torch build exactly (PyPI's torchvision wheels are
CUDA builds and fail to import beside a CPU torch). The parameter names and shapes are those of
timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``, ``reg_token``, ``pos_embed``,
``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``), so the
released ``pytorch_model.bin`` / ``model.safetensors`` files load with no renaming;
``tests/test_encode_presets.py`` checks names, shapes and outputs against timm itself when timm
can be imported. Checkpoints in Hugging Face ``transformers`` DINOv2 layout (Phikon-v2) are
renamed by :func:`convert_hf_dinov2` (query/key/value concatenated into ``qkv``).

Only inference is implemented (no dropout, drop-path or masking).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VisionTransformer", "convert_hf_dinov2", "POOLS", "MLPS", "LAYOUTS"]

POOLS = ("token", "token+patch_mean", "patch_mean")
MLPS = ("gelu", "swiglu_packed")
LAYOUTS = ("timm", "hf_dinov2")


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    """``gelu``: fc1 -> GELU -> fc2. ``swiglu_packed``: fc1 gives [a | b], out = fc2(silu(a) * b).

    The packed SwiGLU is timm's ``SwiGLUPacked`` (``GluMlp`` with SiLU, gate first): fc1 maps to
    ``hidden`` features, fc2 reads ``hidden // 2``.
    """

    def __init__(self, dim: int, hidden: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.fc1 = nn.Linear(dim, hidden)
        if kind == "swiglu_packed":
            if hidden % 2:
                raise ValueError(f"packed SwiGLU needs an even hidden width; got {hidden}")
            self.fc2 = nn.Linear(hidden // 2, dim)
        else:
            self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.kind == "swiglu_packed":
            a, b = x.chunk(2, dim=-1)
            x = F.silu(a) * b
        else:
            x = F.gelu(x)
        return self.fc2(x)


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, hidden: int, mlp: str, layer_scale: bool, qkv_bias: bool,
        eps: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = _Attention(dim, heads, qkv_bias)
        self.ls1 = _LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = _Mlp(dim, hidden, mlp)
        self.ls2 = _LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Pre-norm ViT returning one embedding per image.

    Parameters mirror the keyword arguments the backbones' own model cards pass to
    ``timm.create_model`` (same names and meaning), plus ``mlp``, ``pool`` and ``layout``.

    Parameters
    ----------
    img_size : int
        Side of the image the position embedding was trained for (its grid is
        ``img_size // patch_size`` squared).
    patch_size : int
    embed_dim, depth, num_heads : int
    mlp_ratio : float
        Hidden width of the MLP is ``int(embed_dim * mlp_ratio)`` (timm's rule; for the packed
        SwiGLU this is the width of fc1, twice the gated width).
    mlp : {"gelu", "swiglu_packed"}
    init_values : float or None
        LayerScale present when given (timm's ``init_values``); the value itself only matters for
        training, the checkpoint holds the learned ``gamma``.
    reg_tokens : int
        Register tokens after the class token.
    no_embed_class : bool
        Position embedding covers the patch tokens only (class and register tokens get none).
    dynamic_img_size : bool
        Accept other input sizes by resampling the position embedding (bicubic, antialiased, as
        timm). When False the input must be exactly ``img_size``.
    qkv_bias : bool
    norm_eps : float
        LayerNorm epsilon (1e-6 in timm's ViT and in DINOv2).
    pool : {"token", "token+patch_mean", "patch_mean"}
        Embedding from the final-normed tokens: the class token; the class token concatenated with
        the mean of the patch tokens (register tokens excluded; Virchow2's embedding); or that mean.
    layout : {"timm", "hf_dinov2"}
        Key layout of the checkpoint this module is loaded from; ``hf_dinov2`` checkpoints are
        renamed by :meth:`convert_state_dict` before loading.

    Notes
    -----
    Parameters are created uninitialised (``torch.empty``): the module is meant to be filled from a
    checkpoint. :meth:`init_random` fills it with seeded random values for tests.
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        mlp: Literal["gelu", "swiglu_packed"] = "gelu",
        init_values: float | None = None,
        reg_tokens: int = 0,
        no_embed_class: bool = False,
        dynamic_img_size: bool = False,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        pool: Literal["token", "token+patch_mean", "patch_mean"] = "token",
        layout: Literal["timm", "hf_dinov2"] = "timm",
    ) -> None:
        super().__init__()
        for name, value, allowed in (("mlp", mlp, MLPS), ("pool", pool, POOLS),
                                     ("layout", layout, LAYOUTS)):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}")
        self.img_size = int(img_size)
        self.patch_size = int(patch_size)
        self.grid = self.img_size // self.patch_size
        self.embed_dim = int(embed_dim)
        self.num_reg_tokens = int(reg_tokens)
        self.num_prefix_tokens = 1 + self.num_reg_tokens
        self.no_embed_class = bool(no_embed_class)
        self.dynamic_img_size = bool(dynamic_img_size)
        self.pool = pool
        self.layout = layout
        self.hidden = int(embed_dim * mlp_ratio)
        self.embedding_width = 2 * self.embed_dim if pool == "token+patch_mean" else self.embed_dim

        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
        self.reg_token = nn.Parameter(torch.empty(1, reg_tokens, embed_dim)) if reg_tokens else None
        n_pos = self.grid**2 + (0 if no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.empty(1, n_pos, embed_dim))
        self.blocks = nn.ModuleList(
            _Block(
                embed_dim, num_heads, self.hidden, mlp, init_values is not None, qkv_bias, norm_eps
            )  # fmt: skip
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

    # -- weights ------------------------------------------------------------------------------
    def convert_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """Rename a checkpoint of this module's ``layout`` to the module's own keys."""
        if self.layout == "hf_dinov2":
            return convert_hf_dinov2(state)
        return state

    @torch.no_grad()
    def init_random(self, seed: int = 0) -> VisionTransformer:
        """Fill every parameter with seeded random values (tests; not a training init).

        Weights are N(0, 0.02), biases N(0, 0.02), LayerNorm weights 1 + N(0, 0.1), LayerScale
        gammas N(0.5, 0.1) (so that, unlike a 1e-5 init, every block changes the output and a wrong
        block is visible in the embedding).
        """
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("gamma"):
                p.copy_(0.5 + 0.1 * torch.randn(p.shape, generator=g))
            elif re.search(r"norm\d?\.weight$", name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
        return self

    # -- forward ------------------------------------------------------------------------------
    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = self.pos_embed
        if (h, w) == (self.grid, self.grid):
            return pos
        if not self.dynamic_img_size:
            raise ValueError(
                f"input of {h * self.patch_size}x{w * self.patch_size} px but this model takes "
                f"{self.img_size}x{self.img_size} px (dynamic_img_size is off)"
            )
        n_prefix = 0 if self.no_embed_class else self.num_prefix_tokens
        prefix, grid = pos[:, :n_prefix], pos[:, n_prefix:]
        grid = grid.float().reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)
        grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1).to(pos.dtype)
        return torch.cat([prefix, grid], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final-normed tokens ``(N, prefix + patches, embed_dim)``: class, registers, patches."""
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(
                f"input of {x.shape[-2]}x{x.shape[-1]} px is not a multiple of the patch size "
                f"{self.patch_size}"
            )
        x = self.patch_embed.proj(x)
        b, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = self._pos_embed(h, w)
        prefix = [self.cls_token.expand(b, -1, -1)]
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(b, -1, -1))
        if self.no_embed_class:
            x = torch.cat([*prefix, x + pos], dim=1)
        else:
            x = torch.cat([*prefix, x], dim=1) + pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.forward_features(x)
        if self.pool == "token":
            return t[:, 0]
        patches = t[:, self.num_prefix_tokens :].mean(dim=1)
        if self.pool == "patch_mean":
            return patches
        return torch.cat([t[:, 0], patches], dim=1)

    def extra_repr(self) -> str:
        return (
            f"img_size={self.img_size}, patch_size={self.patch_size}, depth={len(self.blocks)}, "
            f"embed_dim={self.embed_dim}, hidden={self.hidden}, reg_tokens={self.num_reg_tokens}, "
            f"pool={self.pool!r}, layout={self.layout!r}"
        )


_HF_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_HF_BLOCK_MAP = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "attention.output.dense.weight": "attn.proj.weight",  # transformers 4.x names
    "attention.output.dense.bias": "attn.proj.bias",
    "attention.o_proj.weight": "attn.proj.weight",  # transformers >= 5 names
    "attention.o_proj.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_HF_TOP_MAP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_HF_QKV = re.compile(r"^attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
_HF_QKV_NAMES = {"q": "query", "k": "key", "v": "value"}
# Used only when pre-training with masked patches; an inference checkpoint carries it unused.
_HF_DROPPED = {"embeddings.mask_token"}


def convert_hf_dinov2(state: dict[str, Any]) -> dict[str, Any]:
    """Rename a ``transformers`` ``Dinov2Model`` state dict (GELU MLP) to this module's keys.

    ``encoder.layer.N.attention.attention.{query,key,value}`` (transformers 4.x names, those of the
    released Phikon-v2 file; ``attention.{q,k,v}_proj`` in transformers >= 5) are concatenated in
    that order into ``blocks.N.attn.qkv``; ``attention.output.dense`` (``attention.o_proj``)
    becomes ``attn.proj``; ``embeddings.mask_token`` (masked pre-training only) is dropped. Keys
    this function does not know are passed through unchanged, so that loading lists them as
    unexpected instead of silently ignoring them; a layer missing one of query/key/value keeps the
    others under their original names for the same reason.
    """
    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        if key in _HF_DROPPED:
            continue
        if key in _HF_TOP_MAP:
            out[_HF_TOP_MAP[key]] = value
            continue
        m = _HF_BLOCK.match(key)
        if m is None:
            out[key] = value
            continue
        i, rest = m.groups()
        if rest in _HF_BLOCK_MAP:
            out[f"blocks.{i}.{_HF_BLOCK_MAP[rest]}"] = value
            continue
        part = _HF_QKV.match(rest)
        if part is not None:
            name = part.group(1) or _HF_QKV_NAMES[part.group(2)]
            qkv.setdefault((i, part.group(3)), {})[name] = (key, value)
            continue
        out[key] = value
    for (i, kind), parts in qkv.items():
        if set(parts) == {"query", "key", "value"}:
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                [parts[p][1] for p in ("query", "key", "value")], dim=0
            )
        else:
            out.update(dict(parts.values()))
    return out


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(math.prod(p.shape) for p in module.parameters())
