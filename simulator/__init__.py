"""planfix-simulator: a local stand-in for Planfix's chat API and the third-party chat."""

__version__ = "0.1.0"
