"""A class-sized study: the 13 layer-choice and compact variants x ten seeds, in parallel.

What to look at: each variant's mean accuracy beside its spread (mean ± sd over ten seeds)
and the "assignment" column (how many of the ten seeds pass every rule). With ten seeds, a
difference smaller than the spread is not a finding. --jobs auto trains one run per
physical core, one thread each; finished runs are reused, so an interrupted study resumes
where it stopped (run the same command again). 130 default runs take hours on a laptop
(`s6lab doctor` estimates one run) and minutes on a course server; for a Ray cluster see
docs/tutorials/class-sized-study.md. --quick runs one seed of each, one epoch.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

STUDY = ["s6", "s6-no-bn", "s6-no-dropout", "s6-dropout-0.25", "s6-dropout-every-conv", "s6-no-1x1", "s6-two-3x3",
         "s6-gap", "s6-pool-after-1x1", "s6-no-augment", "s6-step-lr", "s6-8k", "s6-5k"]

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        compare_and_show(STUDY, parse(__doc__, epochs=18, seeds=tuple(range(10))), "12_class_study")
