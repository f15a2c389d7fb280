"""Joule 1.0.1's own pipe tests, rewritten to import shmpipe, run as a conformance suite.

The tests are not committed: ``conftest.py`` fetches the joule 1.0.1 sdist into a cache
(``_harness.py``), rewrites ``tests/models/pipes/*.py`` and writes them to ``generated/``
(gitignored) before pytest scans this folder. ``helpers.py`` stands in for Joule's
``tests/helpers.py``.
"""
