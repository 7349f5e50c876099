"""Archive bomb limits: a plain record, so that the archive readers load only when used."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    """Bomb limits (README, "Disk images and archives"); all are recorded in the run record."""

    max_depth: int = 8
    max_members: int = 100_000
    max_total_bytes: int = 64 << 30
    max_ratio: int = 200
    ratio_floor: int = 1 << 20

    def as_log_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)
