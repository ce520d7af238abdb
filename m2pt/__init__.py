"""m2pt: Multimodal Pathway (CVPR 2024) as a library."""

__version__ = "0.1.0"
