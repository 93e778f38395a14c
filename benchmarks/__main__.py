"""``python -m benchmarks [--quick]``."""

from __future__ import annotations

import argparse
import sys

from benchmarks.run import main

parser = argparse.ArgumentParser(prog="python -m benchmarks")
parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
sys.exit(main(quick=parser.parse_args().quick))
