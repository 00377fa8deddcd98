"""Built-in model cards for public pathology backbones; the user supplies the local weights.

A preset is a complete model card minus the weights: architecture (our timm-compatible
:class:`~tario_clinical.encode.vit.VisionTransformer`), input size and µm/px, normalisation,
what the embedding is, its width and the licence, each taken from the model's own card or
repository (cited per preset in ``sources``). Nothing is downloaded: the weights are gated on
Hugging Face, each user accepts the terms and downloads them once, then points ``--weights`` at
the snapshot folder (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``) or at the
weight file itself.

Use from the command line ``tario-clinical encode --model uni2-h --weights PATH ...``, from Python
``load_encoder("uni2-h", weights=PATH)``, or write a card naming the preset::

    {"schema_version": 1, "preset": "uni2-h", "weights": "UNI2-h/"}

This module imports nothing heavy (no torch).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EncoderError

__all__ = ["Preset", "PRESETS", "list_presets", "get_preset", "preset_card", "PRESET_CARD_KEYS"]

# keys a card naming a preset may set (everything else comes from the preset)
PRESET_CARD_KEYS = (
    "schema_version", "preset", "weights", "sha256", "head", "batch_size", "name", "version",
    "description", "intended_use", "citation",
)  # fmt: skip

_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
_HOPTIMUS = {"mean": [0.707223, 0.578729, 0.703617], "std": [0.211883, 0.230117, 0.177517]}
_SUFFIX_FORMAT = {".safetensors": "safetensors", ".bin": "state_dict", ".pth": "state_dict",
                  ".pt": "state_dict"}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A built-in model card.

    Attributes
    ----------
    name : str
        What ``--model`` takes (lower case).
    card : dict
        The model card without ``weights`` and ``format`` (set from the weight file).
    repository : str
        Where the weights are published (gated Hugging Face repository).
    files : tuple of str
        Weight files of that repository, in the order a snapshot folder is searched.
    sources : tuple of str
        Where each fact of the card was taken from.
    config : dict
        Fields of the repository's ``config.json`` that must match when a snapshot folder holds
        one (``{}``: not checked). Shapes are checked again when the weights load (every tensor
        must have the architecture's shape, e.g. the position embedding's grid).
    """

    name: str
    card: dict[str, Any]
    repository: str
    files: tuple[str, ...]
    sources: tuple[str, ...]
    config: dict[str, Any]

    @property
    def download_hint(self) -> str:
        url = f"https://huggingface.co/{self.repository}"
        return (
            f"get them from {url} (gated: accept the terms there, then e.g. "
            f"`huggingface-cli download {self.repository} --local-dir <folder>`) and pass "
            f"--weights <folder> (the snapshot folder) or the file {' or '.join(self.files)}"
        )


def _vit(**kw: Any) -> dict[str, Any]:
    return {"architecture": "vit", "architecture_kwargs": kw}


def _card(name: str, version: str, licence: str, description: str, citation: str, *,
          norm: dict[str, list[float]], mpp: float, width: int, arch: dict[str, Any],
          embedding: str) -> dict[str, Any]:  # fmt: skip
    return {
        "schema_version": 1,
        "name": name,
        "version": version,
        "description": f"{description} Embedding: {embedding}",
        "intended_use": "Research use; see the licence and the intended-use terms of the model card.",
        "licence": licence,
        "citation": citation,
        **arch,
        "input": {"tile_px": 224, "mpp": mpp, **copy.deepcopy(norm), "value_range": "0-1"},
        "output": {"kind": "embedding", "width": width},
    }


