"""matcher: a hash-only known-file matcher for digital-forensic examiners."""

import signal as _signal

__version__ = "0.1.0"
TOOL_NAME = "matcher"
# The seed of `matcher validate`: the same seed makes the same corpus.
VALIDATION_SEED = 20261128

# The signals this process was started ignoring (SIGHUP under nohup, SIGINT
# in a script's background job), read once as the package loads, before any
# command sets its own: a scan leaves them ignored (scan._install_signal_handlers).
# Read later, a SIG_IGN that matcher itself set (a command winding down, in a
# process that runs several) would pass for the caller's.
IGNORED_AT_START = frozenset(
    sig for sig in (_signal.SIGINT, _signal.SIGHUP) if _signal.getsignal(sig) == _signal.SIG_IGN
)

__all__ = ["IGNORED_AT_START", "TOOL_NAME", "VALIDATION_SEED", "__version__"]
