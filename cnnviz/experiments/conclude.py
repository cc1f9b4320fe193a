"""The one concluder: sentences drawn from a group's numbers, following what its experiment's spec
asks for (the pairs it compares, a ranking, the noise band, the gaps to the published figures),
with an experiment's own lines where its spec brings some."""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence

from cnnviz.experiments.spec import IMAGENET, Experiment, Outcome, Pair, by_key


def conclude(experiment: Experiment, outcomes: Sequence[Outcome]) -> list[str]:
    """Sentences drawn from the numbers of ``outcomes`` (finished runs only), in the spec's order."""
    done = [o for o in outcomes if o.done and o.best_val_acc is not None]
    if not done:
        return []
    lines: list[str] = []
    for section in experiment.sections:
        if section == "ranking" and experiment.ranking:
            ranked = [o for o in done if not experiment.ranking.modes or o.config.mode in experiment.ranking.modes]
            if len(ranked) >= 2:
                lines.append(f"{experiment.ranking.title}: {ranking(ranked)}.")
        elif section == "custom" and experiment.custom:
            lines += experiment.custom(done)
        elif section == "pairs":
            lines += pair_lines(experiment, done)
        elif section == "noise":
            lines += noise_line(done)
        elif section == "published":
            lines += published_lines(experiment, done)
    return lines + not_learned_lines(done)


def pair_lines(experiment: Experiment, outcomes: Sequence[Outcome]) -> list[str]:
    """One sentence per pair of the spec whose two runs both finished."""
    by = by_key(outcomes)
    lines = []
    for pair in experiment.pairs:
        a, b = by.get(pair.a), by.get(pair.b)
        if a and b:
            lines.append(_pair_sentence(experiment, pair, a, b))
    return lines


def _pair_sentence(experiment: Experiment, pair: Pair, a: Outcome, b: Outcome) -> str:
    names = (pair.names[0] or family_name(a), pair.names[1] or family_name(b))
    sentence = compare_pair(a, b, names=names)
    sentence = pair.prefix + sentence if pair.prefix else sentence[0].upper() + sentence[1:]
    note = f" ({pair.note})" if pair.note and comparable(experiment, a) and comparable(experiment, b) else ""
    return f"{sentence}{note}."


def family_name(outcome: Outcome) -> str:
    """The network a run trains, from its label: ``ResNet-20`` of ``ResNet-20, 100 fine classes``."""
    return outcome.short.split(",")[0]


def points(diff: float) -> float:
    """An accuracy difference in percentage points."""
    return 100.0 * float(diff)


def signed(value: float) -> str:
    """``+4.6`` or ``-10.4``."""
    return f"+{value:.1f}" if value >= 0 else f"{value:.1f}"


def time_phrase(a: Outcome, b: Outcome) -> str:
    """``in 38% of the time`` / ``but took 2.6x as long`` (a relative to b), or '' without timings."""
    if not a.train_seconds or not b.train_seconds:
        return ""
    ratio = a.train_seconds / b.train_seconds
    if ratio <= 0.95:
        return f"in {ratio:.0%} of the time"
    if ratio >= 1.05:
        return f"but took {ratio:.1f}x as long"
    return "in about the same time"


def compare_pair(a: Outcome, b: Outcome, *, names: tuple[str, str]) -> str:
    """One sentence comparing two runs' best validation accuracy and time (a first, then b)."""
    diff = points(a.best_val_acc - b.best_val_acc)
    if abs(diff) < 0.5:
        return f"{names[0]} and {names[1]} tied ({a.best_val_acc:.3f} vs {b.best_val_acc:.3f})"
    if diff > 0:
        winner, loser, w, lo = names[0], names[1], a, b
    else:
        winner, loser, w, lo = names[1], names[0], b, a
    timing = time_phrase(w, lo)
    noise = noise_points(a, b)
    caveat = (f" — within the noise of {min(a.val_images, b.val_images)} validation images (±{noise:.1f} points), "
              "so not a real difference yet" if noise is not None and abs(diff) < noise else "")
    return (f"{winner} beat {loser} by {abs(diff):.1f} points ({w.best_val_acc:.3f} vs {lo.best_val_acc:.3f})"
            + (f", {timing}" if timing else "") + caveat)


