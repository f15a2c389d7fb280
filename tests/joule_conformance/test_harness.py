"""Light tests of the harness that fetches and rewrites Joule's pipe tests."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from . import _harness, helpers

SAMPLE = (
    "import asyncio\n"
    "from joule.models.pipes import LocalPipe\n"
    "from tests import helpers\n"
    "from joule.errors import EmptyPipeError\n"
    "\n"
    "class TestX(helpers.AsyncTestCase):\n"
    "    def test_y(self):\n"
    "        from icecream import ic\n"
    "        pass\n"
)
SAMPLE_EXPECTED = [
    "from joule.models.pipes import LocalPipe",
    "from tests import helpers",
    "from joule.errors import EmptyPipeError",
    "from icecream import ic",
]


def test_rewrite_points_imports_at_shmpipe() -> None:
    out = _harness.rewrite("sample.py", SAMPLE, SAMPLE_EXPECTED)
    assert out.splitlines() == [
        "import asyncio",
        "from shmpipe import LocalPipe",
        "from .. import helpers",
        "from shmpipe import EmptyPipeError",
        "",
        "class TestX(helpers.AsyncTestCase):",
        "    def test_y(self):",
        "        from ..helpers import ic",
        "        pass",
    ]


def test_rewrite_keeps_crlf_line_ends() -> None:
    text = "from tests import helpers\r\nx = 1\r\n"
    out = _harness.rewrite("s.py", text, ["from tests import helpers"])
    assert out == "from .. import helpers\r\nx = 1\r\n"


@pytest.mark.parametrize(
    "line",
    [
        "from joule.models.pipes import LocalPipe, Pipe",  # not the exact line in the table
        "import joule",
        "from joule.models.pipes.input_pipe import InputPipe",
        "    from tests.helpers import create_data",
        "import icecream",
    ],
)
def test_rewrite_rejects_unknown_imports(line: str) -> None:
    with pytest.raises(_harness.RewriteError, match="unexpected import"):
        _harness.rewrite("sample.py", SAMPLE + line + "\n", SAMPLE_EXPECTED)


def test_rewrite_requires_each_expected_line_once() -> None:
    missing = SAMPLE.replace("from joule.errors import EmptyPipeError\n", "")
    with pytest.raises(_harness.RewriteError, match=r"EmptyPipeError.*0 times"):
        _harness.rewrite("sample.py", missing, SAMPLE_EXPECTED)
    doubled = SAMPLE + "from tests import helpers\n"
    with pytest.raises(_harness.RewriteError, match="2 times"):
        _harness.rewrite("sample.py", doubled, SAMPLE_EXPECTED)


def test_rewrite_rejects_known_import_not_listed_for_file() -> None:
    with pytest.raises(_harness.RewriteError, match="not listed"):
        _harness.rewrite("sample.py", SAMPLE, SAMPLE_EXPECTED[:3])


def test_rewrite_rejects_other_joule_references() -> None:
    text = SAMPLE + "patch = 'joule.models.pipes.LocalPipe'\n"
    with pytest.raises(_harness.RewriteError, match="still mentions joule"):
        _harness.rewrite("sample.py", text, SAMPLE_EXPECTED)


def test_generate_requires_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(_harness.RewriteError, match="expected"):
        _harness.generate({"test_new.py": "x = 1\n"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_every_table_line_is_used_and_rewrites_to_shmpipe_or_local() -> None:
    for original, replacement in _harness.IMPORT_REWRITES.items():
        assert original.startswith(_harness.FOREIGN_IMPORT_PREFIXES)
        assert replacement.startswith(("from shmpipe import ", "from .", "from .. import "))
    for lines in _harness.EXPECTED_IMPORTS.values():
        assert set(lines) <= set(_harness.IMPORT_REWRITES)


def test_failed_download_is_a_fetch_error(tmp_path: Path) -> None:
    fail = [sys.executable, "-c", "import sys; sys.exit('ERROR: No matching distribution')"]
    with pytest.raises(_harness.FetchError, match="No matching distribution"):
        _harness.fetch_sdist(tmp_path, fail)
    assert [p.name for p in tmp_path.iterdir()] == []  # the download folder is removed


def test_download_with_wrong_checksum_is_a_harness_error(tmp_path: Path) -> None:
    write = [
        sys.executable, "-c",
        f"import sys, pathlib; (pathlib.Path(sys.argv[1]) / {_harness.SDIST_NAME!r})"
        ".write_bytes(b'not joule')",
    ]
    with pytest.raises(_harness.HarnessError, match="sha256"):
        _harness.fetch_sdist(tmp_path, write)
    assert not (tmp_path / _harness.SDIST_NAME).exists()


def test_cached_sdist_is_used_without_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = tmp_path / _harness.SDIST_NAME
    cached.write_bytes(b"pretend sdist")
    monkeypatch.setattr(_harness, "SDIST_SHA256", hashlib.sha256(b"pretend sdist").hexdigest())
    never = [sys.executable, "-c", "raise SystemExit('must not run')"]
    assert _harness.fetch_sdist(tmp_path, never) == cached


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(_harness.CACHE_ENV, str(tmp_path))
    assert _harness.cache_dir() == tmp_path
    monkeypatch.delenv(_harness.CACHE_ENV)
    assert _harness.cache_dir() == Path.home() / ".cache" / "shmpipe-tests"


def test_create_data_matches_joule_layouts() -> None:
    rows = helpers.create_data("int16_2", length=5, step=10, start=100)
    assert rows.dtype == [("timestamp", "<i8"), ("data", "<i2", (2,))]
    assert rows["timestamp"].tolist() == [100, 110, 120, 130, 140]
    assert ((rows["data"] >= -50) & (rows["data"] < 50)).all()
    assert helpers.create_data("uint8_1", length=3)["data"].min() >= 0
    floats = helpers.create_data("float32_3")
    assert len(floats) == 100 and floats.dtype["data"].base == "<f4"
    for bad in ["invalid", "bad_3", "float_abc", "int12_1", "int16_0"]:
        with pytest.raises(ValueError, match="layout"):
            helpers.layout_dtype(bad)


def test_to_chunks() -> None:
    rows = helpers.create_data("int16_1", length=7)
    assert [len(chunk) for chunk in helpers.to_chunks(rows, 3)] == [3, 3, 1]
