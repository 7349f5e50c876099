"""Hash-list readers, one module per format, registered on import.

Adding a format:
  1. write `matcher/formats/<name>.py`: one reader class (`<Format>Reader`)
     implementing `base.HashListReader`, registered on its last line with
     `registry.register(<Format>Reader())`;
  2. import the module below;
  3. add a fixture list to `fixtures/make_fixtures.py` and regenerate;
  4. add `tests/formats/test_<name>.py`: known answers, a malformed-line test,
     and a Hypothesis property that arbitrary bytes raise only FormatError.
The CLI (`--format` choices) and auto-detection pick the reader up by itself.
Sniffers must be mutually exclusive: `tests/formats/test_samples_detection.py`
checks that every shared sample is recognised by exactly one reader, or
refused with the expected message.

A file that looks like a list but must not be imported (a derived index, a
set description) gets a refusal instead: a class with NAME, DESCRIPTION and
`refuse(head, path) -> reason | None`, registered with
`registry.register_refusal()`; detection asks refusals when no reader accepts.
"""

from matcher.formats import bsd_tag  # noqa: F401
from matcher.formats import clamav  # noqa: F401
from matcher.formats import compressed  # noqa: F401
from matcher.formats import csv_list  # noqa: F401
from matcher.formats import encase  # noqa: F401
from matcher.formats import gnu_sum  # noqa: F401
from matcher.formats import hashdeep  # noqa: F401
from matcher.formats import hashkeeper  # noqa: F401
from matcher.formats import ilook  # noqa: F401
from matcher.formats import line_ends  # noqa: F401
from matcher.formats import nsrl_rds2  # noqa: F401
from matcher.formats import nsrl_rds3  # noqa: F401
from matcher.formats import plain  # noqa: F401
from matcher.formats import projectvic_json  # noqa: F401
from matcher.formats import registry
from matcher.formats import tsk_idx  # noqa: F401
from matcher.formats import tsk_kdb  # noqa: F401
from matcher.formats import utf16  # noqa: F401
from matcher.formats import xways  # noqa: F401

__all__ = ["registry"]
