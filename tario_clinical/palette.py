"""Colours shared by the figures of every module (leaf module: imports nothing).

The Okabe & Ito (2008) colour-blind-safe palette. Lines and markers on white use
:data:`OKABE_ITO`, which leaves out the yellow (too light on white); :data:`OKABE_ITO_ALL` holds
all eight colours, black last (it is the text colour too).
"""

from __future__ import annotations

__all__ = ["OKABE_ITO", "OKABE_ITO_ALL"]

#: all eight Okabe–Ito colours: blue, vermillion, bluish green, orange, reddish purple, sky blue,
#: yellow, black
OKABE_ITO_ALL: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#E69F00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
#: the palette for lines and markers on white: :data:`OKABE_ITO_ALL` without the yellow
OKABE_ITO: tuple[str, ...] = tuple(c for c in OKABE_ITO_ALL if c != "#F0E442")
