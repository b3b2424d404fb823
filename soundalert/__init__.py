"""soundalert: home sound awareness for deaf and hard-of-hearing people."""

__version__ = "0.1.0"
__all__ = ["__version__"]
