"""quantgate: a declarative GitOps compiler for model quantization. Never imports torch."""

__version__ = "0.1.0"
