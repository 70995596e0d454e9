"""The allocator lever: glibc keeps freed buffers; elsewhere it reports that it did nothing."""

from __future__ import annotations

import platform
import sys

import pytest

from s6lab import allocator


def test_glibc_accepts_the_thresholds():
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc only")
    assert allocator.retain_freed_memory() is True


def test_other_platforms_are_a_no_op(monkeypatch):
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.retain_freed_memory() is False
    assert allocator.retain_freed_memory() is False  # remembered, not retried


def test_missing_mallopt_is_a_no_op(monkeypatch):
    class NoMallopt:
        def __init__(self, name):
            pass

    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.ctypes, "CDLL", NoMallopt)
    assert allocator.retain_freed_memory() is False
