"""Image read throughput: pytsk3 from a raw image vs a plain file; compressed E01 vs ewfexport.

Run: python tests/bench/bench_images.py [--mib 200] [--runs 3]

1. A file of seeded random bytes is put into an ext4 image (mke2fs -d, no
   mounting). The same algorithms (md5, sha1, sha256 by default) hash it once
   as a plain file (matcher's Hasher, the scan's own path) and once through
   pytsk3 from the raw image (the scan's image reader). Target: >= 80 %.
2. The same ext4 image, holding compressible data this time, is acquired as
   an E01 with deflate (ewfacquire -c deflate:fast). Reading the whole media
   with libewf-python (the `images` extra) is timed against Debian's
   `ewfexport` writing it to /dev/null; hashing the file inside the E01
   through TSK + libewf-python is reported too.
Page cache warm; the median of `--runs` runs. Benign synthetic data only.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from matcher.evidence.folder import open_readonly  # noqa: E402
from matcher.evidence.image import ImageWalker  # noqa: E402
from matcher.evidence.image import OpenedImage  # noqa: E402
from matcher.evidence.sources import close_readers  # noqa: E402
from matcher.evidence.sources import read_chunks  # noqa: E402
from matcher.hashing import Hasher  # noqa: E402
from matcher.models import FileTask  # noqa: E402

MiB = 1 << 20
PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def _tool(name: str) -> str:
    found = shutil.which(name, path=PATH)
    if found is None:
        sys.exit(f"{name} is needed (apt-get install e2fsprogs ewf-tools)")
    return found


def _median(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm the page cache and the caches of the readers
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _write(path: Path, mib: int, compressible: bool) -> None:
    rng = random.Random(20261129)
    # Note: 4 bits of entropy a byte (16 symbols) deflates to a little over half.
    sixteen = bytes(b"abcdefghijklmnop"[i % 16] for i in range(256))
    with path.open("wb") as out:
        for _ in range(mib):
            chunk = rng.randbytes(MiB)
            out.write(chunk.translate(sixteen) if compressible else chunk)


def _image(work: Path, name: str, mib: int, compressible: bool) -> tuple[Path, Path]:
    src = work / f"src-{name}"
    src.mkdir()
    _write(src / "big.bin", mib, compressible)
    image = work / f"{name}.raw"
    size = f"{mib + mib // 4 + 32}M"
    subprocess.run(
        [_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-d", str(src), str(image), size], check=True
    )
    return src / "big.bin", image


def _image_task(image: OpenedImage) -> FileTask:
    for item in ImageWalker().walk(image):
        if isinstance(item, FileTask) and item.path.endswith(b"/big.bin"):
            return item
    raise SystemExit("big.bin not found in the image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--algorithms", default="md5,sha1,sha256")
    args = parser.parse_args()
    algorithms = args.algorithms.split(",")
    mb = args.mib * MiB / 1e6
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        work = Path(tmp)
        plain, raw = _image(work, "random", args.mib, compressible=False)
        hasher = Hasher(algorithms, open_readonly, chunk_reader=read_chunks)
        st = plain.stat()
        plain_task = FileTask(os.fsencode(plain), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
        opened = OpenedImage(os.fsencode(raw), "raw")
        image_task = _image_task(opened)

        def hash_plain() -> None:
            assert hasher.run(plain_task).digests

        def hash_image() -> None:
            assert hasher.run(image_task).digests

        t_plain = _median(hash_plain, args.runs)
        t_image = _median(hash_image, args.runs)
        same = hasher.run(plain_task).digests == hasher.run(image_task).digests
        print(f"random data, {args.mib} MiB, {'+'.join(algorithms)}, median of {args.runs}:")
        print(f"  plain file            {mb / t_plain:8.1f} MB/s")
        print(
            f"  pytsk3 from raw image {mb / t_image:8.1f} MB/s  "
            f"ratio {t_plain / t_image:.1%} (target >= 80%), same digests: {same}"
        )
        opened.close()
        close_readers()

        _, raw2 = _image(work, "text", args.mib, compressible=True)
        target = work / "text"
        subprocess.run(
            [
                _tool("ewfacquire"),
                "-u",
                "-q",
                "-t",
                str(target),
                "-f",
                "encase6",
                "-c",
                "deflate:fast",
                "-d",
                "sha1",
                str(raw2),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        e01 = target.with_suffix(".E01")
        media = raw2.stat().st_size / 1e6
        ewfexport = _tool("ewfexport")

        def export() -> None:
            subprocess.run(
                [ewfexport, "-u", "-q", "-f", "raw", "-t", "-", str(e01)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        ewf = OpenedImage(os.fsencode(e01), "e01")

        def pyewf_media() -> None:
            offset = 0
            while offset < ewf.media.size:
                offset += len(ewf.media.read(offset, min(MiB, ewf.media.size - offset)))

        e01_task = _image_task(ewf)

        def hash_e01() -> None:
            assert hasher.run(e01_task).digests

        t_export = _median(export, args.runs)
        t_pyewf = _median(pyewf_media, args.runs)
        t_e01 = _median(hash_e01, args.runs)
        print(
            f"compressible data, E01 deflate:fast ({e01.stat().st_size / 1e6:.0f} MB for "
            f"{media:.0f} MB of media):"
        )
        print(f"  ewfexport to /dev/null (system zlib)  {media / t_export:8.1f} MB/s")
        print(
            f"  libewf-python, whole media read       {media / t_pyewf:8.1f} MB/s  "
            f"ratio {t_export / t_pyewf:.1%} of ewfexport"
        )
        print(
            f"  matcher: big.bin via TSK + libewf, {'+'.join(algorithms)}  {mb / t_e01:8.1f} MB/s"
        )
        ewf.close()
        close_readers()


if __name__ == "__main__":
    main()
