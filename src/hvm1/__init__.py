"""hvm1: the HVM-1 video models (spatiotemporal MAE and ViT-H/14), as a library and a command-line tool."""

__version__ = "0.1.0"
