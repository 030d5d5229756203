r"""Dates as people write them, to ISO 8601: ``"tuesday 3 march 1987"``, ``"3/3/87"``, ``"march 3, 1987"``,
``"1987.03.03"`` ... to ``"1987-03-03"``, the exercise of d2l's and Keras' date-translation examples.

Each problem is a date drawn uniformly from 1950-01-01 to 2049-12-31 (so a two-digit year names one century:
50-99 are the 1900s, 00-49 the 2000s) written in one of :data:`FORMATS`, chosen uniformly, with the standard
library's ``datetime`` (lower case, English names). A slash is the American order, month first; a dot is the
European one, day first. The validation (1,000) and test (2,000) problems are distinct dates of a held-out
tenth of all dates (chosen by a hash of the date and the seed), and training never draws a held-out date in
any format: every test date is one the model has never seen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from bptt.train.tasks._seq2seq import Seq2SeqTask, hashed_share, recipe

FIRST, LAST = dt.date(1950, 1, 1), dt.date(2049, 12, 31)
"""The dates drawn, both included."""

FORMATS = ("{weekday} {d} {month} {Y}", "{m}/{d}/{y}", "{month} {d}, {Y}", "{Y}.{mm}.{dd}", "{dd}.{mm}.{Y}",
           "{d} {mon} {Y}", "{mon} {d} {Y}", "{wkd}, {d} {mon} {Y}", "{mm}/{dd}/{Y}", "{d} {month} {Y}")
"""The ways a date is written (``str.format`` fields: ``d``/``dd`` the day, ``m``/``mm`` the month, ``y``/``Y``
the year in two or four digits, ``month``/``mon`` its name, ``weekday``/``wkd`` the day's)."""

HELD_OUT = {"validation": 1_000, "test": 2_000}
"""How many distinct dates each held-out split has."""

HELD_OUT_SHARE = 0.1
"""The share of all dates that training never draws."""


def written(date: dt.date, layout: str) -> str:
    """``date`` written in ``layout`` (one of :data:`FORMATS`), lower case."""
    return layout.format(d=date.day, dd=f"{date.day:02d}", m=date.month, mm=f"{date.month:02d}",
                         y=f"{date.year % 100:02d}", Y=date.year, month=date.strftime("%B").lower(),
                         mon=date.strftime("%b").lower(), weekday=date.strftime("%A").lower(),
                         wkd=date.strftime("%a").lower())


# The addition recipe's 7,800 steps take 75 ms each here (sources of up to 26 characters), over 9 minutes, and
# dates are learned far sooner: seed 0's validation loss was 1.1e-4 nats a token after 1,000 steps and 5e-5
# after 1,500. So 2,000 steps (128,000 problems).
@dataclass(frozen=True)
class DatesTask(Seq2SeqTask):
    """A written date to ``YYYY-MM-DD`` (module docstring)."""

    seed: int = 0
    name: str = field(default="dates", init=False)
    source_alphabet: str = field(default=" ,-./0123456789abcdefghijklmnopqrstuvwxyz", init=False)
    target_alphabet: str = field(default="-0123456789", init=False)
    defaults: dict[str, object] = field(default_factory=lambda: {**recipe(), "steps": 2000, "eval_every": 250},
                                       compare=False, repr=False)
    goals: dict = field(default_factory=lambda: {"test_accuracy": (">=", 0.995)}, init=False, compare=False,
                        repr=False)
    problems: dict = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 29])
        days = np.arange(FIRST.toordinal(), LAST.toordinal() + 1)
        held_out = days[self.is_held_out(days)]
        chosen = rng.choice(held_out, size=sum(HELD_OUT.values()), replace=False)
        layouts = rng.integers(0, len(FORMATS), size=len(chosen))
        pairs = [self._strings(int(day), int(k)) for day, k in zip(chosen, layouts, strict=True)]
        object.__setattr__(self, "problems", {"validation": pairs[:HELD_OUT["validation"]],
                                              "test": pairs[HELD_OUT["validation"]:]})

    @property
    def max_target_length(self) -> int:
        return 11                                              # YYYY-MM-DD and </s>

    def is_held_out(self, ordinal: object) -> object:
        """Whether the date of proleptic Gregorian ``ordinal`` (an int or an array of them) is held out
        (:func:`~bptt.train.tasks._seq2seq.hashed_share`)."""
        return hashed_share(ordinal, self.seed, HELD_OUT_SHARE)

    def normalized_source(self, text: str) -> str:
        """``text`` in lower case, its outer spaces removed: "March 3, 1987" reads as the task writes it."""
        return text.strip().lower()

    def _strings(self, ordinal: int, layout: int) -> tuple[str, str]:
        date = dt.date.fromordinal(ordinal)
        return written(date, FORMATS[layout]), date.isoformat()

    def problems_for_training(self, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
        """``count`` training problems, their dates never held out."""
        chosen: list[tuple[str, str]] = []
        while len(chosen) < count:
            days = rng.integers(FIRST.toordinal(), LAST.toordinal() + 1, size=2 * (count - len(chosen)) + 8)
            layouts = rng.integers(0, len(FORMATS), size=len(days))
            keep = ~self.is_held_out(days)
            chosen += [self._strings(int(day), int(k)) for day, k in zip(days[keep], layouts[keep], strict=True)]
        return chosen[:count]
