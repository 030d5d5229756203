"""``bptt gradflow``: how far back through time the gradient of a loss reaches (:func:`bptt.check.gradient_flow`),
drawn in ``gradflow.png``.

- ``bptt gradflow lstm gru rnn``: the families side by side at initialisation on the same input, with the
  fitted decay per step back; ``--weight-scale`` multiplies the recurrent weights (above about 1 the gradient
  explodes) and ``--clip-norm`` adds each family's norms after clipping the parameter gradient to that norm.
- ``bptt gradflow CHECKPOINT [--data TASK-or-FILE]``: a model saved by ``bptt train``, per layer, at the run's
  initialisation and at the checkpoint, on the first sequences of its own task's validation data, or of another
  task's (of the same input size), or of a file: a CSV for a model of ``bptt train csv`` (its windows), a text
  for one of ``bptt train chars`` (contiguous streams of it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bptt.cli._arguments import positive_float, positive_int
from bptt.layers.models import CELLS

SHOWN_DISTANCES = (0, 10, 50)
"""The steps back at which the printed lines give the norm (and at the sequence's start)."""


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """The ``gradflow`` verb and its options."""
    flow = verbs.add_parser("gradflow", help="how far back through time a gradient reaches: the families at "
                                             "initialisation, or a trained model (gradflow.png)",
                            description="How far back through time the gradient of a loss at the last step reaches: "
                                        "the norm of dL/dh_t at every step back, read from the hand-derived "
                                        "backward pass, with its fitted decay per step; drawn in gradflow.png. "
                                        "Give family names to compare them at initialisation, or one checkpoint "
                                        "of bptt train to compare it with its initialisation, layer by layer.")
    flow.add_argument("models", nargs="+", metavar="FAMILY|CHECKPOINT",
                      help="lstm, gru and/or rnn, or one model.safetensors written by bptt train")
    shape = flow.add_argument_group("the input (a checkpoint's: the first steps and sequences of its validation data)")
    shape.add_argument("--steps", type=positive_int, default=100, help="T, time steps (default 100)")
    shape.add_argument("--batch", type=positive_int, default=8, help="N, sequences (default 8)")
    shape = flow.add_argument_group("the families at initialisation")
    shape.add_argument("--hidden-size", type=positive_int, default=32, help="H (default 32)")
    shape.add_argument("--weight-scale", type=positive_float, default=1.0,
                       help="multiply the recurrent weights W_hh by this (default 1; 3 shows the exploding regime)")
    shape.add_argument("--clip-norm", type=positive_float, default=None,
                       help="also draw each family's norms after clipping the parameter gradient to this norm")
    flow.add_argument("--data", default=None, metavar="TASK-or-FILE",
                      help="a checkpoint's input: a task's validation data, or a CSV (csv models) or text file (chars "
                           "models); default: its own task's validation data")
    flow.add_argument("--seed", type=int, default=0, help="seed of the weights, the input and the loss (default 0)")
    flow.add_argument("--out", type=Path, default=None,
                      help="the PNG to write (default gradflow.png, beside a checkpoint or here)")
    flow.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    flow.set_defaults(command=command)


def command(args: argparse.Namespace) -> int:
    """Measure, print, draw; exit 2 on a name that is neither a family nor one checkpoint."""
    from bptt.check import gradient_flow
    from bptt.train.figures import save_gradient_flow_figure

    families = [name for name in args.models if name in CELLS]
    try:
        if families and len(families) == len(args.models):
            curves, summary, title = _families(args, families, gradient_flow)
            out = args.out or Path("gradflow.png")
        elif len(args.models) == 1 and not families:
            checkpoint = Path(args.models[0])
            curves, summary, title = _checkpoint(checkpoint, args, gradient_flow)
            out = args.out or checkpoint.parent / "gradflow.png"
        else:
            raise ValueError(f"expected family names ({', '.join(sorted(CELLS))}) or one checkpoint, got "
                             f"{' '.join(args.models)}.")
    except (TypeError, ValueError) as error:
        print(f"bptt gradflow: {error}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = save_gradient_flow_figure(out, curves, title=title)
    print(f"wrote {figure}")
    if args.json:
        print(json.dumps({**summary, "figure": str(figure)}))
    return 0


def _line(label: str, flow, norms: np.ndarray, decay: float) -> str:
    """One printed line: the fitted decay, and the norm some steps back and at the first step."""
    shown = [f"{d} back {norms[flow.loss_step - d]:.2e}" for d in SHOWN_DISTANCES if d <= flow.loss_step]
    shown.append(f"{flow.loss_step} back {norms[0]:.2e}")
    return f"{label:<26} | decay {_rate(decay)} a step | " + " | ".join(shown)


def _rate(value: float) -> str:
    return "nan" if np.isnan(value) else f"{value:.3f}"


def _families(args: argparse.Namespace, families: list[str], gradient_flow) -> tuple[list, dict, str]:
    """The families at initialisation on one input (module docstring)."""
    from bptt.train.optim import clip_grad_norm

    x = np.random.default_rng(args.seed).standard_normal((args.steps, args.batch, 1))
    print(f"bptt gradflow | {' '.join(families)} | hidden-size {args.hidden_size} | steps {args.steps} | batch "
          f"{args.batch} | weight-scale {args.weight_scale:g} | loss at the last step | seed {args.seed}")
    curves, summary = [], {"families": {}, "weight_scale": args.weight_scale, "clip_norm": args.clip_norm}
    styles = {"lstm": "C0", "gru": "C1", "rnn": "C2"}
    for name in families:
        layer = CELLS[name](1, args.hidden_size, rng=args.seed)
        layer.params["weight_hh_l0"] *= args.weight_scale
        flow = gradient_flow(layer, x, seed=args.seed)
        norms = flow.state_norms[0]
        print(_line(name.upper(), flow, norms, float(flow.decay_per_step[0])))
        curves.append((f"{name.upper()} (decay {_rate(float(flow.decay_per_step[0]))} a step)", flow.distance,
                       norms, f"{styles[name]}-"))
        entry = {"decay_per_step": float(flow.decay_per_step[0]), "norms": _by_distance(flow, norms)}
        if args.clip_norm is not None:
            scale = _clip_scale(layer, x, flow, args.clip_norm, clip_grad_norm)
            curves.append((f"{name.upper()} clipped to {args.clip_norm:g}", flow.distance, norms * scale,
                           f"{styles[name]}--"))
            print(f"{'':<26} | the parameter gradient clipped to {args.clip_norm:g}: every norm times {scale:.3g}")
            entry["clip_scale"] = scale
        summary["families"][name] = entry
    scale = f", W_hh x {args.weight_scale:g}" if args.weight_scale != 1 else ""
    return curves, summary, f"gradient flow at initialisation (H {args.hidden_size}{scale})"


def _clip_scale(layer, x: np.ndarray, flow, clip_norm: float, clip_grad_norm) -> float:
    """The factor by which clipping the parameter gradient of the flow's loss to ``clip_norm`` multiplies every
    gradient of the pass: ``min(1, clip_norm / ||dL/dtheta||)``."""
    out, _ = layer(x)
    upstream = np.zeros_like(out)
    upstream[flow.loss_step] = flow.direction                             # the loss of the flow
    layer.zero_grad()
    layer.backward(upstream)
    before = clip_grad_norm(layer.grads, clip_norm)
    after = np.sqrt(sum(float(np.vdot(g, g)) for g in layer.grads.values()))   # what clipping left of it
    layer.zero_grad()
    return float(after / before) if before > 0 else 1.0


def _by_distance(flow, norms: np.ndarray) -> list[float]:
    """The norms from the loss's step back to the first step: entry d is d steps back."""
    return [float(value) for value in norms[:flow.loss_step + 1][::-1]]


def flow_input(experiment, task, model, steps: int, batch: int) -> np.ndarray:
    """The first ``steps`` steps of the first ``batch`` sequences of the run's validation data, as the model
    reads them; ValueError for a model that reads more than one sequence (an encoder-decoder)."""
    from bptt.train.fit import data_streams

    x = task.held_out("validation", data_streams(experiment.seed)["validation"], model.dtype)[0]
    if not isinstance(x, np.ndarray):
        raise ValueError(f"expected a model that reads one sequence, got the {experiment.task} task's "
                         f"{type(x).__name__} (an encoder-decoder's encoder reads both ways).")
    return x[:steps, :batch]


def _checkpoint_input(path: Path, args: argparse.Namespace, experiment, task, model,
                      metadata: dict) -> tuple[np.ndarray, str]:
    """What a checkpoint's flow reads (``--data``, module docstring), at most ``--steps`` by ``--batch``, and
    where it comes from in words."""
    from bptt.train.experiment import TASKS, make_task

    data = args.data
    if data is None:
        return flow_input(experiment, task, model, args.steps, args.batch), f"the {experiment.task} validation data"
    if data in TASKS:
        options = experiment.task_options if data == experiment.task else {}
        other = make_task(data, experiment.seed, **options)
        return flow_input(experiment, other, model, args.steps, args.batch), f"the {data} validation data"
    if experiment.task == "csv":
        from bptt.train.predict import Forecaster

        windows = Forecaster.load(path).model_inputs(data)
        return windows[:, :args.batch], f"the windows of {data}"
    if experiment.task == "chars":
        from bptt.train.tasks.chars import read_text

        vocabulary, text = metadata.get("vocabulary", ""), read_text(data)
        unknown = sorted(set(text) - set(vocabulary))
        if unknown:
            raise ValueError(f"--data: expected a text of the characters the model knows, got {data} with "
                             f"{''.join(unknown[:10])!r}.")
        table = {c: k for k, c in enumerate(vocabulary)}
        ids = np.array([table[c] for c in text])
        streams = min(args.batch, len(ids))
        length = min(args.steps, len(ids) // streams)
        return ids[:streams * length].reshape(streams, length).T, f"{data}"
    raise ValueError(f"--data: expected a task name ({', '.join(sorted(TASKS))}), or a file for a model of bptt "
                     f"train csv or chars, got {data!r} for a model of task {experiment.task!r}.")


def _checkpoint(path: Path, args: argparse.Namespace, gradient_flow) -> tuple[list, dict, str]:
    """A trained model per layer, at the run's initialisation and at the checkpoint (module docstring)."""
    from bptt.interop.io import load_arrays
    from bptt.interop.serialization import load
    from bptt.train.experiment import Experiment, build_model, make_task

    model = load(path)
    metadata = load_arrays(path)[1]
    try:
        experiment = Experiment.from_metadata(metadata)
    except ValueError as error:
        raise ValueError(f"expected a checkpoint written by bptt train, got {path} ({error})") from error
    task = make_task(experiment.task, experiment.seed, **experiment.task_options)
    x, source = _checkpoint_input(path, args, experiment, task, model, metadata)
    initial = build_model(task, experiment)
    print(f"bptt gradflow | {path} | task {experiment.task} | model {experiment.cell} | hidden-size "
          f"{experiment.hidden_size} | num-layers {experiment.num_layers} | {x.shape[0]} steps of {x.shape[1]} "
          f"sequences of {source} | loss at the last step of the top layer")
    curves, summary = [], {"layers": {}, "task": experiment.task, "checkpoint": str(path)}
    flows = {when: gradient_flow(m, x, seed=args.seed) for when, m in (("initialisation", initial),
                                                                        ("checkpoint", model))}
    for k, label in enumerate(flows["checkpoint"].labels):
        summary["layers"][label] = {}
        for when, flow in flows.items():
            norms = flow.state_norms[k]
            decay = float(flow.decay_per_step[k])
            print(_line(f"{label} at {when}", flow, norms, decay))
            curves.append((f"{label}, {when} (decay {_rate(decay)} a step)", flow.distance, norms,
                           f"C{k}{'--' if when == 'initialisation' else '-'}"))
            summary["layers"][label][when] = {"decay_per_step": decay, "norms": _by_distance(flow, norms)}
    return curves, summary, f"gradient flow of {path.parent.name or path.name}: before and after training"
