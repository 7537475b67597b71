"""Options shared by ``compare`` and ``heatmap`` for large data: streaming, memory budget, engines."""

from __future__ import annotations

import typer

StreamOpt: bool | None = typer.Option(
    None,
    "--stream/--no-stream",
    help="Read the files once in row blocks into merged first and second moments (memory O(F^2 + one block)); "
    "every metric with a moment route streams (see `repsim metrics`: cka/hsic linear, cka:minibatch=B, cca, svcca, "
    "pwcca, lr, procrustes, meanmax/matched pearson). Default: automatic when the layers would not fit in --max-memory.",
)
EngineOpt: str = typer.Option(
    "local",
    "--engine",
    help="local, or dask: row blocks become tasks on a dask.distributed cluster (a new LocalCluster of --workers "
    "processes on loopback, or --scheduler). Each worker opens the files itself: the paths must be readable by the "
    "workers. Needs pip install 'repsim-cli[dask]'.",
)
SchedulerOpt: str | None = typer.Option(
    None, "--scheduler", help="With --engine dask: an existing cluster's scheduler, tcp://HOST:PORT (files at the same paths on every worker)."
)
WorkersOpt: int | None = typer.Option(None, "--workers", help="With --engine dask and no --scheduler: local worker processes (default: one per core).")
BlockRowsOpt: int | None = typer.Option(
    None, "--block-rows", help="Rows per block when streaming (default: about 64 MiB of float64 rows, within --max-memory)."
)
MaxMemoryOpt: str | None = typer.Option(
    None, "--max-memory", help="Memory budget: 4G, 512M, or a number of GiB (default: a quarter of physical RAM); above it, moment metrics stream."
)
ShuffleRowsOpt: bool = typer.Option(
    False, "--shuffle-rows", help="Minibatch CKA (cka:minibatch=B) batches the rows in a random order seeded by --seed, instead of consecutively."
)
