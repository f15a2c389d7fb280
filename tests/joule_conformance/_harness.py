"""Fetch the joule 1.0.1 sdist, rewrite its pipe tests to import shmpipe, write them out.

``prepare()`` (called by ``conftest.py`` when pytest enters this folder) does it all once per
process and returns a ``Prepared`` state; ``test_sdist.py`` reports that state as a test:
skipped when the sdist cannot be fetched, failed when it is not the expected file or its
tests no longer match the import table below.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

JOULE_VERSION = "1.0.1"
SDIST_NAME = f"joule-{JOULE_VERSION}.tar.gz"
# sha256 of joule-1.0.1.tar.gz as downloaded from PyPI.
SDIST_SHA256 = "8c083b86e0c86990a43b8607365ecee202fb90ea41f63aa261798f7568d7f1d6"
# Folder inside the sdist whose *.py files become the generated modules.
PIPES_DIR = f"joule-{JOULE_VERSION}/tests/models/pipes/"

CACHE_ENV = "SHMPIPE_TEST_CACHE"
DEFAULT_CACHE = Path("~/.cache/shmpipe-tests")
HERE = Path(__file__).resolve().parent
GENERATED_DIR = HERE / "generated"
PIP_TIMEOUT_S = 600

# Every import of Joule (or of Joule's test helpers) in the pipe tests, as the exact line,
# and the line that replaces it. The generated modules live in the package
# ``<this package>.generated``, so ``..`` is this package (its helpers.py).
IMPORT_REWRITES: Mapping[str, str] = {
    "from joule.models.pipes import InputPipe, OutputPipe, LocalPipe":
        "from shmpipe import InputPipe, OutputPipe, LocalPipe",
    "from joule.models.pipes import LocalPipe, OutputPipe":
        "from shmpipe import LocalPipe, OutputPipe",
    "from joule.models.pipes import LocalPipe":
        "from shmpipe import LocalPipe",
    "from joule.models.pipes import Pipe, LocalPipe":
        "from shmpipe import Pipe, LocalPipe",
    "from joule.models.pipes.factories import reader_factory, writer_factory":
        "from shmpipe import reader_factory, writer_factory",
    "from joule.errors import PipeError":
        "from shmpipe import PipeError",
    "from joule.errors import EmptyPipeError, PipeError":
        "from shmpipe import EmptyPipeError, PipeError",
    "from joule.errors import EmptyPipeError":
        "from shmpipe import EmptyPipeError",
    "from tests import helpers":
        "from .. import helpers",
    "from icecream import ic":
        "from ..helpers import ic",
    "from tests.models.pipes.reader import QueueReader":
        "from .reader import QueueReader",
}

# The files of tests/models/pipes/ in the sdist, each with the import lines it must contain
# (each exactly once). Any other file, or a missing one, is an error.
EXPECTED_IMPORTS: Mapping[str, Sequence[str]] = {
    "__init__.py": [],
    "reader.py": [],
    "test_local_pipe.py": [
        "from tests import helpers",
        "from icecream import ic",
        "from joule.models.pipes import LocalPipe, OutputPipe",
        "from joule.errors import EmptyPipeError, PipeError",
    ],
    "test_local_pipes_basic_operation.py": [
        "from joule.models.pipes import LocalPipe",
        "from tests import helpers",
        "from joule.errors import EmptyPipeError",
    ],
    "test_pipe.py": [
        "from joule.models.pipes import Pipe, LocalPipe",
        "from tests import helpers",
        "from joule.errors import PipeError",
    ],
    "test_stream_pipes.py": [
        "from joule.models.pipes import InputPipe, OutputPipe, LocalPipe",
        "from joule.models.pipes.factories import reader_factory, writer_factory",
        "from joule.errors import PipeError",
        "from tests import helpers",
    ],
}

# A line whose stripped text starts with one of these imports something the rewrite must map.
FOREIGN_IMPORT_PREFIXES = (
    "from joule", "import joule", "from tests", "import tests", "from icecream",
    "import icecream",
)


class FetchError(Exception):
    """The sdist could not be downloaded (no network, no pip, ...): the tests are skipped."""


class HarnessError(Exception):
    """The sdist is not the expected one, or its tests no longer fit the rewrite: a failure."""


class RewriteError(HarnessError):
    """A test file has an import the table does not know, or lacks one it expects."""


def cache_dir() -> Path:
    """The cache folder: $SHMPIPE_TEST_CACHE, else ~/.cache/shmpipe-tests."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_CACHE.expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download_command(dest: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"joule=={JOULE_VERSION}", "--dest", str(dest),
        "--disable-pip-version-check", "--no-input", "--retries", "2", "--timeout", "30",
    ]


def _pip_error(stderr: str, returncode: int) -> str:
    errors = [line.strip() for line in stderr.splitlines() if line.startswith("ERROR:")]
    if errors:
        return "; ".join(errors)
    tail = [line.strip() for line in stderr.splitlines() if line.strip()]
    return tail[-1] if tail else f"pip exited with status {returncode}"


