"""Atomic writes: an error names the file the caller asked for, never the temporary one beside it."""

from __future__ import annotations

import errno

import pytest

from s6lab._io import atomic_write, atomic_write_text


def test_a_file_in_the_way_of_a_folder_names_the_path_asked_for(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError) as e:
        atomic_write_text(tmp_path / "f" / "sub" / "r.md", "hi")
    assert e.value.errno == errno.ENOTDIR and e.value.filename == str(tmp_path / "f" / "sub" / "r.md")
    assert e.value.strerror == f"{tmp_path / 'f'} is a file, not a folder"


def test_a_folder_where_the_file_goes_is_named_and_no_part_file_is_left(tmp_path):
    (tmp_path / "r.md").mkdir()
    with pytest.raises(IsADirectoryError) as e:
        atomic_write_text(tmp_path / "r.md", "hi")
    assert e.value.filename == str(tmp_path / "r.md") and ".part" not in str(e.value)
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_an_error_of_the_writer_without_an_errno_keeps_its_own_message(tmp_path):
    def write(f):
        raise OSError("cannot write mode RGBA as JPEG")  # what PIL raises

    with pytest.raises(OSError, match="^cannot write mode RGBA as JPEG$"):
        atomic_write(tmp_path / "x.jpg", write)
    assert list(tmp_path.iterdir()) == []


def test_a_name_too_long_is_named_with_its_fix(tmp_path):
    from s6lab.errors import one_line

    with pytest.raises(OSError) as e:
        atomic_write_text(tmp_path / ("a" * 300 + ".png"), "hi")
    assert e.value.errno == errno.ENAMETOOLONG
    assert one_line(e.value).endswith("shorten the name (at most 255 characters for each folder or file name)")
