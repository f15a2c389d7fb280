"""Write Joule 1.0.1's pipe tests, rewritten for shmpipe, into generated/ at import time.

pytest imports this conftest before it lists this folder (pytest >= 8 loads a directory's
conftest before collecting the directory), so generated/ is complete when it is scanned and
its modules get node ids like
``tests/joule_conformance/generated/test_stream_pipes.py::TestStreamingPipes::test_caching``.

A generated module that cannot be imported (e.g. shmpipe lacks a name Joule's tests import)
would be a collection error, which stops the whole run. Instead its tests are still listed
(from the module's syntax tree) and each fails with the import error.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from . import _harness

_harness.prepare()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    if module_path.parent == _harness.GENERATED_DIR:
        return GeneratedModule.from_parent(parent, path=module_path)
    return None


class GeneratedModule(pytest.Module):
    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        try:
            return list(super().collect())
        except self.CollectError as exc:
            error = str(exc)
        return list(self._unimportable(error))

    def _unimportable(self, error: str) -> Iterable[pytest.Item | pytest.Collector]:
        tree = ast.parse(self.path.read_text(encoding="utf-8"), str(self.path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                methods = sorted(  # unittest runs a class's tests in name order
                    (item.name, item.lineno)
                    for item in node.body
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test")
                )
                yield UnimportableClass.from_parent(
                    self, name=node.name, methods=methods, error=error
                )
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                yield UnimportableTest.from_parent(
                    self, name=node.name, lineno=node.lineno, error=error
                )


class UnimportableClass(pytest.Collector):
    def __init__(self, *, methods: list[tuple[str, int]], error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.methods = methods
        self.error = error

    def collect(self) -> Iterable[pytest.Item]:
        for name, lineno in self.methods:
            yield UnimportableTest.from_parent(self, name=name, lineno=lineno, error=self.error)


class ModuleNotImported(Exception):
    pass


class UnimportableTest(pytest.Item):
    def __init__(self, *, lineno: int, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lineno = lineno
        self.error = error

    def runtest(self) -> None:
        raise ModuleNotImported(self.error)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"the generated module could not be imported:\n{self.error}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.lineno - 1, self.name
