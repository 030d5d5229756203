"""The character model on three corpora that ship offline, against the best Kneser-Ney n-gram of each.

- ``stdlib``: the default corpus of ``bptt train chars`` (33 standard-library modules, about 1.3 M characters);
- ``prose``: English prose, the Python reference manual's topics that ``pydoc`` shows
  (``pydoc_data.topics.topics``, every topic's text in the order of its name, joined by blank lines);
- ``pip``: another project's sources, pip's own modules (its vendored packages left out) from the wheel that
  ``ensurepip`` bundles with Python, in the order of their paths.

Each is written to a UTF-8 file and trained as a user would, ``bptt train chars --text F --seed K --json``
with nothing else given, timed from the command's start to its end (everything included: reading, the
n-gram, training, dynamic evaluation, the caches). The table gives, per corpus, the medians (min-max) over the
seeds of the static, dynamic, cache and dynamic + cache test BPC, each one's margin to the n-gram (above 0: the model is
better) and the wall time. It is Markdown, for docs/text.md.

    python benchmarks/chars_corpora.py [--seeds 0,1,2] [--corpora prose,pip] [--data DIR] [--json PATH]
        [--jobs 1]

``--jobs 2`` runs two commands at a time, each with one BLAS thread: the figures are the same, the wall times
are not those of a run alone on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def prose() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def pip_sources() -> str:
    bundled = Path(sysconfig.get_paths()["stdlib"]) / "ensurepip" / "_bundled"
    with zipfile.ZipFile(sorted(bundled.glob("pip-*.whl"))[0]) as wheel:
        names = sorted(n for n in wheel.namelist() if n.endswith(".py") and "/_vendor/" not in n)
        return "".join(wheel.read(name).decode("utf-8") for name in names)


CORPORA = {"stdlib": None, "prose": prose, "pip": pip_sources}


def run(corpus: str, path: Path | None, seed: int, out: Path, threads: int | None) -> dict:
    command = [sys.executable, "-m", "bptt", "train", "chars", *(["--text", str(path)] if path else []),
               "--seed", str(seed), "--json", "--out", str(out)]
    env = dict(os.environ, **({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
                              if threads else {}))
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{corpus} seed {seed}: static {summary['test_bpc']:.3f}, dynamic {summary['test_bpc_dynamic']:.3f}, "
          f"cache {summary['test_bpc_cache']:.3f}, dynamic + cache {summary['test_bpc_dynamic_cache']:.3f}, "
          f"n-gram {summary['baseline_bpc']:.3f}, {wall:.0f} s", flush=True)
    return {"corpus": corpus, "seed": seed, "wall_seconds": wall, **summary}


def _spread(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(runs: list[dict]) -> str:
    lines = ["| corpus | chars | n-gram (order) | static BPC | margin | dynamic BPC | margin | cache BPC | margin "
             "| dynamic + cache BPC | margin | wall, s |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for corpus in dict.fromkeys(r["corpus"] for r in runs):
        mine = [r for r in runs if r["corpus"] == corpus]
        first = mine[0]
        cells = [corpus, f"{first['corpus_chars']:,}", f"{first['baseline_bpc']:.3f} ({first['baseline_order']})"]
        for bpc, margin in (("test_bpc", "bpc_margin"), ("test_bpc_dynamic", "bpc_margin_dynamic"),
                            ("test_bpc_cache", "bpc_margin_cache"),
                            ("test_bpc_dynamic_cache", "bpc_margin_dynamic_cache")):
            cells += [_spread([r[bpc] for r in mine]), _spread([r[margin] for r in mine])]
        cells.append(_spread([r["wall_seconds"] for r in mine], 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    parser.add_argument("--corpora", default=",".join(CORPORA), help=f"comma-separated, of {', '.join(CORPORA)}")
    parser.add_argument("--data", type=Path, default=None, help="where to write the corpora and runs (a temp dir)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every run's summary here")
    parser.add_argument("--jobs", type=int, default=1, help="commands at a time (1)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    corpora = args.corpora.split(",")
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown:
        parser.error(f"unknown corpora {unknown}; expected some of {list(CORPORA)}")
    data = args.data or Path(tempfile.mkdtemp(prefix="chars-corpora-"))
    data.mkdir(parents=True, exist_ok=True)
    paths = {}
    for corpus in corpora:
        if CORPORA[corpus] is not None:
            paths[corpus] = data / f"{corpus}.txt"
            paths[corpus].write_text(CORPORA[corpus](), encoding="utf-8")
    jobs = [(c, s) for c in corpora for s in seeds]
    threads = None if args.jobs == 1 else max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda job: run(job[0], paths.get(job[0]), job[1], data / f"{job[0]}-{job[1]}",
                                             threads), jobs))
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps({"seeds": seeds, "jobs": args.jobs, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
