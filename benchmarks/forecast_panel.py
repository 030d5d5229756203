"""A forecasting panel: `bptt train csv` with its defaults on real series that ship offline, beside persistence,
seasonal-naive and ETS.

Each series (statsmodels' datasets and matplotlib's sample data; trending, seasonal, stationary and random-walk
ones) is written to a CSV file as a user would with pandas: a header, a time column and the one target column,
so that the model, like the baselines, reads the target alone. Each is then trained as

    bptt train csv --file F --target COL --time-column T --window W [--season S] --seed K --json

with nothing else given, for every seed. The table has one row per series: bptt's median test RMSE over the
seeds (min-max), the baselines' test RMSE (persistence, seasonal-naive with a season, ETS when the run reports
it) and whether bptt's median is at least as good; totals follow. It is Markdown, for docs/forecasting.md.

    python benchmarks/forecast_panel.py [--seeds 0,1,2] [--series nile,co2] [--data DIR] [--json PATH] [--cli]
        [--set hidden_size=16 ...]

Runs are in-process (the same resolve and run as the command line) unless ``--cli`` runs the command itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.cbook import get_sample_data
from statsmodels.datasets import co2, danish_data, elnino, macrodata, nile, sunspots


class Series(NamedTuple):
    name: str
    kind: str  # trending, seasonal, stationary or random walk
    target: str
    time_column: str
    window: int  # 8 quarters, 24 months, 20 years, 20 trading days
    season: int | None  # 4 for seasonal quarters, 12 for seasonal months, else none
    load: Callable[[], pd.DataFrame]  # the frame a user would write: the time column, then the target


def _macro(column: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:  # as docs/forecasting.md writes macro.csv: a date for each quarter's end
        frame = macrodata.load_pandas().data
        quarters = pd.PeriodIndex.from_fields(year=frame.year.astype(int), quarter=frame.quarter.astype(int), freq="Q")
        return pd.DataFrame({"date": quarters.to_timestamp(how="end").strftime("%Y-%m-%d"), column: frame[column]})
    return load


def _co2() -> pd.DataFrame:  # weekly readings at Mauna Loa, as monthly means; 5 empty months interpolated
    monthly = co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    return pd.DataFrame({"date": monthly.index.strftime("%Y-%m-%d"), "co2": monthly.to_numpy()})


def _danish() -> pd.DataFrame:  # log real money (M2) of Denmark, quarterly from 1974
    frame = danish_data.load_pandas().data
    return pd.DataFrame({"date": frame.index.strftime("%Y-%m-%d"), "lrm": frame["lrm"].to_numpy()})


def _elnino() -> pd.DataFrame:  # sea surface temperature, a table of years x months made one monthly series
    frame = elnino.load_pandas().data
    values = frame.drop(columns="YEAR").to_numpy().ravel()  # row by row: January to December of each year
    months = pd.date_range(f"{int(frame.YEAR.iloc[0])}-01-01", periods=len(values), freq="MS")
    return pd.DataFrame({"date": months.strftime("%Y-%m-%d"), "temperature": values})


def _yearly(module, year: str, value: str, name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        frame = module.load_pandas().data
        return pd.DataFrame({"year": frame[year].astype(int), name: frame[value]})
    return load


def _stock(column: str, name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:  # month starts; the other rows are dividend dates without prices
        frame = pd.read_csv(get_sample_data("Stocks.csv", asfileobj=False), comment="#", parse_dates=["Date"])
        frame = frame[frame.Date.dt.day == 1].dropna(subset=[column])
        return pd.DataFrame({"date": frame.Date.dt.strftime("%Y-%m-%d"), name: frame[column]})
    return load


def _goog() -> pd.DataFrame:  # daily closing prices, 2004-2008
    prices = np.load(get_sample_data("goog.npz", asfileobj=False))["price_data"]
    return pd.DataFrame({"date": pd.to_datetime(prices["date"]).strftime("%Y-%m-%d"), "close": prices["close"]})


PANEL = (
    Series("us-cpi", "trending", "cpi", "date", 8, None, _macro("cpi")),
    Series("us-realgdp", "trending", "realgdp", "date", 8, None, _macro("realgdp")),
    Series("us-unemp", "stationary", "unemp", "date", 8, None, _macro("unemp")),
    Series("us-tbilrate", "random walk", "tbilrate", "date", 8, None, _macro("tbilrate")),
    Series("danish-money", "trending", "lrm", "date", 8, 4, _danish),
    Series("co2", "seasonal", "co2", "date", 24, 12, _co2),
    Series("elnino", "seasonal", "temperature", "date", 24, 12, _elnino),
    Series("sunspots", "stationary", "sunspots", "year", 20, None,
           _yearly(sunspots, "YEAR", "SUNACTIVITY", "sunspots")),
    Series("nile", "stationary", "volume", "year", 20, None, _yearly(nile, "year", "volume", "volume")),
    Series("sp500", "random walk", "sp500", "date", 24, None, _stock("^GSPC", "sp500")),
    Series("ibm", "random walk", "ibm", "date", 24, None, _stock("IBM", "ibm")),
    Series("goog", "random walk", "close", "date", 20, None, _goog),
)


def task_options(series: Series, path: Path) -> dict:
    """What ``bptt train csv`` passes on for the flags above (``bptt.cli._experiment_options.task_options``): the
    given ones only."""
    options = {"file": str(path), "target": series.target, "time_column": series.time_column, "window": series.window}
    return options if series.season is None else {**options, "season": series.season}


def run_in_process(options: dict, seed: int, out: Path, overrides: dict) -> dict:
    from bptt.train.experiment import resolve, run

    result = run(resolve("csv", seed, task_options=options, **overrides))  # the command line's resolve
    return {**result.metrics, "seconds": result.seconds, "steps": len(result.history.step),
            "best_step": result.history.best_step}


def run_cli(options: dict, seed: int, out: Path, overrides: dict) -> dict:
    flags = [item for name, value in {**options, **overrides}.items()
             for item in (f"--{name.replace('_', '-')}", str(value))]
    command = [sys.executable, "-m", "bptt", "train", "csv", *flags, "--seed", str(seed), "--json", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {key: value for key, value in summary.items() if not isinstance(value, (str, list, dict))}


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _verdict(model: float, baseline: float | None, strict: bool = False) -> str:
    if baseline is None:
        return "—"
    return "yes" if (model < baseline if strict else model <= baseline) else "no"


def table(rows: list[dict]) -> str:
    """The Markdown table, one row per series, and a line of totals."""
    lines = ["| series | kind | rows | window | season | bptt RMSE, median (min–max) | persistence | seasonal-naive "
             "| ETS | bptt ≤ persistence | bptt ≤ seasonal | bptt < ETS |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|:-:|:-:|:-:|"]
    counts = {"persistence": [0, 0], "seasonal-naive": [0, 0], "ETS": [0, 0]}
    for row in rows:
        runs = row["runs"]
        rmse = [r["test_rmse"] for r in runs]
        model = statistics.median(rmse)
        baselines = {"persistence": _median(runs, "baseline_rmse"), "seasonal-naive": _median(runs, "seasonal_rmse"),
                     "ETS": _median(runs, "ets_rmse")}
        verdicts = {name: _verdict(model, value, strict=name == "ETS") for name, value in baselines.items()}
        for name, verdict in verdicts.items():
            if verdict != "—":
                counts[name][0] += verdict == "yes"
                counts[name][1] += 1
        lines.append(f"| {row['name']} | {row['kind']} | {row['rows']} | {row['window']} | {row['season'] or '—'} | "
                     f"{model:.4g} ({min(rmse):.4g}–{max(rmse):.4g}) | "
                     + " | ".join(_number(value) for value in baselines.values()) + " | "
                     + " | ".join(verdicts.values()) + " |")
    totals = [f"{verb} {name} on {won}/{of}" for (name, (won, of)), verb in
              zip(counts.items(), ("≤", "≤", "ahead of"), strict=True) if of]
    lines.append("")
    lines.append(f"bptt (median of {len(rows[0]['runs']) if rows else 0} seeds): " + "; ".join(totals)
                 + ("" if counts["ETS"][1] else "; no ETS figures in this version's runs") + ".")
    return "\n".join(lines)


def _option(item: str) -> tuple[str, object]:
    """``"lr=3e-3"`` as ``("lr", 0.003)``: the value read as JSON where it is a number, else as text."""
    name, _, value = item.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--series", default=None, help="comma-separated names of the series to run (default: all): "
                        + ", ".join(s.name for s in PANEL))
    parser.add_argument("--data", type=Path, default=None, help="folder to write the CSV files to and keep them in "
                        "(default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every run's metrics here")
    parser.add_argument("--cli", action="store_true", help="run `bptt train csv` in a subprocess, not in-process")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a training option to try instead of its default, e.g. hidden_size=16 (repeatable)")
    args = parser.parse_args()
    overrides = dict(_option(item) for item in args.set)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    names = [s.name for s in PANEL]
    chosen = PANEL if args.series is None else [s for s in PANEL if s.name in args.series.split(",")]
    unknown = set(args.series.split(",")) - set(names) if args.series else set()
    if unknown:
        parser.error(f"unknown series {', '.join(sorted(unknown))}; expected some of {', '.join(names)}")
    trainer = run_cli if args.cli else run_in_process
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for series in chosen:
            path = folder / f"{series.name}.csv"
            frame = series.load()
            frame.to_csv(path, index=False)
            options = task_options(series, path)
            runs = []
            for seed in seeds:
                metrics = trainer(options, seed, Path(scratch) / "runs" / f"{series.name}-{seed}", overrides)
                runs.append({"seed": seed, **metrics})
                print(f"{series.name} seed {seed}: test RMSE {metrics['test_rmse']:.4g}, persistence "
                      f"{metrics['baseline_rmse']:.4g}, {metrics['seconds']:.1f} s", file=sys.stderr, flush=True)
            described = {key: value for key, value in series._asdict().items() if key != "load"}
            rows.append({**described, "rows": len(frame), "file": str(path), "task_options": options, "runs": runs})
    seconds = time.perf_counter() - start
    print(table(rows))
    tried = f", with {', '.join(args.set)}" if args.set else ", defaults"
    print(f"\n{len(rows)} series x {len(seeds)} seeds in {seconds:.0f} s ({'cli' if args.cli else 'in-process'}"
          f"{tried}).")
    if args.json:
        args.json.write_text(json.dumps({"seeds": seeds, "seconds": seconds, "series": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
