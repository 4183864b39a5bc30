"""vlmbrain: which artificial neurons of a vision-language model behave like which brain networks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
