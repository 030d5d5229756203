"""``bptt predict CHECKPOINT --file FILE``: the forecasts of a model saved by ``bptt train csv`` for a CSV file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bptt.interop.io import atomic_write_bytes
from bptt.train.tasks.series_file import FILLS


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``predict`` verb and its options."""
    predict = verbs.add_parser("predict", help="forecast a CSV file with a model saved by bptt train csv",
                               description="Apply a forecaster of bptt train csv (its columns, scaling, window and "
                                           "horizon, stored in the checkpoint) to a CSV file of the same columns, "
                                           "and write a forecast for every row a whole window precedes, the rows "
                                           "after the file's end included.")
    predict.add_argument("checkpoint", type=Path, help="the model.safetensors of a csv run")
    predict.add_argument("--file", type=Path, required=True, help="the CSV file to forecast")
    predict.add_argument("--fill", choices=list(FILLS), default=None,
                         help="fill empty cells this way (default: as the run did)")
    predict.add_argument("--out", type=Path, default=None,
                         help="the CSV file to write (default: forecasts.csv beside the checkpoint)")
    predict.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    predict.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Write the forecasts of a csv run's model for ``--file``; exit 2 when the checkpoint is not one or the
    file cannot be read, lacks a column or has bad data."""
    from bptt.train.predict import Forecaster

    out = args.out or args.checkpoint.parent / "forecasts.csv"
    try:
        forecaster = Forecaster.load(args.checkpoint)
        print(f"bptt predict | {args.checkpoint} | target {forecaster.target}, {forecaster.horizon} ahead of "
              f"{forecaster.window}-row windows of {', '.join(forecaster.columns)} | file {args.file} | out {out}",
              flush=True)
        table = forecaster.forecast_file(args.file, fill=args.fill)
    except (ImportError, ValueError) as error:
        print(f"bptt predict: {error}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, table.to_csv(index=False).encode("utf-8"))
    actual = table[forecaster.target].to_numpy()
    scored = ~np.isnan(actual)
    errors = table[f"{forecaster.target}_forecast"].to_numpy()[scored] - actual[scored]
    summary = {"out": str(out), "forecasts": len(table), "beyond_end": forecaster.horizon, "scored": int(scored.sum()),
               "mae": float(np.mean(np.abs(errors))) if scored.any() else None,
               "rmse": float(np.sqrt(np.mean(errors**2))) if scored.any() else None}
    accuracy = (f"; against the file's {summary['scored']} actual values: MAE {summary['mae']:.4g}, RMSE "
                f"{summary['rmse']:.4g}" if scored.any() else "")
    print(f"wrote {len(table)} forecasts of {forecaster.target} (rows {table['row'].iloc[0]}-{table['row'].iloc[-1]}, "
          f"the last {forecaster.horizon} after the file's end) to {out}{accuracy}")
    if args.json:
        print(json.dumps(summary))
    return 0
