"""matcher: a hash-only known-file matcher for digital-forensic examiners."""

__version__ = "0.1.0"
TOOL_NAME = "matcher"
# The seed of `matcher validate`: the same seed makes the same corpus.
VALIDATION_SEED = 20261128

__all__ = ["TOOL_NAME", "VALIDATION_SEED", "__version__"]
