"""The package version, in a leaf module so that modules needing it (provenance) never import
the package root."""

__version__ = "0.1.0"
