"""Run many independent jobs (stars, targets, files, tiles) one way for every batch API.

:func:`map_jobs` applies a function to every item of a list and returns the
results in the order of the items.  Where the work runs is one argument,
``executor``:

* ``None`` (or ``'serial'``): in this process, one item after the other;
* ``'processes'``: on a pool of local worker processes
  (:class:`concurrent.futures.ProcessPoolExecutor`), items sent in chunks of
  ``chunksize``;
* an object with the :class:`concurrent.futures.Executor` interface
  (``submit`` returning futures with ``result()``), for example a
  ``concurrent.futures.ThreadPoolExecutor`` you already hold.

* a Dask ``distributed.Client`` (local processes, an HPC job queue,
  Kubernetes): chunks are submitted as Dask tasks (``pure=False``); Dask
  re-runs the tasks of a worker that dies, so a run survives a lost worker.

Work is streamed: at most ``window`` chunks are in flight at once (default
about two per worker), results are taken back in item order, and
:func:`imap_jobs` hands them to the caller one by one, so the client holds
only a bounded number of results.  Batch APIs send names of files (workers
memory-map them and read only what they need), not pixels.

:func:`open_executor` turns the command line's ``--jobs N`` and
``--scheduler ADDRESS`` into an executor; Dask is imported only there, or
when a Client is passed in, so it stays an optional dependency.

The jobs must be independent and deterministic (every random draw takes its
seed from the item), so the results are identical whatever the executor.
Functions and items sent to processes must be picklable: a module-level
function, and items that are small (positions, file names) rather than large
arrays -- workers should re-open large inputs by path (memory-mapped), not
receive them pickled.
"""

from __future__ import annotations

import contextlib
import os

from ._progress import progress
from .errors import InvalidParameterError

__all__ = ["map_jobs", "imap_jobs", "EXECUTORS", "default_chunksize", "open_executor", "executor_workers",
           "is_dask_client"]

#: Executor kinds accepted by name.
EXECUTORS = ("serial", "processes")


