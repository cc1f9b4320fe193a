"""The small types an experiment is made of: its planned runs, the pairs it compares, the figures
the reports published, what a student chose, and what a finished run of its group gave."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from cnnviz.training.config import TrainConfig

SIZES = ("quick", "full")
SCRATCH = "none"
IMAGENET = "imagenet"
# The order conclusions are written in unless an experiment says otherwise.
SECTIONS = ("ranking", "custom", "pairs", "noise", "published")
CHARTS = ("curves", "published", "probe_depth", "superclasses", "cost", "grad_norms")


@dataclass(frozen=True)
class Published:
    """A figure a report published, where it comes from, and which run of the group it sits beside."""

    label: str
    value: float | None  # accuracy in [0, 1]; None when the report gives a range or words
    citation: str  # the report, named by what it is: "Sharma, Jain and Mishra, 2018: ..."
    run_key: str | None = None
    text: str = ""  # how to show it when ``value`` is None (e.g. "9-21 min per phase")
    split: str = "test"  # which split the report measured it on: "test", or "val" where it chose and reported on val

    def shown(self) -> str:
        """The figure as the page prints it."""
        return f"{self.value:.3f}" if self.value is not None else self.text


@dataclass(frozen=True)
class PlannedRun:
    """One run of an experiment's group, before launch."""

    key: str  # short, stable within the experiment: "alexnet-finetune"
    label: str  # what a student reads: "AlexNet, reset FC + fine-tune all"
    config: TrainConfig


@dataclass(frozen=True)
class Pair:
    """Two runs of a group the conclusions compare: ``a`` against ``b``.

    ``names`` are what the sentence calls them (None: the run's own short name);
    ``prefix`` opens the sentence; ``note`` follows it when the runs used the experiment's
    own dataset (a published figure to hold them against).
    """

    a: str
    b: str
    names: tuple[str | None, str | None] = (None, None)
    prefix: str = ""
    note: str = ""


@dataclass(frozen=True)
class Ranking:
    """Rank the group's runs best to worst (only those in ``modes`` when given)."""

    title: str = "Ranking"
    modes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Choices:
    """What a student chose on a card before launching.

    ``dataset`` replaces the experiment's dataset (a fallback when it is missing);
    ``inits`` maps an architecture to its initialisation for the runs that want pretrained
    weights ("imagenet", "run:<id>" or "none"); ``init_options`` the options of that earlier
    run's model (its weights only load into the same options); ``probe_layer`` is the
    intermediate layer of the probe experiment.
    """

    size: str = "quick"
    dataset: str | None = None
    inits: dict[str, str] = field(default_factory=dict)
    init_options: dict[str, dict] = field(default_factory=dict)
    probe_layer: str | None = None

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {self.size!r}")

    def init_for(self, arch: str) -> str:
        """The initialisation of ``arch``'s pretrained runs (ImageNet unless the student changed it)."""
        return self.inits.get(arch, IMAGENET)


@dataclass
class Outcome:
    """What conclusions and tables need from one finished (or running) run of a group."""

    key: str
    label: str
    config: TrainConfig
    status: str = "finished"
    best_val_acc: float | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    epochs: list[dict] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    classes: list[str] = field(default_factory=list)
    run_id: int | None = None
    message: str | None = None
    group: int | None = None
    test_acc: float | None = None  # once, at the end, on the best-validation weights (None: no test set)
    test_loss: float | None = None

    @property
    def val_images(self) -> int | None:
        """Validation images behind ``best_val_acc`` (from the confusion matrix), or None."""
        total = sum(sum(row) for row in self.confusion) if self.confusion else 0
        return total or None

    @property
    def done(self) -> bool:
        """Finished or stopped: its numbers are final."""
        return self.status in ("finished", "stopped")

    @property
    def short(self) -> str:
        """The label without its parenthesis: ``AlexNet, reset FC + fine-tune all``."""
        return self.label.split(" (")[0]

    def figure(self, split: str) -> tuple[float | None, str]:
        """(accuracy, the split it is on) to set beside a figure measured on ``split``: test where both have one."""
        if split == "test" and self.test_acc is not None:
            return self.test_acc, "test"
        return self.best_val_acc, "val"

    def last(self, column: str) -> float | None:
        """The last epoch's value of ``column`` (e.g. ``train_loss``), or None."""
        values = [row.get(column) for row in self.epochs if row.get(column) is not None]
        return float(values[-1]) if values else None


@dataclass(frozen=True)
class Experiment:
    """One guided card: the question, what to expect and why, the published figures, the runs,
    and what its conclusions compare (read by the one concluder in ``conclude``)."""

    key: str
    number: int
    title: str
    short_title: str  # the card's tab
    question: str
    expectation: str
    why: str
    dataset: str
    planner: Callable[[Choices], list[PlannedRun]] = field(repr=False, compare=False)
    published: tuple[Published, ...] = ()
    pairs: tuple[Pair, ...] = ()
    ranking: Ranking | None = None
    custom: Callable[[list[Outcome]], list[str]] | None = field(default=None, repr=False, compare=False)
    sections: tuple[str, ...] = SECTIONS  # which conclusion parts, in order
    pretrained_archs: tuple[str, ...] = ()  # archs whose runs want ImageNet weights
    fallbacks: tuple[str, ...] = ("shapes",)  # datasets to offer when ``dataset`` is missing
    settings: dict[str, str] = field(default_factory=dict)  # size -> one line describing it
    chart: str = "curves"  # which results view the page draws (one of CHARTS)
    probe_arch: str | None = None  # the card lets the student pick an intermediate layer of it
    highlight: tuple[str, ...] = ()  # run keys the charts show first

    def __post_init__(self):
        if self.chart not in CHARTS:
            raise ValueError(f"chart must be one of {', '.join(CHARTS)}; got {self.chart!r}")
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown conclusion sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")

    def plan(self, choices: Choices | None = None) -> list[PlannedRun]:
        """The group of runs for ``choices`` (named, not yet numbered)."""
        return self.planner(choices or Choices())

    def published_for(self, run_key: str) -> Published | None:
        """The published figure that sits beside run ``run_key``, if any."""
        return next((p for p in self.published if p.run_key == run_key), None)


def by_key(outcomes: Sequence[Outcome]) -> dict[str, Outcome]:
    """Outcomes indexed by their run key."""
    return {o.key: o for o in outcomes}
