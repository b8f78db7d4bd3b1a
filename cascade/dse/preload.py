"""A Dask worker plugin that imports sympy and the cost model when a worker starts (and when a
restarted one joins), before it runs any task: a worker deserialises data on one thread while it
runs a task on another, and sympy imported for the first time on two threads at once can fail
(`module 'sympy' has no attribute 'polys'`). Imported only where dask.distributed is installed."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin


class PreloadCostModel(WorkerPlugin):
    name = "cascade-dse-preload"

    def setup(self, worker) -> None:
        import importlib

        for module in ("sympy", "numpy", "yaml", "cascade.api", "cascade.model.symbolic", "cascade.model.spatial",
                       "cascade.search", "cascade.dse.evaluate"):
            importlib.import_module(module)
