"""matcher: a hash-only known-file matcher for digital-forensic examiners."""

__version__ = "0.1.0"
TOOL_NAME = "matcher"

__all__ = ["TOOL_NAME", "__version__"]
