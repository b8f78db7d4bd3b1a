"""Running a DSE on Dask: points as independent tasks, results written as they finish.

`open_client` gives a `dask.distributed` client: a `LocalCluster` of N single-threaded worker
processes on this machine, or an existing cluster at `--scheduler`. `run_dse` submits one task
per (workload, shapes, mapping) that builds its cost plan (`evaluate.build_plan`) and one task per
unfinished point that depends on it, and appends each point's row to the results file as soon as
it arrives, in completion order. A worker that dies mid-task has its tasks (and any plan it held)
rerun elsewhere by the scheduler; the driver alone writes, once per point key, so the file holds
every point exactly once. Ctrl-C cancels what is left; the rows written so far stay valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import CascadeError
from .config import DseConfig
from .evaluate import Job, PlanRequest, build_plan, evaluate_direct, evaluate_with_plan
from .points import (
    enumerate_points,
    follows_parameters,
    formula_arguments,
    point_mapping,
    point_shapes,
    point_target_data,
    tile_symbols,
    uses_formulas,
)
from .store import ResultsStore, columns_for

INSTALL_HINT = "cascade dse runs on Dask: install it with pip install 'cascade[dse]' (dask.distributed)"


@dataclass
class Summary:
    points: int
    skipped: int = 0  # already in the file (--resume)
    written: int = 0
    refused: int = 0
    failed: list[str] = field(default_factory=list)  # keys whose task killed every worker it ran on
    plans: int = 0
    seconds: float = 0.0
    workers: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"points": self.points, "skipped": self.skipped, "written": self.written, "refused": self.refused,
                "failed": self.failed, "plans": self.plans, "seconds": self.seconds, "workers": self.workers}


def require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CascadeError(INSTALL_HINT) from None


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Any]:
    """A Dask client: to `scheduler` if given, else to a new LocalCluster of `workers` processes."""
    require_dask()
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise CascadeError(f"--scheduler {scheduler}: cannot connect ({exc}); start one with "
                               "'dask scheduler' and workers with 'dask worker ADDRESS'") from None
        with client:
            yield client
        return
    if workers < 1:
        raise CascadeError("--workers must be at least 1")
    with _workers_ignore_ctrl_c():
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started inside inherit SIGINT ignored (Python keeps an ignored SIGINT), so
    Ctrl-C on a terminal, which signals the whole process group, reaches only this process: it
    stops the run and closes the cluster, with no traceback from each worker."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def prepare_workers(client: Any) -> None:
    """Have every worker, present and future, import the cost model before its first task."""
    from .preload import PreloadCostModel

    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    register(PreloadCostModel())


def _plan_request(config: DseConfig, point, shapes, mapping, free: tuple[str, ...]) -> PlanRequest:
    """One plan per (workload, shapes, mapping family): tiles that follow a parameter stay free, so
    the family is keyed by the workload's tile spec (parameter names), not by this point's tiles."""
    w = point.workload
    family = (w.name, sorted(shapes.items()), w.mapping, sorted(w.tiles.items())) if free else \
        (w.name, sorted(shapes.items()), mapping)
    digest = hashlib.sha256(repr(family).encode()).hexdigest()[:12]
    return PlanRequest(f"{config.hash}-{digest}", w.spec_file, w.spec_text, shapes, mapping, config.target_file,
                       config.target_text, free)


def job_for(config: DseConfig, point: Any) -> tuple[Job, PlanRequest | None]:
    """A point's job, and the request for the plan it is evaluated from (None: costed directly)."""
    shapes, data, mapping = point_shapes(config, point), point_target_data(config, point), point_mapping(point)
    job = Job(point.key, point.workload.spec_file, point.workload.spec_text, shapes, mapping,
              config.target_file, data, {}, point.workload.search)
    if not uses_formulas(config, point.workload):
        return job, None
    tiles = tile_symbols(point)
    if follows_parameters(point.workload) and not tiles:  # tiles that do not nest: bind this mapping itself
        return job, None
    arguments = {**formula_arguments(data), **{f"tile:{t}": float(v) for t, v in tiles.items()}}
    return replace(job, arguments=arguments), _plan_request(config, point, shapes, mapping, tuple(sorted(tiles)))


def run_dse(config: DseConfig, results: str, client: Any, resume: bool = False,
            progress: Any = None, on_row: Callable[[dict[str, Any]], None] | None = None) -> Summary:
    """Every point of `config` not yet in `results`, on `client`'s cluster; rows appended as they come."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    start = time.perf_counter()
    prepare_workers(client)
    points = enumerate_points(config)
    names = [p.name for p in config.parameters]
    store = ResultsStore(results, columns_for(names, config.metrics), config.hash, resume)
    todo = [p for p in points if p.key not in store.done]
    summary = Summary(len(points), skipped=len(points) - len(todo),
                      workers=len(client.scheduler_info().get("workers", {})))
    by_key = {p.key: p for p in points}
    run = uuid.uuid4().hex[:8]
    plans: dict[str, Any] = {}
    futures = []
    try:
        for i, point in enumerate(todo):
            job, request = job_for(config, point)
            if request is not None:
                if request.key not in plans:
                    plans[request.key] = client.submit(build_plan, request, key=f"dse-plan-{run}-{len(plans)}")
                futures.append(client.submit(evaluate_with_plan, plans[request.key], job,
                                             key=f"dse-point-{run}-{i}"))
            else:
                futures.append(client.submit(evaluate_direct, job, key=f"dse-point-{run}-{i}"))
        summary.plans = len(plans)
        done = summary.skipped
        if progress is not None:
            progress.update(done)
        for future in as_completed(futures):
            try:
                row = future.result()
            except KilledWorker:
                summary.failed.append(todo[int(future.key.rsplit("-", 1)[1])].key)
                continue
            point = by_key[row["key"]]
            row.update(config_hash=config.hash, workload=point.workload.name, **point.params)
            store.append(row)
            summary.written += 1
            summary.refused += row["status"] == "refused"
            done += 1
            if progress is not None:
                progress.update(done)
            if on_row is not None:
                on_row(row)
    finally:
        for f in futures:
            f.cancel()
        for f in plans.values():
            f.cancel()
        store.close()
    summary.seconds = time.perf_counter() - start
    return summary
