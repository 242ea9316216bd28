"""The passes of ``sdo evaluate``: each policy run over an event log, offline.

Theory of operation
-------------------
One streaming pass over the log per policy. Each pass feeds every event, in log order,
to a fresh :class:`sdo.domain.world.World` — the same code the live worker runs, so the
recommendations are the ones the live system would have made. In open loop the logged
deployments are applied too (they are what really happened: officers went en route), so
each policy is judged against the same unfolding day, and its attendance is an estimate
(the time until its first recommendation naming an officer, plus that officer's ETA). In
closed loop (:mod:`sdo.evaluation.closed_loop`) the policy's own recommendations are
carried out instead and attendance is observed. A :class:`~sdo.evaluation.figures.Metrics`
accumulator watches the World's outputs; nothing holds the log in memory. The command
around the passes is :mod:`sdo.evaluation.command`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sdo.admission import DEFAULT_MAX_AHEAD_S, Admission
from sdo.config import Settings
from sdo.domain.recommend import POLICIES, Policy
from sdo.domain.world import World
from sdo.errors import BadInput, ConfigError
from sdo.evaluation.figures import (
    PAIRED,
    RECORDED,
    Metrics,
    compare,
    local_hour,
)
from sdo.evaluation.timing import Timing
from sdo.events import (
    Fix,
    Incident,
    encode,
)
from sdo.progress import REFRESH_S

if TYPE_CHECKING:
    from sdo.domain.geo import Areas
    from sdo.domain.grading import Rules

__all__ = [
    "PassMode",
    "PassProgress",
    "PolicySpec",
    "compare",
    "default_jobs",
    "evaluate",
    "local_hour",
]

#: How a pass reports its progress: (policy, fraction of the log file read, events applied,
#: seconds since the pass began, whether it has ended). Called after every block of the log
#: read (about a megabyte), and once more at the end.
PassProgress = Callable[[str, float, int, float, bool], None]

#: The longest name a policy may have in a recommendation (``PolicyRef.name``, an ``Id``).
_LABEL_MAX: Final = 128


@dataclass(frozen=True)
class PolicySpec:
    """One ``--policy``: ``NAME`` (one of :data:`POLICIES`), run with the evaluation's
    rules, or ``NAME@RULES``, a variant of it run with the rules file ``RULES`` (grading
    and recommendation settings both) and labelled ``NAME@STEM`` by the file's name, e.g.
    ``thrive@faster`` for ``thrive@rules/faster.json``: what an evaluator asks when
    weighing a change to the rules against the rules in force."""

    label: str  # what metrics.json, the report and the recommendations call it
    name: str
    rules: Path | None = None  # None: the evaluation's (``--rules``)
    #: ``recorded``: not a policy but the log's own deployments, measured as they happened
    recorded: bool = False

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        name, at, path = text.partition("@")
        if text == RECORDED:
            return cls(RECORDED, "thrive", recorded=True)
        if name not in POLICIES:
            raise ConfigError(
                f"unknown policy {name!r}; known: {', '.join([*POLICIES, RECORDED])} "
                "(a variant with its own rules: NAME@RULES_FILE)"
            )
        if not at:
            return cls(name, name)
        if not path:
            raise ConfigError(f"--policy {text}: a rules file must follow the @")
        rules = Path(path)
        label = f"{name}@{rules.stem.strip()}"
        if len(label) > _LABEL_MAX:
            raise ConfigError(
                f"--policy {text}: a variant is called {name}@ and its rules file's name, "
                f"at most {_LABEL_MAX} characters: give the file a shorter name"
            )
        return cls(label, name, rules)

    def load(self, settings: Settings) -> tuple[Rules, Policy]:
        """The grading rules and the policy this pass runs with (a variant's policy
        carries its label into its recommendations)."""
        from sdo.grade import load_rules  # noqa: PLC0415

        rules = load_rules(self.rules or settings.rules_path)
        label = "" if self.rules is None else self.label
        return rules, Policy.from_mapping(self.name, rules.recommend, label)


def specs_of(policies: Iterable[str | PolicySpec]) -> list[PolicySpec]:
    specs = [p if isinstance(p, PolicySpec) else PolicySpec.parse(p) for p in policies]
    labels = [s.label for s in specs]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        if "@" not in twice:
            raise ConfigError("each --policy may be given once")
        raise ConfigError(
            f"two --policy are both called {twice!r}: a variant is called by its rules "
            "file's name, so give the files different names"
        )
    return specs


@dataclass(frozen=True)
class PassMode:
    """How a pass runs: open loop (the log's deployments applied; attendance estimated) or
    closed (:mod:`sdo.evaluation.closed_loop`: the policy's own, carried out with
    ``timing``); ``attends``: the only incidents the policy is given (None: all)."""

    closed: bool = False
    timing: Timing = field(default_factory=Timing)
    attends: frozenset[str] | None = None


def evaluate(
    log: Path,
    settings: Settings,
    policies: list[str] | list[PolicySpec],
    *,
    sink: Any = None,
    on_invalid: Any = None,
    lane: bool = True,
    lane_stats: dict[str, dict[str, Any]] | None = None,
    jobs: int = 1,
    progress: PassProgress | None = None,
    paired: dict[str, dict[str, list[Any]]] | None = None,
    closed_loop: bool = False,
    timing: Timing | None = None,
    attended: frozenset[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run each policy over ``log``; write every recommendation to ``sink`` (a binary file),
    policy after policy. A policy is a :class:`PolicySpec` or its text (``thrive``,
    ``thrive@RULES``); the results are keyed by its label.

    ``lane``: plain AVL fixes go through the compiled fix lane (:mod:`sdo.domain.lane`);
    without it, every line is decoded and applied in Python. The results are the same.
    ``lane_stats`` receives, per policy, the fixes the lane applied (and how many of them
    into another neighbourhood) and the lines it refused, by reason
    (:data:`sdo.domain.lane.REASONS`). ``on_invalid(lineno, reason)`` hears of each line
    skipped (once, in the first policy's pass).

    ``jobs`` > 1 runs up to that many passes at once, each in a process of its own (a
    pass is one core's work): each writes its recommendations to a file of its own, copied
    to ``sink`` in policy order, so the results and the bytes are the same as one by one;
    ``on_invalid`` then hears of the skipped lines when the first pass has ended.

    ``progress`` (see :data:`PassProgress`) hears how each pass is getting on; passes in
    other processes are looked at every :data:`sdo.progress.REFRESH_S`.

    ``paired`` receives, per policy, its figures per graded incident (ids, grade,
    estimated attendance, sent off response officers), for :func:`compare`.

    ``closed_loop``: each policy's recommendations are carried out (:class:`PassMode`)
    with ``timing`` (default: the calibrated one); ``recorded`` always runs open loop.
    ``attended``: the incidents the log's own deployments sent someone to, to which
    ``closest`` is restricted (the status quo attends those only; None or empty: all).
    """
    specs = specs_of(policies)
    modes = [_mode(spec, closed_loop, timing, attended) for spec in specs]
    if jobs > 1 and len(specs) > 1:
        results = _evaluate_in_parallel(
            log, settings, specs, modes, sink, on_invalid, lane, lane_stats, jobs, progress
        )
        return _take_paired(results, paired)
    from sdo.areas import load_areas  # noqa: PLC0415 (keep `sdo evaluate --help` fast)

    areas = load_areas(settings.areas_path)
    results = {}
    for n, (spec, mode) in enumerate(zip(specs, modes, strict=True)):
        rules, policy = spec.load(settings)
        results[spec.label], stats = _one_pass(
            log,
            areas,
            rules,
            policy,
            sink,
            on_invalid if n == 0 else None,
            lane,
            progress,
            spec,
            mode,
            settings.max_ahead_s,
        )
        if lane_stats is not None and stats is not None:
            lane_stats[spec.label] = stats
    return _take_paired(results, paired)


def _mode(
    spec: PolicySpec, closed: bool, timing: Timing | None, attended: frozenset[str] | None
) -> PassMode:
    attends = attended if spec.name == "closest" and not spec.recorded and attended else None
    return PassMode(closed and not spec.recorded, timing or Timing(), attends)


def _take_paired(
    results: dict[str, dict[str, Any]], paired: dict[str, dict[str, list[Any]]] | None
) -> dict[str, dict[str, Any]]:
    for name, metrics in results.items():
        figures = metrics.pop(PAIRED)
        if paired is not None:
            paired[name] = figures
    return results


def default_jobs(policies: int) -> int:
    """How many passes ``sdo evaluate`` runs at once by default: one per policy, up to the
    number of CPUs."""
    return min(policies, os.cpu_count() or 1)


def _one_pass(
    log: Path,
    areas: Areas,
    rules: Rules,
    policy: Policy,
    sink: Any,
    on_invalid: Any,
    lane: bool,
    progress: PassProgress | None = None,
    spec: PolicySpec | None = None,
    mode: PassMode | None = None,
    max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One policy's pass: its metrics, and the lane's stats (None without the lane).

    Every event passes the admission rule the worker and the console apply
    (:mod:`sdo.admission`; the force area is the World's to check here, counted as
    rejected as the worker's dead letters are)."""
    from sdo.evaluation.closed_loop import ClosedLoop, drive  # noqa: PLC0415
    from sdo.evaluation.replay import read_log  # noqa: PLC0415

    mode = mode or PassMode()
    recorded = spec is not None and spec.recorded
    name = RECORDED if recorded else policy.shown
    world = World(areas, rules, policy)
    metrics = Metrics(
        name,
        thrive_routing=policy.name != "closest" and not recorded,
        observed=recorded or mode.closed,
        recorded=recorded,
        loop=ClosedLoop(mode.timing) if mode.closed else None,
    )
    reader = read_log(log, on_invalid)
    start = time.perf_counter()
    tick = None
    if progress is not None:
        report = progress

        def tick() -> None:
            report(name, reader.fraction, metrics.events, time.perf_counter() - start, False)

    attends = mode.attends
    loop = metrics.loop

    def admit(item: Any) -> Any | None:
        if attends is not None and type(item) is Incident and item.incident_id not in attends:
            return None
        return item if loop is None else loop.admit(item)

    admission = Admission(max_ahead_s=max_ahead_s)
    step = functools.partial(_step, admission=admission)
    try:
        with _fewer_collections():
            stats = drive(
                world,
                metrics,
                reader,
                sink,
                step,
                admit,
                loop,
                lane=lane,
                tick=tick,
                window_us=admission.window_us(),
            )
    finally:
        reader.close()
    # deployments still waiting for an incident the log never brought: not applied
    for _, why in world.give_up_waiting():
        metrics.reject(why, counted=True)
    metrics.invalid = reader.skipped
    if progress is not None:
        progress(name, 1.0, metrics.events, time.perf_counter() - start, True)
    return metrics.finish(), stats


#: The cyclic collector's first threshold during a pass (Python's default is 700).
GC_THRESHOLD: Final = 100_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run a pass with the cyclic garbage collector called less often.

    A pass allocates millions of short-lived objects (records, recommendations) and
    makes almost no reference cycles, so at the default threshold the collector runs
    about every 2,000 log lines and finds next to nothing to free (its rarer full
    collections scan the whole World, which grows with the log). Raising the first
    threshold to ``GC_THRESHOLD`` took about 4% off a pass over the bench's week log,
    under either policy, at the same peak memory. What an earlier pass left is
    collected first (a process may run several); cycles are still collected during the
    pass, in bigger batches; the thresholds are restored after.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _evaluate_in_parallel(
    log: Path,
    settings: Settings,
    specs: list[PolicySpec],
    modes: list[PassMode],
    sink: Any,
    on_invalid: Any,
    lane: bool,
    lane_stats: dict[str, dict[str, Any]] | None,
    jobs: int,
    progress: PassProgress | None,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate`'s passes in processes of their own (see there)."""
    import multiprocessing  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait  # noqa: PLC0415

    # spawn: a fresh interpreter, not a fork of one that may hold threads and locks
    context = multiprocessing.get_context("spawn")
    # each pass's progress, _SLOT numbers from its slot on (written by its process alone)
    shared = context.Array("d", _SLOT * len(specs), lock=False)
    with (
        tempfile.TemporaryDirectory(prefix="sdo-evaluate-") as tmp,
        ProcessPoolExecutor(
            max_workers=min(jobs, len(specs)),
            mp_context=context,
            initializer=_share_progress,
            initargs=(shared,),
        ) as pool,
    ):
        outs = [None if sink is None else Path(tmp) / f"{n}.jsonl" for n in range(len(specs))]
        futures = [
            pool.submit(
                _pass_in_process,
                log,
                settings,
                spec,
                mode,
                out,
                n == 0,
                lane,
                None if progress is None else n,
            )
            for n, (spec, mode, out) in enumerate(zip(specs, modes, outs, strict=True))
        ]
        names = [spec.label for spec in specs]
        if progress is not None:
            told: set[str] = set()
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=REFRESH_S, return_when=FIRST_EXCEPTION)
                for n, name in enumerate(names):
                    fraction, events, seconds, ended = shared[_SLOT * n : _SLOT * (n + 1)]
                    if name not in told and seconds > 0:
                        progress(name, fraction, int(events), seconds, bool(ended))
                        if ended:
                            told.add(name)
                if any(f.done() and f.exception() is not None for f in futures):
                    break  # its result() below raises it
        results = {}
        for name, out, future in zip(names, outs, futures, strict=True):
            results[name], stats, skipped = future.result()
            if on_invalid is not None:
                for lineno, reason in skipped:
                    on_invalid(lineno, reason)
            if lane_stats is not None and stats is not None:
                lane_stats[name] = stats
            if out is not None:
                with out.open("rb") as part:
                    shutil.copyfileobj(part, sink, 1 << 20)
                out.unlink()
    return results


#: Numbers per pass in the shared progress array: fraction, events, seconds, ended.
_SLOT: Final = 4
#: The shared progress array, in a worker process (set by :func:`_share_progress`).
_SHARED: list[Any] = []


def _share_progress(shared: Any) -> None:
    _SHARED[:] = [shared]


def _pass_in_process(
    log: Path,
    settings: Settings,
    spec: PolicySpec,
    mode: PassMode,
    out: Path | None,
    report: bool,
    lane: bool,
    slot: int | None,
) -> tuple[dict[str, Any], dict[str, Any] | None, list[tuple[int, str]]]:
    """One pass in a worker process: metrics, lane stats, and (if ``report``) the lines
    skipped; the recommendations go to ``out``; its progress to the shared array's
    ``slot`` (None: not watched)."""
    from sdo.areas import load_areas  # noqa: PLC0415

    skipped: list[tuple[int, str]] = []
    on_invalid = (lambda n, why: skipped.append((n, why))) if report else None
    areas = load_areas(settings.areas_path)
    rules, policy = spec.load(settings)
    progress = None
    if slot is not None and _SHARED:
        shared, at = _SHARED[0], _SLOT * slot

        def progress(_: str, fraction: float, events: int, seconds: float, ended: bool) -> None:
            shared[at : at + _SLOT] = (fraction, float(events), seconds, float(ended))

    ahead = settings.max_ahead_s
    if out is None:
        metrics, stats = _one_pass(
            log, areas, rules, policy, None, on_invalid, lane, progress, spec, mode, ahead
        )
    else:
        with out.open("wb") as sink:
            metrics, stats = _one_pass(
                log, areas, rules, policy, sink, on_invalid, lane, progress, spec, mode, ahead
            )
    return metrics, stats, skipped


def _step(
    world: World, metrics: Metrics, event: Any, sink: Any, admission: Admission | None = None
) -> None:
    """Admit (:mod:`sdo.admission`) and apply one item of :meth:`LogReader.items` (a model,
    or a plain fix's fields)."""
    if admission is not None:
        try:
            admission.event(event)
        except BadInput as exc:
            metrics.reject(exc.reason)
            return
    if metrics.first_ts is None:
        # (with the lane too, the log's first event comes here: the World knows no
        # officer yet, so the lane applies none of their fixes)
        metrics.first_ts = event.ts
    if type(event) is Fix:
        # Nearly every event: applied from the line's fields when it can only move the
        # officer (no outputs, nothing else to count); else its model.
        if world.plain_fix(event.officer_id, event.ts, event.event_id, event.lon, event.lat):
            metrics.events += 1
            metrics.last_ts = event.ts
            return
        event = event.model()
    metrics.before(world, event)
    try:
        effects = world.apply(event)
    except BadInput as exc:
        metrics.reject(exc.reason)
        return
    for _, why in effects.refused:  # (waited for an incident that did not come)
        metrics.reject(why, counted=True)
    metrics.after(world, event, effects.outputs)
    if sink is not None:
        for rec in effects.recommendations:
            sink.write(encode(rec) + b"\n")
