#!/usr/bin/env python3
"""The paper's probe table and ablations at CPU scale: the same as ``spotart reproduce``.

    python benchmarks/reproduce.py --preset quick   # about 45 minutes on 2 CPU cores; run again to resume
    python benchmarks/reproduce.py --preset full    # 96 px, about 8 hours, resumable

Run from the repository root (the data is read from ../shared/data/imagenette-96). Results go to
benchmarks/results/reproduce.json and benchmarks/results/reproduce.md; see docs/evaluation.md.
"""

import shlex
import sys

from spotart.cli import main

if __name__ == "__main__":
    command = " ".join(shlex.quote(arg) for arg in ["python", *sys.argv])
    sys.exit(main(["reproduce", *sys.argv[1:], "--command-line", command]))