def noise_points(a: Outcome, b: Outcome) -> float | None:
    """Two standard errors of the difference of two accuracies, in points (None without validation counts).

    Each accuracy measured on n images has a standard error sqrt(p(1-p)/n); a difference smaller
    than twice the combined error could well flip on another random seed or validation sample.
    """
    if not a.val_images or not b.val_images:
        return None
    var = sum(o.best_val_acc * (1 - o.best_val_acc) / o.val_images for o in (a, b))
    return points(2 * math.sqrt(var))


def ranking(outcomes: Iterable[Outcome]) -> str:
    """Runs from best to worst: ``ResNet-18 0.841 > AlexResNet 0.808 > ...``."""
    ordered = sorted(outcomes, key=lambda o: o.best_val_acc, reverse=True)
    return " > ".join(f"{o.short} {o.best_val_acc:.3f}" for o in ordered)


def noise_line(outcomes: Sequence[Outcome]) -> list[str]:
    """How big a difference must be to mean something, given the validation set size (one sentence or none)."""
    sized = [o for o in outcomes if o.val_images and o.best_val_acc is not None]
    if len(sized) < 2:
        return []
    n = min(o.val_images for o in sized)
    p = statistics.mean(o.best_val_acc for o in sized)
    margin = points(2 * math.sqrt(2 * p * (1 - p) / n))
    return [f"With {n:,} validation images, differences smaller than about {margin:.1f} points could be luck "
            "(two standard errors); a bigger run narrows that."]


def comparable(experiment: Experiment, outcome: Outcome) -> bool:
    """Whether a run can sit beside the published figures: same dataset (not a stand-in)."""
    return outcome.config.dataset == experiment.dataset


def published_lines(experiment: Experiment, outcomes: Sequence[Outcome]) -> list[str]:
    """How far each run sits from the published figure next to it (only like-for-like runs).

    A published test accuracy is compared with the run's test accuracy (evaluated once, on the
    best-validation weights); a published validation figure, or a run without a test set, with
    its best validation accuracy, and the sentence says which.
    """
    by = {o.key: o for o in outcomes if comparable(experiment, o)}
    parts, short = [], []
    for pub in experiment.published:
        o = by.get(pub.run_key) if pub.run_key else None
        if o is None or pub.value is None:
            continue
        value, split = o.figure(pub.split)
        words = "" if split == pub.split else " (validation: this run has no test set)"
        parts.append(f"{o.short} {split} {value:.3f} vs {pub.split} {pub.value:.3f} "
                     f"({signed(points(value - pub.value))}){words}")
        if value < pub.value:
            short.append(o)
    if not parts:
        return []
    # Reasons only for the runs that fell short: a full-data run that matched needs no excuse.
    reasons = []
    if any(o.config.subset for o in short):
        reasons.append("quick runs see far fewer images and epochs")
    elif any(o.config.epochs < 10 for o in short):
        reasons.append(f"runs of {min(o.config.epochs for o in short)} epochs, not the report's")
    if any(o.config.mode != "scratch" and o.config.init != IMAGENET for o in short):
        reasons.append("runs marked 'random init' or 'weights of run N' did not start from ImageNet weights")
    caveat = f" (expect to fall short: {'; '.join(reasons)})" if reasons else ""
    return ["Against the published figures: " + "; ".join(parts) + caveat + "."]


def majority_share(outcome: Outcome) -> tuple[str, float] | None:
    """(biggest class, its share of the validation images): what always guessing that class scores."""
    if not outcome.confusion:
        return None
    rows = [sum(row) for row in outcome.confusion]
    total = sum(rows)
    if not total:
        return None
    top = max(range(len(rows)), key=rows.__getitem__)
    name = outcome.classes[top] if top < len(outcome.classes) else f"class {top}"
    return name, rows[top] / total


def not_learned_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Flag runs that score no better than always guessing the biggest class (they learned nothing yet)."""
    stuck = []
    for o in outcomes:
        share = majority_share(o)
        if share and o.best_val_acc <= share[1] + 0.005:
            stuck.append((o, share))
    if not stuck:
        return []
    names = "; ".join(f"{o.short} ({o.best_val_acc:.3f})" for o, _ in stuck)
    cls, frac = stuck[0][1]
    return [f"No better than always answering '{cls}' ({frac:.3f} of the validation images): {names}. These runs "
            "have not learned anything yet: more epochs, a higher learning rate, or pretrained weights."]