def fetch_sdist(cache: Path, command: Sequence[str] | None = None) -> Path:
    """The verified sdist in ``cache``, downloaded with pip if it is not there yet.

    ``command`` replaces the pip command (tests); it gets the download folder appended.
    FetchError when it cannot be downloaded; HarnessError when its sha256 is not SDIST_SHA256.
    """
    target = cache / SDIST_NAME
    if target.is_file():
        if sha256_of(target) == SDIST_SHA256:
            return target
        target.unlink()  # corrupted or replaced: fetch it again and check that copy
    try:
        cache.mkdir(parents=True, exist_ok=True)
        download = Path(tempfile.mkdtemp(prefix="download-", dir=cache))
    except OSError as exc:
        raise FetchError(f"cannot create cache folder {cache}: {exc}") from exc
    try:
        argv = [*command, str(download)] if command is not None else pip_download_command(
            download
        )
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(str(exc)) from exc
        if done.returncode != 0:
            raise FetchError(_pip_error(done.stderr, done.returncode))
        fetched = download / SDIST_NAME
        if not fetched.is_file():
            found = sorted(p.name for p in download.iterdir())
            raise FetchError(f"pip did not produce {SDIST_NAME} (got {found})")
        actual = sha256_of(fetched)
        if actual != SDIST_SHA256:
            raise HarnessError(
                f"{SDIST_NAME} has sha256 {actual}, expected {SDIST_SHA256}: not the sdist "
                "these tests were written against"
            )
        os.replace(fetched, target)
        return target
    finally:
        shutil.rmtree(download, ignore_errors=True)


def read_pipe_tests(sdist: Path) -> dict[str, str]:
    """The text of each ``tests/models/pipes/*.py`` in the sdist, read without extracting."""
    sources: dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(PIPES_DIR):
                continue
            name = member.name[len(PIPES_DIR) :]
            if "/" in name or not name.endswith(".py"):
                continue
            file = archive.extractfile(member)
            if file is None:
                raise HarnessError(f"cannot read {member.name} from {sdist}")
            sources[name] = file.read().decode("utf-8")
    return sources


def rewrite(name: str, text: str, expected: Sequence[str]) -> str:
    """``text`` of Joule test file ``name`` with each import of Joule replaced by shmpipe's.

    Each line is compared whole (surrounding whitespace aside) with IMPORT_REWRITES.
    RewriteError if a line in ``expected`` is not there exactly once, or if any line imports
    joule, tests or icecream in a way the table does not know.
    """
    lines = text.splitlines(keepends=True)
    seen: dict[str, int] = {}
    out = []
    for number, line in enumerate(lines, start=1):
        body = line.rstrip("\r\n")
        statement = body.strip()
        if statement in IMPORT_REWRITES:
            seen[statement] = seen.get(statement, 0) + 1
            indent = body[: len(body) - len(body.lstrip())]
            out.append(indent + IMPORT_REWRITES[statement] + line[len(body) :])
        elif statement.startswith(FOREIGN_IMPORT_PREFIXES):
            raise RewriteError(f"{name}:{number}: unexpected import {statement!r}")
        else:
            out.append(line)
    for statement in expected:
        if seen.get(statement, 0) != 1:
            raise RewriteError(
                f"{name}: expected the line {statement!r} once, found it "
                f"{seen.get(statement, 0)} times"
            )
    unexpected = sorted(set(seen) - set(expected))
    if unexpected:
        raise RewriteError(f"{name}: imports not listed for this file: {unexpected}")
    result = "".join(out)
    if "joule" in result.replace("Joule", ""):
        raise RewriteError(f"{name}: still mentions joule after the rewrite")
    return result


def header(name: str) -> str:
    return (
        f"# Generated from {PIPES_DIR}{name} by tests/joule_conformance/_harness.py: joule\n"
        "# imports point at shmpipe. Do not edit; it is rewritten on every test run.\n"
    )


def generate(sources: Mapping[str, str], out_dir: Path) -> list[str]:
    """Write the rewritten modules into ``out_dir`` (a package); remove stale .py files.

    RewriteError (before anything is written) unless the file names are EXPECTED_IMPORTS'.
    Returns the names written.
    """
    if set(sources) != set(EXPECTED_IMPORTS):
        raise RewriteError(
            f"{PIPES_DIR} holds {sorted(sources)}, expected {sorted(EXPECTED_IMPORTS)}"
        )
    rendered = {
        name: header(name) + rewrite(name, text, EXPECTED_IMPORTS[name])
        for name, text in sources.items()
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.py"):
        if stale.name not in rendered:
            stale.unlink()
    for name, text in sorted(rendered.items()):
        _write_if_changed(out_dir / name, text)
    return sorted(rendered)


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def clear_generated(out_dir: Path) -> None:
    """Remove generated modules so none from an earlier run is collected."""
    for old in out_dir.glob("*.py"):
        old.unlink()


@dataclass(frozen=True)
class Prepared:
    status: str  # "ok", "unavailable" (skip) or "error" (fail)
    reason: str = ""
    files: list[str] = field(default_factory=list)


@functools.cache
def prepare() -> Prepared:
    """Fetch, check, rewrite and write the Joule tests once per process; never raises."""
    try:
        sdist = fetch_sdist(cache_dir())
        files = generate(read_pipe_tests(sdist), GENERATED_DIR)
    except FetchError as exc:
        clear_generated(GENERATED_DIR)
        return Prepared("unavailable", f"cannot fetch joule {JOULE_VERSION} sdist: {exc}")
    except (HarnessError, OSError, tarfile.TarError, UnicodeDecodeError) as exc:
        clear_generated(GENERATED_DIR)
        return Prepared("error", f"joule {JOULE_VERSION} tests not generated: {exc}")
    return Prepared("ok", files=files)
