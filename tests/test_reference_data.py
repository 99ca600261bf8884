"""The test data: inside the repository, small, every file the README lists present, and missing data a failure
under CI (never a skip there)."""

from __future__ import annotations

import re

import pytest

import reference_data
from reference_data import FIXTURES, fixture

MAX_BYTES = 25 * 10**6  # the fixtures are cloned with every checkout: keep them small


def listed_files() -> list[str]:
    """The files tests/fixtures/README.md gives a row (relative paths, as its tables and headings name them)."""
    text = (FIXTURES / "README.md").read_text()
    files = []
    for heading, body in re.findall(r"^## `([^`]+)/`[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M):
        for row in re.findall(r"^\| (`[^|]+`) \|", body, flags=re.M):
            files += [f"{heading}/{name}" for name in re.findall(r"`([^`]+)`", row)]
    return files


def test_every_file_the_readme_lists_is_there_and_nothing_else():
    listed = set(listed_files())
    assert len(listed) == 17, sorted(listed)
    present = {str(path.relative_to(FIXTURES)) for path in FIXTURES.rglob("*") if path.is_file()}
    assert present - {"README.md", "derive.py"} == listed


def test_the_fixtures_stay_small():
    total = sum(path.stat().st_size for path in FIXTURES.rglob("*") if path.is_file())
    assert total <= MAX_BYTES, f"tests/fixtures holds {total / 1e6:.1f} MB, more than {MAX_BYTES / 1e6:.0f} MB"


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_missing_data_fails_under_ci(monkeypatch, tmp_path, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="under CI this fails instead of skipping"):
        fixture(tmp_path / "absent.mp4")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_data_skips_with_the_reason_elsewhere(monkeypatch, tmp_path, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"absent\.mp4 not found \(tests/fixtures/"):
        fixture(tmp_path / "absent.mp4")


def test_data_present_is_returned_as_is():
    assert fixture(reference_data.VIDEOS / "box.mp4") == FIXTURES / "videos" / "box.mp4"
    assert reference_data.reference_dir("tiny_b") == FIXTURES / "reference" / "tiny_b"
