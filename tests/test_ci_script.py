"""The /dev/shm leak checks count only what the run itself created, not pipes of other programs
on the host: .ci/run (through .ci/shm_check) and the shm test session (tests/shm/conftest.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import uuid
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SHM_CHECK = ROOT / ".ci" / "shm_check"
README_TEST_COMMAND = "pip install -e '.[test]' && python -m pytest"


def shm_check(*args: str, shm_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if shm_dir is not None:
        env["SHM_DIR"] = str(shm_dir)
    return subprocess.run(["bash", str(SHM_CHECK), *args], env=env, capture_output=True,
                          text=True, timeout=30)


def touch(path: Path) -> None:
    path.write_bytes(b"")


# .ci/shm_check on a directory of its own

def test_shm_check_reports_only_the_shmpipe_entries_new_since_the_snapshot(tmp_path: Path) -> None:
    shm, snapshot = tmp_path / "shm", tmp_path / "before"
    shm.mkdir()
    for name in ("shmpipe.foreign", "sem.shmpipe.foreign.lock", "shmpipe.foreign.bell.w"):
        touch(shm / name)  # another program's pipe, there before the run
    assert shm_check("snapshot", str(snapshot), shm_dir=shm).returncode == 0

    for name in ("shmpipe.mine", "sem.shmpipe.mine.lock", "shmpipe.mine.bell.r0",
                 "pym-123-abc", "notshmpipe.x"):
        touch(shm / name)  # what the run left; the last two are not shmpipe's
    (shm / "shmpipe.foreign.bell.w").unlink()  # what vanished meanwhile does not matter

    new = shm_check("new", str(snapshot), shm_dir=shm)
    assert new.returncode == 1
    assert new.stdout.split() == ["sem.shmpipe.mine.lock", "shmpipe.mine", "shmpipe.mine.bell.r0"]


def test_shm_check_passes_when_nothing_is_new(tmp_path: Path) -> None:
    shm, snapshot = tmp_path / "shm", tmp_path / "before"
    shm.mkdir()
    touch(shm / "shmpipe.foreign")
    assert shm_check("snapshot", str(snapshot), shm_dir=shm).returncode == 0
    touch(shm / "pym-123-abc")
    new = shm_check("new", str(snapshot), shm_dir=shm)
    assert (new.returncode, new.stdout) == (0, "")
    empty = tmp_path / "empty"
    empty.mkdir()  # no entry at all, before or after
    assert shm_check("snapshot", str(snapshot), shm_dir=empty).returncode == 0
    assert shm_check("new", str(snapshot), shm_dir=empty).returncode == 0


def test_shm_check_ignores_a_foreign_pipe_in_dev_shm(tmp_path: Path) -> None:
    """On the real /dev/shm, where other programs may be creating pipes right now: so this
    checks what is or is not reported, not that nothing else is."""
    snapshot = tmp_path / "before"
    foreign = Path(f"/dev/shm/shmpipe.foreign-{uuid.uuid4().hex}")
    left = Path(f"/dev/shm/shmpipe.ci-test-{uuid.uuid4().hex}")
    try:
        touch(foreign)
        assert shm_check("snapshot", str(snapshot)).returncode == 0
        touch(left)
        new = shm_check("new", str(snapshot))
        assert new.returncode == 1
        assert left.name in new.stdout.split()
        assert foreign.name not in new.stdout
    finally:
        foreign.unlink(missing_ok=True)
        left.unlink(missing_ok=True)


def test_ci_run_checks_dev_shm_against_a_snapshot_taken_before_the_tests() -> None:
    """.ci/run cannot run here (it builds a virtualenv and runs the whole suite): check that it
    uses .ci/shm_check around the README's test command, which it keeps verbatim."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert README_TEST_COMMAND in (ROOT / "README.md").read_text()
    tests = lines.index(README_TEST_COMMAND)
    snapshot = [i for i, line in enumerate(lines) if ".ci/shm_check snapshot" in line]
    new = [i for i, line in enumerate(lines) if ".ci/shm_check new" in line]
    assert len(snapshot) == 1 and snapshot[0] < tests
    assert len(new) == 1 and new[0] > tests
    assert not any("ls /dev/shm" in line for line in lines)
    assert os.access(SHM_CHECK, os.X_OK)


# the leak check of the shm test session

def load_shm_conftest() -> ModuleType:
    """tests/shm/conftest.py as a module of its own (its _RUN differs from the session's)."""
    spec = importlib.util.spec_from_file_location(
        "shm_conftest_under_test", ROOT / "tests" / "shm" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_session_leak_check_counts_only_this_runs_pipes() -> None:
    conftest = load_shm_conftest()
    run = conftest._RUN
    before = conftest._our_entries()
    foreign = f"foreign-{uuid.uuid4().hex}"
    other_run = f"test-{uuid.uuid4().hex[:8]}-0"  # another test session's pipe
    ours = f"test-{run}-{uuid.uuid4().hex[:8]}"
    created = [Path("/dev/shm") / e for e in (
        f"shmpipe.{foreign}", f"shmpipe.{other_run}",
        f"shmpipe.{ours}", f"sem.shmpipe.{ours}.lock", f"shmpipe.{ours}.bell.w")]
    try:
        for path in created:  # created after the snapshot, like a pipe of another program
            touch(path)
        assert conftest._leaked(before) == sorted(p.name for p in created[2:])
    finally:
        for path in created:
            path.unlink(missing_ok=True)
    assert conftest._leaked(before) == []
