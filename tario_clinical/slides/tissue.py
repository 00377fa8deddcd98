"""Tissue detection on a slide thumbnail.

Saturation Otsu threshold with a floor (so a blank slide yields no tissue rather than noise),
pen-mark rejection by hue (blue/green ink) and darkness (black ink), then morphological clean-up:
closing, filling holes smaller than ``max_hole_um2`` and removing islands smaller than
``min_object_um2``.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SlideError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ._readers import Slide

__all__ = ["TissueMask", "tissue_mask", "detect_tissue"]


@dataclass(frozen=True)
class TissueMask:
    """Boolean tissue mask of a slide at thumbnail resolution.

    Attributes
    ----------
    mask : numpy.ndarray
        ``H x W`` bool, True where tissue.
    downsample : tuple of float
        Level-0 pixels per mask pixel along x and y.
    mpp : float
        µm per mask pixel (along x).
    threshold : float
        Saturation threshold used (Otsu, floored at ``min_saturation``).
    tissue_fraction : float
        Fraction of mask pixels that are tissue.
    pen_fraction : float
        Fraction of pixels rejected as pen marks.
    thumbnail : numpy.ndarray or None
        RGB thumbnail the mask was computed from, when available.
    """

    mask: np.ndarray
    downsample: tuple[float, float]
    mpp: float
    threshold: float
    tissue_fraction: float
    pen_fraction: float
    thumbnail: np.ndarray | None = field(default=None, repr=False, compare=False)

    def plot_mask(self, *, ax: Axes | None = None) -> Axes:
        """Show the thumbnail with the tissue outline; returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 5))
        if self.thumbnail is not None:
            ax.imshow(self.thumbnail)
            ax.contour(self.mask.astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        else:
            ax.imshow(self.mask, cmap="gray")
        ax.set_title(f"tissue {self.tissue_fraction:.1%}")
        ax.set_axis_off()
        return ax

    def _repr_html_(self) -> str:
        h, w = self.mask.shape
        return (
            "<table><tr><th>mask</th><td>"
            + html.escape(f"{w}x{h} px at {self.mpp:.3g} µm/px")
            + f"</td></tr><tr><th>tissue</th><td>{self.tissue_fraction:.1%}</td></tr>"
            + f"<tr><th>threshold</th><td>{self.threshold:.3f}</td></tr>"
            + f"<tr><th>pen</th><td>{self.pen_fraction:.1%}</td></tr></table>"
        )


def tissue_mask(
    rgb: np.ndarray,
    *,
    mpp: float,
    min_saturation: float = 0.07,
    min_object_um2: float = 20_000.0,
    max_hole_um2: float = 5_000.0,
    reject_pen: bool = True,
) -> tuple[np.ndarray, float, float]:
    """Compute a tissue mask from an RGB thumbnail.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``H x W x 3`` uint8 thumbnail.
    mpp : float
        µm per thumbnail pixel (sets the clean-up sizes).
    min_saturation : float
        Floor of the saturation threshold (0-1); pixels below it are never tissue.
    min_object_um2 : float
        Tissue islands smaller than this area (µm²) are removed.
    max_hole_um2 : float
        Holes smaller than this area (µm²) inside tissue are filled.
    reject_pen : bool
        Remove blue/green and black ink.

    Returns
    -------
    mask : numpy.ndarray
        Bool ``H x W``.
    threshold : float
        Saturation threshold used.
    pen_fraction : float
        Fraction of pixels flagged as pen.
    """
    ndimage, color, filters, morphology = _image_modules()
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise SlideError(f"thumbnail must be H x W x 3 RGB; got shape {rgb.shape}")
    hsv = color.rgb2hsv(rgb)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    if reject_pen:
        # H&E is pink (hue ~0.85-1.0, 0-0.05) to purple (~0.7-0.85); ink is blue/green or black
        coloured_ink = (hue > 0.20) & (hue < 0.66) & (sat > 0.20)
        black_ink = val < 0.16
        pen = coloured_ink | black_ink
        pen = ndimage.binary_dilation(pen, iterations=1)
    else:
        pen = np.zeros(sat.shape, dtype=bool)
    candidates = sat[~pen]
    threshold = float(min_saturation)
    if candidates.size and float(candidates.max() - candidates.min()) > 1e-6:
        try:
            threshold = max(float(filters.threshold_otsu(candidates)), float(min_saturation))
        except ValueError:
            threshold = float(min_saturation)
    mask = (sat > threshold) & ~pen
    px_area = mpp * mpp
    radius = max(1, int(round(8.0 / mpp))) if mpp < 8 else 1
    mask = ndimage.binary_closing(mask, structure=morphology.disk(radius), iterations=1)
    mask = ndimage.binary_opening(mask, structure=morphology.disk(1))
    max_hole_px = max(1, int(max_hole_um2 / px_area))
    min_obj_px = max(1, int(min_object_um2 / px_area))
    mask = morphology.remove_small_holes(mask, max_size=max_hole_px)
    mask = morphology.remove_small_objects(mask, max_size=min_obj_px)
    return mask.astype(bool), threshold, float(pen.mean())


_IMPORT_LOCK = threading.Lock()


def _image_modules() -> tuple[Any, Any, Any, Any]:
    """scipy.ndimage and the scikit-image modules, imported under a lock.

    scikit-image attaches its submodules and functions lazily; two threads touching them for
    the first time at once can see a partly initialised module (``AttributeError: partially
    initialized module 'skimage.morphology'``, seen when slides were prepared in threads).
    """
    with _IMPORT_LOCK:
        from scipy import ndimage
        from skimage import color, filters, morphology

        for mod, names in (
            (color, ("rgb2hsv",)),
            (filters, ("threshold_otsu",)),
            (morphology, ("disk", "remove_small_holes", "remove_small_objects")),
        ):
            for name in names:
                getattr(mod, name)
    return ndimage, color, filters, morphology


def detect_tissue(
    slide: Slide,
    *,
    thumbnail_mpp: float = 8.0,
    max_thumbnail_px: int = 4096,
    min_saturation: float = 0.07,
    min_object_um2: float = 20_000.0,
    max_hole_um2: float = 5_000.0,
    reject_pen: bool = True,
) -> TissueMask:
    """Detect tissue on a thumbnail of ``slide``.

    Parameters
    ----------
    slide : Slide
        Open slide.
    thumbnail_mpp : float
        Target µm/px of the thumbnail (coarser if the slide is larger than ``max_thumbnail_px``).
    max_thumbnail_px : int
        Largest thumbnail side in pixels.
    min_saturation, min_object_um2, max_hole_um2, reject_pen
        See :func:`tissue_mask`.

    Returns
    -------
    TissueMask

    Raises
    ------
    SlideError
        If the thumbnail cannot be read.
    """
    W, H = slide.dimensions
    scale = min(slide.mpp / thumbnail_mpp, max_thumbnail_px / max(W, H), 1.0)
    thumb = slide.get_thumbnail((max(1, round(W * scale)), max(1, round(H * scale))))
    th, tw = thumb.shape[:2]
    ds = (W / tw, H / th)
    mpp = slide.mpp * ds[0]
    mask, thr, pen = tissue_mask(
        thumb,
        mpp=mpp,
        min_saturation=min_saturation,
        min_object_um2=min_object_um2,
        max_hole_um2=max_hole_um2,
        reject_pen=reject_pen,
    )
    return TissueMask(
        mask=mask,
        downsample=ds,
        mpp=mpp,
        threshold=thr,
        tissue_fraction=float(mask.mean()),
        pen_fraction=pen,
        thumbnail=thumb,
    )
