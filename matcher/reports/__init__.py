"""Report and inventory writers, one module per format, registered on import.

Report writers take a `model.ReportData` (built from a verified log by the
job `matcher.reporting`); inventory writers take `model.FileEntry` items one
by one (from the job `matcher.hashjob`). Writers never read logs, stores or
evidence, and never see content: only names, sizes, times and digests.

Adding a format:
  1. write `matcher/reports/<name>.py` with one writer class registered on its
     last line (`registry.register(...)` or `registry.register_inventory(...)`);
  2. import the module below;
  3. add a test that checks the output with the format's own validator;
  4. document it in the README (`matcher report` / `matcher hash`).
"""

from matcher.reports import case_uco  # noqa: F401
from matcher.reports import csv_report  # noqa: F401
from matcher.reports import dfxml  # noqa: F401
from matcher.reports import gnu_sum  # noqa: F401
from matcher.reports import hashdeep  # noqa: F401
from matcher.reports import html_report  # noqa: F401
from matcher.reports import json_report  # noqa: F401
from matcher.reports import registry

__all__ = ["registry"]