def default_chunksize(n_items, n_workers):
    """Chunk size giving each worker about four chunks: few round trips, still balanced."""
    if n_items <= 0:
        return 1
    return max(1, -(-n_items // (4 * max(1, n_workers))))


def _run_chunk(func, chunk):
    return [func(item) for item in chunk]


def _chunks(items, size):
    return [items[start:start + size] for start in range(0, len(items), size)]


def _workers(max_workers):
    if max_workers is None:
        return os.cpu_count() or 1
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidParameterError(f"max_workers: expected a positive integer, got {max_workers!r}")
    return max_workers


def is_dask_client(obj):
    """True for a ``dask.distributed.Client`` (checked without importing Dask)."""
    return any(cls.__name__ == "Client" and cls.__module__.split(".")[0] == "distributed"
               for cls in type(obj).__mro__)


def executor_workers(executor, max_workers=None):
    """How many jobs ``executor`` runs at once (a Client: its workers' threads)."""
    if executor is None or executor == "serial":
        return 1
    if is_dask_client(executor):
        try:
            threads = sum(executor.nthreads().values())
        except Exception:  # noqa: BLE001 - a scheduler that does not answer: guess
            threads = 0
        return max(1, threads)
    if executor == "processes":
        return _workers(max_workers)
    return max(1, getattr(executor, "_max_workers", None) or _workers(max_workers))


def _check_executor(executor):
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise InvalidParameterError(
                f"executor: expected one of {', '.join(EXECUTORS)}, None, a dask.distributed.Client or an "
                f"Executor, got {executor!r}")
        return None if executor == "serial" else executor
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidParameterError(
            f"executor: expected one of {', '.join(EXECUTORS)}, None, a dask.distributed.Client or an object "
            f"with submit(), got {type(executor).__name__}")
    return executor


def _check_positive(value, name):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")


def map_jobs(func, items, *, executor=None, max_workers=None, chunksize=None, progress_bar=False,
             desc=None, mp_context=None, window=None):
    """Apply ``func`` to every item; results in the order of ``items``.

    Parameters
    ----------
    func : callable
        ``func(item) -> result``.  For ``'processes'`` and Dask it must be
        picklable (a module-level function or a ``functools.partial`` of one).
    items : iterable
        The jobs' inputs (read into a list first).
    executor : None, 'serial', 'processes', dask.distributed.Client or concurrent.futures.Executor
        Where to run: this process (None, 'serial'), a new pool of local
        processes closed at the end ('processes'), a Dask cluster (a Client;
        left open), or an executor you hold (anything with ``submit``; it is
        not shut down).
    max_workers : int, optional
        Processes of the 'processes' pool; default: the number of CPUs,
        never more than the number of chunks.
    chunksize : int, optional
        Items per submitted task (default :func:`default_chunksize`: about
        four chunks per worker).  Ignored when serial.
    progress_bar : bool
        Show a tqdm bar counting items.
    desc : str, optional
        Label of the progress bar.
    mp_context : str, optional
        Start method of the 'processes' workers: 'forkserver' (default on
        POSIX: safe in a process that already runs threads, e.g. numba's),
        'spawn' (default elsewhere) or 'fork' (fastest to start, but unsafe
        when the parent runs threads).  Workers import the function's module
        afresh except with 'fork'.
    window : int, optional
        Most chunks submitted and not yet taken back (default: two per
        worker, at least 4): bounds what waits on the client.

    Returns
    -------
    list
        ``[func(item) for item in items]``, whatever the executor.

    Raises
    ------
    InvalidParameterError
        An unknown executor name, or a bad ``max_workers`` / ``chunksize`` /
        ``window``.  An exception raised by ``func`` is re-raised as it is
        (the first one in item order); the remaining jobs are cancelled.
    """
    return list(imap_jobs(func, items, executor=executor, max_workers=max_workers, chunksize=chunksize,
                          progress_bar=progress_bar, desc=desc, mp_context=mp_context, window=window))


def imap_jobs(func, items, *, executor=None, max_workers=None, chunksize=None, progress_bar=False,
              desc=None, mp_context=None, window=None):
    """Like :func:`map_jobs`, but yield the results one by one, in item order.

    Only ``window`` chunks are in flight at once, so a caller that consumes
    each result (writes it, adds it to an accumulator) holds a bounded
    number of them whatever the number of items.  The arguments are checked
    when the call is made, before the first result is asked for.
    """
    items = list(items)
    _check_positive(chunksize, "chunksize")
    _check_positive(window, "window")
    executor = _check_executor(executor)
    if executor == "processes" or executor is None:
        workers = _workers(max_workers)
    else:
        _workers(max_workers)  # checked, unused
        workers = executor_workers(executor)
    context = None
    if executor == "processes":
        import multiprocessing

        method = mp_context or ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                else "spawn")
        try:
            context = multiprocessing.get_context(method)
        except ValueError:
            raise InvalidParameterError(f"mp_context: unknown start method {method!r}") from None
    return _generate(func, items, executor, workers, chunksize, progress_bar, desc, context, window)


def _generate(func, items, executor, workers, chunksize, progress_bar, desc, context, window):
    if executor is None or not items:
        with progress(items, enabled=progress_bar, desc=desc, unit="job") as bar:
            for item in bar:
                yield func(item)
        return
    size = chunksize or default_chunksize(len(items), workers)
    chunks = _chunks(items, size)
    window = window or max(4, 2 * workers)
    if executor == "processes":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            yield from _collect(pool, func, chunks, len(items), progress_bar, desc, window)
        return
    yield from _collect(executor, func, chunks, len(items), progress_bar, desc, window)


def _submit(pool, func, chunk):
    if is_dask_client(pool):
        return pool.submit(_run_chunk, func, chunk, pure=False)
    return pool.submit(_run_chunk, func, chunk)


def _collect(pool, func, chunks, total, progress_bar, desc, window):
    """Submit chunks in a sliding window; yield results in submission (= item) order."""
    from collections import deque

    pending = deque()
    upcoming = iter(chunks)
    try:
        with progress(total=total, enabled=progress_bar, desc=desc, unit="job") as bar:
            for chunk in upcoming:
                pending.append(_submit(pool, func, chunk))
                if len(pending) >= window:
                    break
            while pending:
                part = pending.popleft().result()
                for chunk in upcoming:  # refill before handing results out
                    pending.append(_submit(pool, func, chunk))
                    break
                bar.update(len(part))
                yield from part
    except BaseException:
        for future in pending:
            future.cancel()
        raise


@contextlib.contextmanager
def open_executor(jobs=None, scheduler=None):
    """The executor that ``--jobs N`` / ``--scheduler ADDRESS`` ask for, closed on exit.

    Parameters
    ----------
    jobs : int, optional
        Local worker processes; None or 1: serial.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); a Client
        to it is opened and closed on exit (the cluster is left running).

    Yields
    ------
    (executor, max_workers)
        To pass on as ``executor=..., max_workers=...``.
    """
    if jobs is not None and scheduler is not None:
        raise InvalidParameterError("--jobs and --scheduler: give one or the other, not both")
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise InvalidParameterError(
                f"--scheduler {scheduler}: needs dask.distributed (pip install 'starpix[dask]')") from None
        try:
            client = Client(scheduler, timeout=20, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a bad address
            raise InvalidParameterError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client, None
        finally:
            client.close()
        return
    if jobs is None or jobs == 1:
        yield None, None
        return
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidParameterError(f"--jobs: expected a positive integer, got {jobs!r}")
    yield "processes", jobs