_UNI_SRC = "https://github.com/mahmoodlab/UNI (uni/get_encoder/get_encoder.py; README)"
PRESETS: dict[str, Preset] = {
    "uni": Preset(
        name="uni",
        card=_card(
            "UNI",
            "v1",
            "CC-BY-NC-ND-4.0 (MahmoodLab/UNI model card; research use, gated)",
            "UNI (MahmoodLab): ViT-L/16 trained with DINOv2 on Mass-100K H&E tiles at 20x.",
            "Chen et al., Towards a general-purpose foundation model for computational pathology, "
            "Nat Med 2024",
            norm=_IMAGENET,
            mpp=0.5,
            width=1024,
            embedding="class token after the final LayerNorm (timm global_pool='token'), 1024-d.",
            arch=_vit(
                img_size=224,
                patch_size=16,
                embed_dim=1024,
                depth=24,
                num_heads=16,
                mlp_ratio=4.0,
                init_values=1e-5,
                dynamic_img_size=True,
                pool="token",
            ),
        ),  # fmt: skip
        repository="MahmoodLab/UNI",
        files=("pytorch_model.bin",),
        sources=(
            f"{_UNI_SRC}: timm.create_model('vit_large_patch16_224', img_size=224, patch_size=16, "
            "init_values=1e-5, num_classes=0, dynamic_img_size=True); weights "
            "hf_hub_download('MahmoodLab/UNI', 'pytorch_model.bin'), load_state_dict(strict=True)",
            f"{_UNI_SRC}: eval transform Resize(224), CenterCrop(224), ToTensor, "
            "Normalize(ImageNet mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225))",
            "timm vit_large_patch16_224: embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4, "
            "GELU, qkv_bias, LayerNorm eps 1e-6; 303,350,784 parameters (checked against timm "
            "1.0.31 in tests/test_encode_presets.py)",
            "https://huggingface.co/MahmoodLab/UNI: licence CC-BY-NC-ND-4.0, gated",
        ),
        config={},
    ),
    "uni2-h": Preset(
        name="uni2-h",
        card=_card(
            "UNI2-h",
            "v2",
            "CC-BY-NC-ND-4.0 (MahmoodLab/UNI2-h model card; research use, gated)",
            "UNI2-h (MahmoodLab): ViT-H/14-sized ViT (1536 wide, 24 blocks) with 8 register tokens "
            "and packed SwiGLU MLPs, trained with DINOv2 on >200M H&E and IHC tiles.",
            "Chen et al., Towards a general-purpose foundation model for computational pathology, "
            "Nat Med 2024 (UNI2 release 2025)",
            norm=_IMAGENET,
            mpp=0.5,
            width=1536,
            embedding="class token after the final LayerNorm, 1536-d.",
            arch=_vit(
                img_size=224,
                patch_size=14,
                embed_dim=1536,
                depth=24,
                num_heads=24,
                mlp_ratio=2.66667 * 2,
                mlp="swiglu_packed",
                init_values=1e-5,
                reg_tokens=8,
                no_embed_class=True,
                dynamic_img_size=True,
                pool="token",
            ),
        ),  # fmt: skip
        repository="MahmoodLab/UNI2-h",
        files=("pytorch_model.bin",),
        sources=(
            f"{_UNI_SRC}: timm.create_model('vit_giant_patch14_224', img_size=224, patch_size=14, "
            "depth=24, num_heads=24, init_values=1e-5, embed_dim=1536, mlp_ratio=2.66667*2, "
            "num_classes=0, no_embed_class=True, mlp_layer=timm.layers.SwiGLUPacked, "
            "act_layer=torch.nn.SiLU, reg_tokens=8, dynamic_img_size=True); weights "
            "hf_hub_download('MahmoodLab/UNI2-h', 'pytorch_model.bin'), strict load",
            f"{_UNI_SRC}: ImageNet normalisation, 224 px (Resize + CenterCrop)",
            "681,394,176 parameters (timm 1.0.31, checked in tests/test_encode_presets.py)",
            "https://huggingface.co/MahmoodLab/UNI2-h: licence CC-BY-NC-ND-4.0, gated",
        ),
        config={},
    ),
    "virchow2": Preset(
        name="virchow2",
        card=_card(
            "Virchow2",
            "2",
            "CC-BY-NC-ND-4.0 (paige-ai/Virchow2 model card; gated)",
            "Virchow2 (Paige / Microsoft Research): ViT-H/14 with 4 register tokens, packed SwiGLU "
            "MLPs and LayerScale, trained with a modified DINOv2 on 3.1M WSIs at 5x-40x.",
            "Zimmermann et al., Virchow2: Scaling Self-Supervised Mixed Magnification Models in "
            "Pathology, arXiv:2408.00738",
            norm=_IMAGENET,
            mpp=0.5,
            width=2560,
            embedding="concatenation of the class token and the mean of the 256 patch tokens "
            "(register tokens excluded: tokens 1-4), after the final LayerNorm, "
            "2 x 1280 = 2560-d (the model card's recommended embedding).",
            arch=_vit(
                img_size=224,
                patch_size=14,
                embed_dim=1280,
                depth=32,
                num_heads=16,
                mlp_ratio=5.3375,
                mlp="swiglu_packed",
                init_values=1e-5,
                reg_tokens=4,
                dynamic_img_size=True,
                pool="token+patch_mean",
            ),
        ),  # fmt: skip
        repository="paige-ai/Virchow2",
        files=("model.safetensors", "pytorch_model.bin"),
        sources=(
            "https://huggingface.co/paige-ai/Virchow2 (model card): timm.create_model("
            "'hf-hub:paige-ai/Virchow2', pretrained=True, mlp_layer=SwiGLUPacked, "
            "act_layer=torch.nn.SiLU); output = model(image) of shape 1 x 261 x 1280; "
            "class_token = output[:, 0]; patch_tokens = output[:, 5:] (tokens 1-4 are registers); "
            "embedding = cat([class_token, patch_tokens.mean(1)], -1), 1 x 2560",
            "paige-ai/Virchow2 config.json (as used by https://github.com/mahmoodlab/TRIDENT "
            "trident/patch_encoder_models/load.py): vit_huge_patch14_224 with img_size=224, "
            "init_values=1e-5, num_classes=0, reg_tokens=4, mlp_ratio=5.3375, global_pool='', "
            "dynamic_img_size=True; transforms Resize(224, bicubic), ToTensor, ImageNet Normalize",
            "timm vit_huge_patch14_224: patch_size=14, embed_dim=1280, depth=32, num_heads=16; "
            "631,239,424 parameters (timm 1.0.31, checked in tests/test_encode_presets.py)",
            "licence CC-BY-NC-ND-4.0 (Hugging Face model page), gated",
        ),
        config={"architecture": "vit_huge_patch14_224"},
    ),
    "h-optimus-0": Preset(
        name="h-optimus-0",
        card=_card(
            "H-optimus-0",
            "0",
            "Apache-2.0 (bioptimus/H-optimus-0 config.json; gated)",
            "H-optimus-0 (Bioptimus): ViT-g/14 with 4 register tokens, packed SwiGLU MLPs and "
            "LayerScale (1.1B parameters), trained with DINOv2 on >500k H&E WSIs.",
            "Bioptimus, H-optimus-0, 2024 (https://github.com/bioptimus/releases)",
            norm=_HOPTIMUS,
            mpp=0.5,
            width=1536,
            embedding="class token after the final LayerNorm (global_pool='token'), 1536-d.",
            arch=_vit(
                img_size=224,
                patch_size=14,
                embed_dim=1536,
                depth=40,
                num_heads=24,
                mlp_ratio=2.66667 * 2,
                mlp="swiglu_packed",
                init_values=1e-5,
                reg_tokens=4,
                no_embed_class=True,
                dynamic_img_size=False,
                pool="token",
            ),
        ),  # fmt: skip
        repository="bioptimus/H-optimus-0",
        files=("model.safetensors", "pytorch_model.bin"),
        sources=(
            "https://huggingface.co/bioptimus/H-optimus-0/blob/main/config.json: architecture "
            "vit_giant_patch14_reg4_dinov2, num_classes 0, num_features 1536, global_pool "
            "'token', input_size 3x224x224 (fixed_input_size), mean (0.707223, 0.578729, "
            "0.703617), std (0.211883, 0.230117, 0.177517), license Apache 2.0",
            "model card: timm.create_model('hf-hub:bioptimus/H-optimus-0', pretrained=True, "
            "init_values=1e-5, dynamic_img_size=False); 224 x 224 tiles at 0.5 um/px",
            "timm vit_giant_patch14_reg4_dinov2: patch_size=14, embed_dim=1536, depth=40, "
            "num_heads=24, init_values=1e-5, mlp_ratio=2.66667*2, SwiGLUPacked + SiLU, "
            "reg_tokens=4, no_embed_class=True; 1,134,774,272 parameters (timm 1.0.31)",
        ),
        config={"architecture": "vit_giant_patch14_reg4_dinov2"},
    ),
    "h-optimus-1": Preset(
        name="h-optimus-1",
        card=_card(
            "H-optimus-1",
            "1",
            "see https://huggingface.co/bioptimus/H-optimus-1 (gated; the access terms differ "
            "from H-optimus-0's Apache-2.0 release)",
            "H-optimus-1 (Bioptimus): same ViT-g/14 architecture, input and normalisation as "
            "H-optimus-0, trained on more than 1M slides; it differs from H-optimus-0 in "
            "weights and access terms, not in how it is run.",
            "Bioptimus, H-optimus-1, 2025 (https://huggingface.co/bioptimus/H-optimus-1)",
            norm=_HOPTIMUS,
            mpp=0.5,
            width=1536,
            embedding="class token after the final LayerNorm (global_pool='token'), 1536-d.",
            arch=_vit(
                img_size=224,
                patch_size=14,
                embed_dim=1536,
                depth=40,
                num_heads=24,
                mlp_ratio=2.66667 * 2,
                mlp="swiglu_packed",
                init_values=1e-5,
                reg_tokens=4,
                no_embed_class=True,
                dynamic_img_size=False,
                pool="token",
            ),
        ),  # fmt: skip
        repository="bioptimus/H-optimus-1",
        files=("model.safetensors", "pytorch_model.bin"),
        sources=(
            "model card: timm.create_model('hf-hub:bioptimus/H-optimus-1', pretrained=True, "
            "init_values=1e-5, dynamic_img_size=False), same mean/std as H-optimus-0",
            "https://github.com/mahmoodlab/TRIDENT trident/patch_encoder_models/load.py "
            "(HOptimus1InferenceEncoder): vit_giant_patch14_reg4_dinov2, img_size 224, "
            "global_pool 'token', init_values 1e-5; Normalize((0.707223, 0.578729, 0.703617), "
            "(0.211883, 0.230117, 0.177517)); checkpoint pytorch_model.bin",
        ),
        config={"architecture": "vit_giant_patch14_reg4_dinov2"},
    ),
    "prov-gigapath": Preset(
        name="prov-gigapath",
        card=_card(
            "Prov-GigaPath tile encoder",
            "1",
            "Prov-GigaPath model licence (prov-gigapath/prov-gigapath; research use only, "
            "not for clinical or deployed use; gated)",
            "Prov-GigaPath tile encoder (Providence / Microsoft Research): ViT-g (1536 wide, 40 "
            "blocks) with 16 px patches, packed SwiGLU MLPs and LayerScale, trained with DINOv2 on "
            "1.3B tiles of 171k slides. The slide encoder (LongNet) is not included.",
            "Xu et al., A whole-slide foundation model for digital pathology from real-world data, "
            "Nature 2024",
            norm=_IMAGENET,
            mpp=0.5,
            width=1536,
            embedding="class token after the final LayerNorm (timm default global_pool='token'), "
            "1536-d.",
            arch=_vit(
                img_size=224,
                patch_size=16,
                embed_dim=1536,
                depth=40,
                num_heads=24,
                mlp_ratio=5.33334,
                mlp="swiglu_packed",
                init_values=1e-5,
                dynamic_img_size=True,
                pool="token",
            ),
        ),  # fmt: skip
        repository="prov-gigapath/prov-gigapath",
        files=("pytorch_model.bin",),
        sources=(
            "https://github.com/prov-gigapath/prov-gigapath README: tile_encoder = "
            "timm.create_model('hf_hub:prov-gigapath/prov-gigapath', pretrained=True); transform "
            "Resize(256, bicubic), CenterCrop(224), ToTensor, ImageNet Normalize; intended use "
            "research only",
            "prov-gigapath config.json (as restated in https://github.com/mahmoodlab/TRIDENT "
            "load.py GigaPathInferenceEncoder): vit_giant_patch14_dinov2 with img_size=224, "
            "in_chans=3, patch_size=16, embed_dim=1536, depth=40, num_heads=24, mlp_ratio=5.33334, "
            "num_classes=0; checkpoint pytorch_model.bin, strict load",
            "timm vit_giant_patch14_dinov2 keeps init_values=1e-5, SwiGLUPacked + SiLU from its "
            "registration (fc1 8192, fc2 4096); 1,134,953,984 parameters (timm 1.0.31)",
            "tiles: 256 px at 0.5 um/px in pre-training; inference takes the central 224 px "
            "(here: 224 px tiles read at 0.5 um/px)",
        ),
        config={"architecture": "vit_giant_patch14_dinov2"},
    ),
    "phikon-v2": Preset(
        name="phikon-v2",
        card=_card(
            "Phikon-v2",
            "2",
            "Owkin non-commercial licence (owkin/phikon-v2 LICENSE.pdf)",
            "Phikon-v2 (Owkin): ViT-L/16 trained with DINOv2 on PANCAN-XL (450M 20x tiles from "
            "public cohorts), released in Hugging Face transformers Dinov2Model layout and loaded "
            "here without transformers (keys renamed, query/key/value concatenated).",
            "Filiot et al., Phikon-v2, A large and public feature extractor for biomarker "
            "prediction, arXiv:2409.09173",
            norm=_IMAGENET,
            mpp=0.5,
            width=1024,
            embedding="class token of last_hidden_state (after the final LayerNorm), 1024-d, as "
            "in the model card.",
            arch=_vit(
                img_size=224,
                patch_size=16,
                embed_dim=1024,
                depth=24,
                num_heads=16,
                mlp_ratio=4.0,
                init_values=1e-5,
                dynamic_img_size=False,
                pool="token",
                layout="hf_dinov2",
            ),
        ),  # fmt: skip
        repository="owkin/phikon-v2",
        files=("model.safetensors",),
        sources=(
            "https://huggingface.co/owkin/phikon-v2 (model card): ViT-L/16 via DINOv2; "
            "AutoImageProcessor + AutoModel.from_pretrained('owkin/phikon-v2'); features = "
            "outputs.last_hidden_state[:, 0, :] (CLS), 1024-d; 20x tiles; licence Owkin "
            "non-commercial",
            "transformers Dinov2Model: pre-norm blocks with LayerScale (layer_scale1/2.lambda1), "
            "GELU MLP of 4x width, LayerNorm eps 1e-6, final layernorm before last_hidden_state",
            "ImageNet normalisation, 224 px (as in https://github.com/mahmoodlab/TRIDENT load.py "
            "Phikonv2InferenceEncoder: Resize(224), CenterCrop(224), ImageNet Normalize)",
        ),
        config={
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "patch_size": 16,
            "use_swiglu_ffn": False,
        },  # fmt: skip
    ),
}


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name`` (case-insensitive).

    Raises
    ------
    EncoderError
        If there is no such preset (the message lists them).
    """
    key = str(name).strip().lower()
    if key not in PRESETS:
        raise EncoderError(f"unknown model preset {name!r}; presets: {', '.join(list_presets())}")
    return PRESETS[key]


def _weight_file(preset: Preset, weights: Path) -> Path:
    if weights.is_dir():
        for fname in preset.files:
            if (weights / fname).is_file():
                return weights / fname
        present = sorted(p.name for p in weights.iterdir())[:10]
        raise EncoderError(
            f"preset {preset.name!r}: folder {weights} holds none of {', '.join(preset.files)} "
            f"(found: {', '.join(present) or 'nothing'}); {preset.download_hint}"
        )
    if not weights.is_file():
        raise EncoderError(
            f"preset {preset.name!r}: weights {weights} do not exist; {preset.download_hint}"
        )
    if weights.suffix.lower() not in _SUFFIX_FORMAT:
        raise EncoderError(
            f"preset {preset.name!r}: weight file {weights} has suffix {weights.suffix!r}; "
            f"allowed: {', '.join(_SUFFIX_FORMAT)} (safetensors, or a torch state dict)"
        )
    return weights


def _check_config(preset: Preset, folder: Path) -> None:
    cfg_path = folder / "config.json"
    if not preset.config or not cfg_path.is_file():
        return
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EncoderError(f"preset {preset.name!r}: {cfg_path} is not valid JSON: {err}") from err
    wrong = [
        f"{k}={cfg.get(k)!r} (expected {v!r})"
        for k, v in preset.config.items()
        if isinstance(cfg, dict) and k in cfg and cfg[k] != v
    ]
    if wrong:
        raise EncoderError(
            f"preset {preset.name!r}: {cfg_path} describes a different model: {'; '.join(wrong)}. "
            f"Point --weights at the {preset.repository} snapshot, or write your own model card"
        )


def preset_card(
    name: str,
    weights: str | os.PathLike[str] | None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full model card of preset ``name`` with its weights at ``weights``.

    Parameters
    ----------
    name : str
        A preset (:func:`list_presets`).
    weights : path or None
        Snapshot folder (searched for the preset's files in order) or the weight file
        (``.safetensors``, or ``.bin``/``.pth``/``.pt`` state dict). Relative paths resolve
        against ``base_dir`` (default: the working directory).
    base_dir : path, optional
    overrides : dict, optional
        Keys of a card naming the preset (:data:`PRESET_CARD_KEYS`), e.g. ``sha256``, ``head``.

    Returns
    -------
    dict
        A card that validates against ``model_card.schema.json``; ``preset`` records the name and
        ``weights`` the file chosen.

    Raises
    ------
    EncoderError
        Unknown preset; weights missing (the message says where to get them and which file to point
        at); a folder without the preset's files; a ``config.json`` describing another model.
    """
    preset = get_preset(name)
    if weights is None or str(weights) == "":
        raise EncoderError(f"preset {preset.name!r} needs local weights; {preset.download_hint}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    given = Path(weights)
    path = given if given.is_absolute() else base / given
    wfile = _weight_file(preset, path)
    _check_config(preset, wfile.parent)
    card = copy.deepcopy(preset.card)
    extra = dict(overrides or {})
    extra.pop("weights", None)
    extra.pop("preset", None)
    card.update(copy.deepcopy(extra))
    card["preset"] = preset.name
    card["format"] = _SUFFIX_FORMAT[wfile.suffix.lower()]
    card["weights"] = str(wfile if given.is_absolute() else wfile.relative_to(base))
    return card
