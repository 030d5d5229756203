"""Run `bptt train sine --seed S --json` with default settings for consecutive seeds and report test MSE
and wall-clock seconds per seed (the acceptance check "every seed reaches test MSE < 1e-4").

    python benchmarks/sine_seeds.py --seeds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 (default 10)")
    parser.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--threshold", type=float, default=1e-4, help="test MSE to reach (default 1e-4)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.first, args.first + args.seeds):
            result = subprocess.run([sys.executable, "-m", "bptt", "train", "sine", "--seed", str(seed), "--json",
                                     "--out", f"{folder}/seed{seed}"], capture_output=True, text=True, check=True)
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(summary)
            print(f"seed {seed:>3} | test MSE {summary['test_mse']:.3e} | {summary['seconds']:.1f} s", flush=True)
    passed = sum(r["test_mse"] < args.threshold for r in rows)
    seconds = [r["seconds"] for r in rows]
    worst = max(r["test_mse"] for r in rows)
    print(f"{passed}/{len(rows)} seeds reached test MSE < {args.threshold:g}; worst {worst:.3e}; "
          f"median {statistics.median(seconds):.1f} s per seed (min {min(seconds):.1f}, max {max(seconds):.1f})")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
