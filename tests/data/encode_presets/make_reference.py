"""Write the timm / transformers reference files that tests/test_encode_presets.py checks against.

Needs timm (1.0.31 was used) and transformers (5.24.0 was used); run from the repository root::

    python tests/data/encode_presets/make_reference.py

Writes, beside this script:

- ``layouts.json``: for every preset, the parameter names and shapes of the reference
  implementation built at full size on the meta device with the kwargs the model's card gives
  (timm ``create_model(...)``; for Phikon-v2 transformers ``Dinov2Model`` saved in the
  transformers 4.x key names of the released file), and the parameter count.
- ``tiny.safetensors`` + ``tiny.json``: for each architecture flavour of the presets, a narrow
  (width 48, 2 blocks; weights rounded to float16 and stored so, outputs computed in float32) reference model with seeded random weights, a fixed input and the
  reference's output with the preset's pooling; our ViT must reproduce it from those weights.

If torchvision cannot be imported beside this torch (PyPI's torchvision wheels are CUDA builds;
with a CPU torch its import fails with ``operator torchvision::nms does not exist``), the two ops
it registers fake kernels for are declared first, which is enough for timm and transformers to
import; no torchvision op is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

HERE = Path(__file__).parent


def import_references() -> tuple[object, object]:
    try:
        import torchvision  # noqa: F401
    except RuntimeError:
        lib = torch.library.Library("torchvision", "DEF")  # noqa: F841 (kept alive below)
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        globals()["_TV_LIB"] = lib
    import timm
    import transformers

    return timm, transformers


def timm_kwargs(timm: object, preset: str) -> tuple[str, dict]:
    """The timm call each model card / repository gives (sources in presets.py)."""
    swiglu = {"mlp_layer": timm.layers.SwiGLUPacked, "act_layer": torch.nn.SiLU}
    return {
        "uni": ("vit_large_patch16_224", dict(img_size=224, patch_size=16, init_values=1e-5,
                                              num_classes=0, dynamic_img_size=True)),
        "uni2-h": ("vit_giant_patch14_224", dict(
            img_size=224, patch_size=14, depth=24, num_heads=24, init_values=1e-5, embed_dim=1536,
            mlp_ratio=2.66667 * 2, num_classes=0, no_embed_class=True, reg_tokens=8,
            dynamic_img_size=True, **swiglu)),
        "virchow2": ("vit_huge_patch14_224", dict(
            img_size=224, init_values=1e-5, num_classes=0, reg_tokens=4, mlp_ratio=5.3375,
            global_pool="", dynamic_img_size=True, **swiglu)),
        "h-optimus-0": ("vit_giant_patch14_reg4_dinov2", dict(
            img_size=224, num_classes=0, global_pool="token", init_values=1e-5,
            dynamic_img_size=False)),
        "h-optimus-1": ("vit_giant_patch14_reg4_dinov2", dict(
            img_size=224, num_classes=0, global_pool="token", init_values=1e-5,
            dynamic_img_size=False)),
        "prov-gigapath": ("vit_giant_patch14_dinov2", dict(
            img_size=224, in_chans=3, patch_size=16, embed_dim=1536, depth=40, num_heads=24,
            mlp_ratio=5.33334, num_classes=0)),
    }[preset]  # fmt: skip


def to_transformers4(state: dict) -> dict:
    """transformers >= 5 Dinov2 names -> the 4.x names of the released Phikon-v2 file."""
    out = {}
    for k, v in state.items():
        for new, old in ((".attention.q_proj.", ".attention.attention.query."),
                         (".attention.k_proj.", ".attention.attention.key."),
                         (".attention.v_proj.", ".attention.attention.value."),
                         (".attention.o_proj.", ".attention.output.dense.")):  # fmt: skip
            k = k.replace(new, old)
        out[k] = v
    return out


def phikon_config(transformers: object, **over: object) -> object:
    cfg = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, patch_size=16,
               image_size=224, mlp_ratio=4, layerscale_value=1e-5, use_swiglu_ffn=False,
               layer_norm_eps=1e-6, hidden_act="gelu")  # fmt: skip
    cfg.update(over)
    return transformers.Dinov2Config(**cfg)


def main() -> None:
    from safetensors.torch import save_file

    timm, transformers = import_references()
    from tario_clinical.encode.presets import PRESETS

    layouts = {}
    for name in PRESETS:
        if name == "phikon-v2":
            with torch.device("meta"):
                m = transformers.Dinov2Model(phikon_config(transformers))
            state = to_transformers4(m.state_dict())
            source = f"transformers {transformers.__version__} Dinov2Model (4.x key names)"
        else:
            arch, kw = timm_kwargs(timm, name)
            m = timm.create_model(arch, pretrained=False, device="meta", **kw)
            state = m.state_dict()
            source = f"timm {timm.__version__} create_model({arch!r}, ...)"
        layouts[name] = {
            "source": source,
            "n_parameters": sum(p.numel() for p in m.parameters()),
            "keys": {k: list(v.shape) for k, v in state.items()},
        }
    (HERE / "layouts.json").write_text(json.dumps(layouts, indent=0, sort_keys=True) + "\n")

    # narrow references: one per flavour (same switches, width 64, 2 blocks)
    tensors, meta = {}, {}
    g = torch.Generator().manual_seed(17)
    narrow = dict(embed_dim=48, depth=2, num_heads=4)
    flavours = {
        "uni": ("vit_large_patch16_224", dict(img_size=32, patch_size=16, init_values=1e-5,
                                              num_classes=0, dynamic_img_size=True, **narrow)),
        "uni2-h": ("vit_giant_patch14_224", dict(
            img_size=28, patch_size=14, init_values=1e-5, mlp_ratio=2.66667 * 2, num_classes=0,
            no_embed_class=True, mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU,
            reg_tokens=8, dynamic_img_size=True, **narrow)),
        "virchow2": ("vit_huge_patch14_224", dict(
            img_size=28, init_values=1e-5, num_classes=0, reg_tokens=4, mlp_ratio=5.3375,
            global_pool="", dynamic_img_size=True, mlp_layer=timm.layers.SwiGLUPacked,
            act_layer=torch.nn.SiLU, **narrow)),
        "h-optimus-0": ("vit_giant_patch14_reg4_dinov2", dict(
            img_size=28, num_classes=0, global_pool="token", init_values=1e-5, **narrow)),
        "prov-gigapath": ("vit_giant_patch14_dinov2", dict(
            img_size=32, patch_size=16, mlp_ratio=5.33334, num_classes=0, **narrow)),
    }  # fmt: skip
    for name, (arch, kw) in flavours.items():
        torch.manual_seed(0)
        m = timm.create_model(arch, pretrained=False, **kw).eval()
        with torch.no_grad():
            for pname, p in m.named_parameters():
                p.copy_(((0.5 if pname.endswith("gamma") else 0.0)
                         + 0.1 * torch.randn(p.shape, generator=g)).half().float())  # fmt: skip
        side = kw["img_size"] * (2 if kw.get("dynamic_img_size") else 1)  # also resampling
        x = torch.randn(2, 3, side, side, generator=g)
        with torch.no_grad():
            y = m(x)
            if name == "virchow2":
                y = torch.cat([y[:, 0], y[:, 5:].mean(1)], dim=1)
        for k, v in m.state_dict().items():
            tensors[f"{name}/{k}"] = v.half().contiguous()
        tensors[f"{name}/__input__"] = x
        tensors[f"{name}/__output__"] = y.contiguous()
        meta[name] = {"source": f"timm {timm.__version__} create_model({arch!r}, ...)",
                      "timm_kwargs": {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                                      for k, v in kw.items()}}  # fmt: skip
    cfg = phikon_config(transformers, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32)  # fmt: skip
    torch.manual_seed(0)
    m = transformers.Dinov2Model(cfg).eval()
    with torch.no_grad():
        for pname, p in m.named_parameters():
            p.copy_(((0.5 if pname.endswith("lambda1") else 0.0)
                     + 0.1 * torch.randn(p.shape, generator=g)).half().float())  # fmt: skip
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        y = m(pixel_values=x).last_hidden_state[:, 0]
    for k, v in to_transformers4(m.state_dict()).items():
        tensors[f"phikon-v2/{k}"] = v.half().contiguous()
    tensors["phikon-v2/__input__"] = x
    tensors["phikon-v2/__output__"] = y.contiguous()
    meta["phikon-v2"] = {"source": f"transformers {transformers.__version__} Dinov2Model, "
                         "last_hidden_state[:, 0], saved with 4.x key names",
                         "config": {k: v for k, v in cfg.to_dict().items()
                                    if k in ("hidden_size", "num_hidden_layers", "patch_size",
                                             "image_size", "layerscale_value")}}  # fmt: skip
    save_file(tensors, str(HERE / "tiny.safetensors"))
    (HERE / "tiny.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
