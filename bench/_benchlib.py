"""Shared machinery of the benchmarks: child processes, timing, the results table.

Every measurement runs in a fresh spawned process so that its peak memory
(VmHWM) is its own; each benchmark checks agreement before it reports.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import shutil
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


def arguments(doc, workdir, quick_help, argv=None, extra=()):
    """Parse a benchmark's command line: --workdir, --quick, --record and ``extra`` (name, kwargs) options.

    The work directory is emptied (created) before the run.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=workdir, help=f"scratch directory (default {workdir})")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    for name, options in extra:
        parser.add_argument(name, **options)
    args = parser.parse_args(argv)
    if os.path.exists(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    return args


def peak_mb():
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss it restarts at exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def best_of(call, repeat):
    """(best time, first time, result) of ``call`` run ``repeat`` times."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), times[0], result


def _child(queue, func, args):
    warnings.simplefilter("ignore")
    try:
        result = func(*args)
        queue.put(("ok", result, peak_mb()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}", peak_mb()))


def in_child(func, *args):
    """Run func(*args) in a spawned process; returns (result, peak RSS in MB)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, func, args))
    proc.start()
    status, result, peak = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{func.__name__} failed: {result}")
    return result, peak


class Table:
    """Rows of (task, starpix time, peer time, peaks, note), printed and recorded."""

    def __init__(self, script, peer_name, peer_version):
        self.script, self.peer, self.peer_version = script, peer_name, peer_version
        self.rows = []

    def add(self, task, t_star, t_peer, m_star=float("nan"), m_peer=float("nan"), note=""):
        ratio = t_peer / t_star if t_star else float("nan")
        self.rows.append((task, t_star, t_peer, ratio, m_star, m_peer, note))
        print(f"  {task}: starpix {t_star:.4f} s, {self.peer} {t_peer:.4f} s, x{ratio:.1f}", flush=True)

    def markdown(self, setup, agreement, quick=False):
        import starpix

        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        except (ValueError, OSError):
            mem = float("nan")
        machine = (f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, Python "
                   f"{platform.python_version()}, starpix {starpix.__version__}, {self.peer} {self.peer_version}")
        lines = [
            f"### bench/{self.script} — {datetime.date.today().isoformat()}{' (quick)' if quick else ''}",
            "",
            f"Machine: {machine}. {setup}",
            "",
            f"| task | starpix (s) | {self.peer} (s) | speed-up | starpix peak RSS (MB) | {self.peer} peak RSS (MB) "
            "| note |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]

        def mb(value):
            return "–" if value != value else f"{value:.0f}"

        for task, ts, tp, ratio, ms, mp, note in self.rows:
            peer_time = "–" if tp != tp else f"{tp:.4f}"  # NaN: a row with no peer to compare with
            speed_up = "–" if ratio != ratio else f"{ratio:.1f}x"
            lines.append(f"| {task} | {ts:.4f} | {peer_time} | {speed_up} | {mb(ms)} | {mb(mp)} | {note} |")
        lines += ["", agreement]
        return "\n".join(lines)

    def finish(self, setup, agreement, *, quick=False, record=False):
        """Print the table and, with ``record``, append it to bench/RESULTS.md."""
        text = self.markdown(setup, agreement, quick=quick)
        print()
        print(text)
        if record:
            with open(os.path.join(HERE, "RESULTS.md"), "a") as handle:
                handle.write("\n" + text + "\n")
        return text
