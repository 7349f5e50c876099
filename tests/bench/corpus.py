"""Seeded, benign synthetic corpora and hash lists for the speed benchmark.

Every byte comes from `random.Random(seed)`: no real file, no real hash list.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path

MIB = 1 << 20
KIB = 1 << 10
# Decoy sizes lie far above any corpus file, so that they never make a corpus
# file a size candidate: only the real entries do.
DECOY_MIN_SIZE = 1 << 34


def make_large(root: Path, count: int, size: int, seed: int) -> list[Path]:
    """`count` files of `size` random bytes each."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"large-{i:03d}.bin"
        with path.open("wb") as f:
            left = size
            while left:
                n = min(left, 16 * MIB)
                f.write(rng.randbytes(n))
                left -= n
        paths.append(path)
    return paths


def make_small(root: Path, count: int, max_size: int, seed: int) -> list[Path]:
    """`count` files of 1..max_size bytes, 200 to a folder, all distinct.

    Sizes are log-uniform (as many files of 1-2 KiB as of 128-256 KiB), which
    gives a mean of about 21 KB at 256 KiB: the issue's anchors (474 MB/s at
    23,000 files/s) imply the same mean.

    Content is cut at random offsets from one seeded pool, with the file's
    index stamped in its first bytes so no two non-empty files are equal.
    """
    rng = random.Random(seed)
    pool = rng.randbytes(64 * MIB + max_size)
    paths = []
    for i in range(count):
        folder = root / f"d{i // 200:04d}"
        if i % 200 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        # Note: never empty, since all empty files are equal.
        size = max(1, min(max_size, int(math.exp(rng.uniform(0.0, math.log(max_size))))))
        offset = rng.randrange(64 * MIB)
        data = bytearray(pool[offset : offset + size])
        stamp = i.to_bytes(8, "little")[: len(data)]
        data[: len(stamp)] = stamp
        path = folder / f"f{i:06d}.dat"
        path.write_bytes(data)
        paths.append(path)
    return paths


def make_tiny_tree(root: Path, count: int, per_folder: int = 1000) -> None:
    """`count` tiny files (1 byte), `per_folder` to a folder, for the memory-flatness walk."""
    for i in range(count):
        if i % per_folder == 0:
            folder = root / f"t{i // per_folder:05d}"
            folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{i % per_folder:07d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, bytes([i % 251]))
        os.close(fd)


def _triple(path: Path) -> tuple[int, str, str, str]:
    hashes = [hashlib.md5(), hashlib.sha1(), hashlib.sha256()]
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            size += len(chunk)
            for h in hashes:
                h.update(chunk)
    return size, hashes[0].hexdigest(), hashes[1].hexdigest(), hashes[2].hexdigest()


def write_hashdeep_list(out: Path, real: list[Path], decoys: int, seed: int) -> None:
    """A hashdeep 1.0 list: `decoys` random entries plus the true digests of `real`.

    The same file serves matcher (imported as a notable list) and hashdeep's
    matching mode (`-k`). Every entry has a size.
    """
    rng = random.Random(seed)
    with out.open("w", encoding="ascii") as f:
        f.write("%%%% HASHDEEP-1.0\n%%%% size,md5,sha1,sha256,filename\n")
        f.write("## synthetic benchmark list: random decoys and seeded corpus files\n##\n")
        for i in range(decoys):
            size = rng.randrange(DECOY_MIN_SIZE, DECOY_MIN_SIZE << 4)
            f.write(
                f"{size},{rng.randbytes(16).hex()},{rng.randbytes(20).hex()},"
                f"{rng.randbytes(32).hex()},/decoy/{i:08d}\n"
            )
        for path in real:
            size, md5, sha1, sha256 = _triple(path)
            f.write(f"{size},{md5},{sha1},{sha256},/real/{path.name}\n")
