"""The on/off switches read from the environment: yes and no in the spellings people type, anything else refused."""

from __future__ import annotations

import pytest

from s6lab.cli import main
from s6lab.env_flags import FLAGS, flag, flag_problems
from s6lab.errors import ConfigError
from s6lab.recipe import quick_mode


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False),
                                       ("", False), ("no", False), ("False", False), ("off", False)])
def test_the_usual_spellings_of_yes_and_no(value, on):
    assert flag("S6LAB_OFFLINE", {"S6LAB_OFFLINE": value}) is on
    assert flag("S6LAB_OFFLINE", {}) is False


@pytest.mark.parametrize("name", ["S6LAB_QUICK", "S6LAB_OFFLINE"])
def test_any_other_value_is_refused_by_name_not_read_as_off(name, monkeypatch, capsys):
    monkeypatch.setenv(name, "maybe")
    with pytest.raises(ConfigError, match=f"{name}='maybe': give 1 .* or 0, or unset it"):
        flag(name)
    assert flag_problems() == [f"{name}='maybe': give 1 ({FLAGS[name]}) or 0, or unset it"]
    assert main(["models"]) == 2  # the command says so before it starts
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{name}='maybe'" in err and "(in the environment)" in err


def test_quick_mode_reads_the_switch(monkeypatch):
    monkeypatch.setenv("S6LAB_QUICK", "yes")
    assert quick_mode()
    monkeypatch.setenv("S6LAB_QUICK", "0")
    assert not quick_mode()
