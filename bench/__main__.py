"""Entry point: ``python -m bench [--quick]``.

Kept import-free at module level: spawned worker processes re-import the main module.
"""

if __name__ == "__main__":
    from bench.cli import main

    raise SystemExit(main())
