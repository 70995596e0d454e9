"""Threads and OpenMP's wait policy, chosen before torch loads (s6lab.threads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from s6lab.threads import available_cores, configure_threads


def test_s6lab_chooses_passive_waits_and_the_cores_available():
    env: dict[str, str] = {}
    choice = configure_threads(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(available_cores())}
    assert (choice.wait_policy, choice.threads_by, choice.wait_policy_by) == ("PASSIVE", "s6lab", "s6lab")
    assert "OpenMP waits PASSIVE (s6lab)" in choice.describe()


def test_what_you_set_wins():
    env = {"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "1"}
    choice = configure_threads(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["OMP_NUM_THREADS"] == "1"
    assert (choice.threads, choice.threads_by, choice.wait_policy_by) == (1, "you", "you")
    env = {"S6LAB_THREADS": "3"}
    assert configure_threads(env).threads == 3 and env["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize("bad", ["0", "two", "-1", "1.5"])
def test_a_bad_thread_count_is_named(bad):
    with pytest.raises(ValueError, match=f"S6LAB_THREADS='{bad}': give a positive number of threads, or auto"):
        configure_threads({"S6LAB_THREADS": bad})


def test_available_cores_counts_the_affinity_mask():
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "S6LAB_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_import_s6lab_before_torch_sets_openmp_up():
    out = _python("import os, s6lab, torch; print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads())")
    assert out == f"PASSIVE {available_cores()}"


def test_torch_first_leaves_the_environment_alone_and_says_so():
    out = _python("import os, torch, s6lab\nfrom s6lab.threads import thread_choice\n"
                  "print(os.environ.get('OMP_WAIT_POLICY'), '|', thread_choice().describe())")
    policy, described = out.split(" | ")
    assert policy == "None" and "as torch started it (import s6lab before torch to choose)" in described


def test_the_training_line_says_what_was_chosen():
    import torch

    from s6lab.hardware import resolve_precision, training_line

    line = training_line(torch.device("cpu"), resolve_precision("fp32", torch.device("cpu")))
    assert "OpenMP waits" in line and "thread" in line
