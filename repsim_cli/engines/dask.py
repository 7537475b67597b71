"""The dask engine of the moment route: one task per row block, partial summaries tree-reduced.

``engine="dask"`` starts a :class:`distributed.LocalCluster` of single-threaded worker processes
on loopback (one per core), or ``scheduler="tcp://HOST:PORT"`` uses an existing cluster. Each
task opens the file itself and reads only its rows, so the path must be visible to every worker
(a shared or network file system, or the same machine). A task whose worker dies is rerun by
dask; a job that cannot finish raises :class:`RepsimError` and nothing is written.
dask[distributed] is an optional extra: ``pip install 'repsim-cli[dask]'``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from repsim_cli.engines.moments import Source, _check_sources, block_moments, default_block_rows, row_blocks
from repsim_cli.errors import RepsimError
from repsim_cli.metrics.moments import Moments


def require_dask() -> Any:
    """The ``distributed`` module, or one clear line saying what to install."""
    try:
        import distributed
    except ImportError:
        raise RepsimError("engine='dask' needs dask.distributed: pip install 'repsim-cli[dask]'") from None
    return distributed


def local_cluster(workers: int | None = None) -> Any:
    """A LocalCluster of single-threaded worker processes on loopback (one per core by default)."""
    import os

    distributed = require_dask()
    n = workers or os.cpu_count() or 1
    return distributed.LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )


def _merge2(a: Moments, b: Moments) -> Moments:
    return a.merge(b)


def tree_reduce(client: Any, futures: list[Any], merge: Callable[[Any, Any], Any] = _merge2) -> Any:
    """Pairwise reduction of futures on the cluster (depth log2 of the number of blocks)."""
    level = list(futures)
    while len(level) > 1:
        nxt = [client.submit(merge, level[i], level[i + 1], pure=False, retries=2) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def dask_moments(
    sources: Sequence[Source],
    client: Any,
    block_rows: int | None = None,
    task: Callable[[Sequence[Source], int, int], Moments] = block_moments,
) -> Moments:
    """Moments of the layers with one task per row block on a dask cluster (each task reads its rows).

    A task whose worker dies is rerun elsewhere by dask (its partial summary is recomputed, never
    counted twice: partials are futures, merged once each); if the job cannot finish, a RepsimError.
    """
    n = _check_sources(sources)
    blocks = row_blocks(n, block_rows or default_block_rows(sources))
    srcs = list(sources)
    futures = [client.submit(task, srcs, a, b, pure=False, retries=2) for a, b in blocks]
    try:
        return tree_reduce(client, futures).result()
    except RepsimError:
        raise
    except Exception as exc:  # a worker died too often, the scheduler went away, ...
        raise RepsimError(f"the dask job did not finish ({type(exc).__name__}: {exc}); no result was written") from exc


def connect(scheduler: str | None, workers: int | None = None) -> tuple[Any, Any]:
    """(client, cluster or None): an existing scheduler (``tcp://HOST:PORT``) or a new LocalCluster."""
    distributed = require_dask()
    try:
        if scheduler:
            return distributed.Client(scheduler, timeout="5s"), None
        cluster = local_cluster(workers)
        return distributed.Client(cluster), cluster
    except RepsimError:
        raise
    except Exception as exc:
        where = scheduler or "a local cluster"
        raise RepsimError(f"cannot connect to {where} ({type(exc).__name__}: {exc})") from exc


def require_files(sources: Sequence[Source]) -> None:
    """Workers read the files themselves: in-memory arrays cannot go to a cluster."""
    memory = [s.label for s in sources if s.kind == "memory"]
    if memory:
        raise RepsimError(
            f"engine='dask' reads files on the workers; {memory[0]} is an in-memory array (save it to a file, or use the local engine)"
        )
