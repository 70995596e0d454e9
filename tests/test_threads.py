"""Threads and OpenMP's wait policy, chosen before torch loads (s6lab.threads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from s6lab import threads
from s6lab.threads import available_cores, configure_threads, configure_threads_at_import, environment_error

WAIT_POLICY_FIX = "give PASSIVE (waiting threads sleep: s6lab's choice) or ACTIVE (they spin), or unset it for PASSIVE"


@pytest.fixture
def two_cores(monkeypatch):
    """A process that may use 2 physical cores (and 2 logical CPUs), whatever this machine has."""
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)


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
    env = {"S6LAB_THREADS": str(available_cores()), "OMP_NUM_THREADS": "1"}  # s6lab's own override wins
    assert configure_threads(env).threads == available_cores() and env["OMP_NUM_THREADS"] == str(available_cores())


@pytest.mark.parametrize("env, threads, policy", [
    ({"S6LAB_THREADS": " AUTO ", "OMP_NUM_THREADS": " 2 "}, 2, "PASSIVE"),
    ({"S6LAB_THREADS": "1", "OMP_WAIT_POLICY": " passive "}, 1, "PASSIVE"),
    ({"OMP_NUM_THREADS": "02", "OMP_WAIT_POLICY": "Active"}, 2, "ACTIVE"),
])
def test_good_settings_in_any_case_and_spacing_are_read(two_cores, env, threads, policy):
    choice = configure_threads(env)
    assert (choice.threads, choice.wait_policy) == (threads, policy)
    assert env["OMP_NUM_THREADS"] == str(threads) and env["OMP_WAIT_POLICY"] == policy


@pytest.mark.parametrize("bad", ["0", "two", "-1", "1.5", "", "00", "\u0663"])  # the last: an Arabic-Indic 3
def test_a_bad_thread_count_is_named(bad):
    with pytest.raises(ValueError, match=f"^S6LAB_THREADS='{bad}': give a positive number of threads, or auto$"):
        configure_threads({"S6LAB_THREADS": bad})


@pytest.mark.parametrize("bad", ["0", "abc", "", "4,2", "-1"])
def test_a_bad_openmp_thread_count_is_named_not_replaced(bad):
    """OMP_NUM_THREADS=0 or abc was replaced by the cores available and labelled as yours."""
    with pytest.raises(ValueError, match=f"^OMP_NUM_THREADS='{bad}': give a positive number of threads, or unset it "
                                         "for the cores available$"):
        configure_threads({"OMP_NUM_THREADS": bad})


@pytest.mark.parametrize("name, unset", [("S6LAB_THREADS", "or auto"),
                                         ("OMP_NUM_THREADS", "or unset it for the cores available")])
@pytest.mark.parametrize("many", ["3", "100000", "9" * 5000])
def test_more_threads_than_cores_are_refused_naming_the_cores(two_cores, name, unset, many):
    """More threads than cores only wait for one (and torch kept 2 while the start line said 100000)."""
    with pytest.raises(ValueError) as refused:
        configure_threads({name: many})
    what = "2 logical CPUs (its CPU affinity)" if name == "OMP_NUM_THREADS" else \
        "2 physical cores (its CPU affinity, hyperthreads counted once)"
    assert str(refused.value) == (f"{name}={many!r}: this process may use {what}, and more threads only wait for "
                                  f"one: give 1 to 2, {unset}")


def test_one_core_is_said_in_the_singular(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    with pytest.raises(ValueError, match=r"may use 1 physical core \(.*: give 1, or auto$"):
        configure_threads({"S6LAB_THREADS": "2"})


@pytest.mark.parametrize("bad", ["bogus", "", "spin", "PASSIVE,ACTIVE"])
def test_a_bad_wait_policy_is_named(bad):
    with pytest.raises(ValueError) as refused:
        configure_threads({"OMP_WAIT_POLICY": bad})
    assert str(refused.value) == f"OMP_WAIT_POLICY={bad!r}: {WAIT_POLICY_FIX}"


def test_at_import_each_bad_setting_is_removed_before_torch_and_all_are_reported_in_one_line(monkeypatch):
    """Only the bad variables go (OpenMP then does not read them and warn on its own); a good one stays."""
    monkeypatch.setattr(threads, "_CHOICE", None)
    monkeypatch.setattr(threads, "_BAD_ENVIRONMENT", ())
    for name in ("S6LAB_THREADS", "S6LAB_FOLLOW_LOAD", "S6LAB_NATIVE_BF16"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "bogus")
    monkeypatch.setenv("S6LAB_THREADS", "two")
    configure_threads_at_import()
    assert "OMP_WAIT_POLICY" not in os.environ and "S6LAB_THREADS" not in os.environ
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert environment_error() == ("S6LAB_THREADS='two': give a positive number of threads, or auto; "
                                   f"OMP_WAIT_POLICY='bogus': {WAIT_POLICY_FIX} (in the environment)")


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


def test_omp_num_threads_may_count_hyperthreads_and_yields_to_s6lab_threads(monkeypatch):
    """OMP_NUM_THREADS is set by other tools too, often to the logical CPUs: up to them it is accepted; and with
    S6LAB_THREADS given, s6lab replaces it, so it is not checked at all (a 64 left by a cluster job is fine)."""
    import s6lab.threads as threads

    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)  # one core, two hyperthreads
    assert threads.setting_problems({"OMP_NUM_THREADS": "2"}) == {}
    assert "may use 2 logical CPUs" in threads.setting_problems({"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"]
    assert "may use 1 physical core " in threads.setting_problems({"S6LAB_THREADS": "2"})["S6LAB_THREADS"]
    assert threads.setting_problems({"S6LAB_THREADS": "1", "OMP_NUM_THREADS": "64"}) == {}
    assert "OMP_NUM_THREADS" in threads.setting_problems({"S6LAB_THREADS": "auto", "OMP_NUM_THREADS": "64"})
