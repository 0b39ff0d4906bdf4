"""Mutation fuzzing of `edgeq compile` over ONNX files (docs/safety.md, "Fuzzing ONNX input").

    python scripts/fuzz_onnx.py --cases 10000 --seed 0 [--workers 2] [--save fuzz-failures]

Case i of seed s is the same model on every run. Each case runs as `edgeq compile CASE.onnx
--target reference -o DIR` (every --host-every'th case with --target host, so the generated C
is compiled and self-checked) in a worker process with a deadline and a memory cap. Prints a
table of outcomes per mutation kind, saves a reproducer of every crash, hang and other
outcome (the mutated model, its files, stderr, the traceback), and exits 1 if there was any.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", type=int, default=0, help="index of the first case (rerun a slice)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (the machine has 2 cores)")
    ap.add_argument("--seeds", choices=["small", "repo", "all"], default="all",
                    help="seed models: small = hand-built; repo = + models/*.onnx; all = + MLPerf Tiny")
    ap.add_argument("--host-every", type=int, default=10, help="every Nth case builds --target host (0: none)")
    ap.add_argument("--rerun", type=Path, default=None,
                    help="run only the cases whose reproducers are in this folder (same --seed and --seeds)")
    ap.add_argument("--save", type=Path, default=Path("fuzz-failures"),
                    help="folder for reproducers of failing cases")
    ap.add_argument("--save-valid", action="store_true", help="also save the cases that built")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # `kill` ends the run like Ctrl-C: workers stopped, temporary cases removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from tests.fuzz.run import run_fuzz, table
    indices = None
    if args.rerun is not None:  # folder names end in -<index>-<kind>
        indices = sorted({int(p.name.split("-")[1]) for p in args.rerun.iterdir() if p.is_dir()})
    s = run_fuzz(args.cases, args.seed, args.workers, args.seeds, args.host_every, args.save, args.first,
                 indices=indices, save_valid=args.save_valid)
    print(f"\n{s.cases} cases from seed {args.seed} (first case {args.first}), {args.workers} workers, "
          f"{s.seconds:.0f} s; {s.host_cases} cases built for --target host; seed models: {', '.join(s.seeds)}\n")
    print(table(s))
    if s.failures:
        print(f"\n{len(s.failures)} failing cases (reproducers in {args.save}/):")
        for i, kind, cls, reason in s.failures[:40]:
            print(f"  case {i} [{kind}] {cls}: {reason[:200]}")
        if len(s.failures) > 40:
            print(f"  ... and {len(s.failures) - 40} more")
    return 0 if s.ok else 1


if __name__ == "__main__":
    sys.exit(main())
