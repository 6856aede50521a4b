"""adainf-pipeline: contrastive learning with generated data (AdaInf, ICLR 2024)."""

__version__ = "0.1.0"
