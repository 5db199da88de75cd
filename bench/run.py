"""Runs the reload, propagation, throughput, cold start, long session and script mode
benchmarks; each updates its own section of bench/RESULTS.md.

.venv/bin/python bench/run.py            # full: ~9 + ~7 + ~5 + ~4 + ~4 + ~2 min
.venv/bin/python bench/run.py --quick    # ~2 + ~1 + ~2 + ~1.5 + ~0.5 + ~1 min: checks all works
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Both are bench/ scripts; ruff's isort would file `reload` apart, as if it were the
# project's hmr_serve.reload.
import reload  # noqa: E402, I001
import longrun  # noqa: E402
import propagation  # noqa: E402
import script_mode  # noqa: E402
import startup  # noqa: E402
import throughput  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the scripts' --quick variants")
    p.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    p.add_argument("--allow-debug-build", action="store_true", help="passed on to every script")
    args = p.parse_args()
    flags = {"--quick": args.quick, "--no-write": args.no_write,
             "--allow-debug-build": args.allow_debug_build}  # fmt: skip
    shared = [flag for flag, on in flags.items() if on]
    reload.main(shared)
    propagation.main(shared)
    throughput.main(shared)
    startup.main(shared)
    longrun.main(shared)
    script_mode.main(shared)


if __name__ == "__main__":
    main()
