"""Where the trials of a sweep run: local processes (default), Ray (optional), or inline.

Every back end runs :func:`ccdgen.selection.cv.execute_trial` on the same inputs — a
:class:`~ccdgen.selection.cv.TrialTask` and the FeatureSet of its order — and hands each
finished record to the driver, which alone writes the trial log.  Features are computed
once by the driver and travel once per worker (local: a pickle per order that each worker
reads once) or once per sweep (Ray: ``ray.put`` into the object store, read zero-copy by
every task), never once per trial.

* :class:`LocalBackend` — a ``spawn`` process pool on this machine, ``CPU count //
  cpus_per_trial`` processes (both cores of a 2-core machine).
* :class:`RayBackend` — ``pip install ccdgen[ray]``; a local Ray instance, or a cluster at
  ``address``.  Each trial is a Ray task that declares ``num_cpus`` and ``num_gpus``, so
  Ray places it; the driver keeps as many in flight as the cluster has room for.
* :class:`InlineBackend` — in this process, one after the other (debugging, tests).

Interrupting the driver (Ctrl-C, or an exception from a callback) cancels what is still
queued and stops the workers; records already handed over are in the log.
"""

from __future__ import annotations

import os
import time

from ..errors import ModelError
from ..system import cpu_count

BACKENDS = ("local", "ray", "inline")


class Backend:
    """Interface: ``run(tasks, features, on_result, on_start)`` — ``features`` {order:
    FeatureSet}; ``on_start(task)`` when a task is handed to a worker, ``on_result(task,
    record)`` when it is finished (in the driver, in completion order)."""

    name = "backend"

    def describe(self) -> str:
        return self.name

    def run(self, tasks, features, on_result, on_start=None) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def make_backend(backend="local", *, workers=None, address=None, cpus_per_trial=1, gpus_per_trial=0) -> Backend:
    """A back end by name ("local", "ray", "inline") or the instance given."""
    if isinstance(backend, Backend):
        return backend
    if backend == "local":
        return LocalBackend(workers=workers, cpus_per_trial=cpus_per_trial)
    if backend == "ray":
        return RayBackend(address=address, num_cpus=workers, cpus_per_trial=cpus_per_trial,
                          gpus_per_trial=gpus_per_trial)
    if backend == "inline":
        return InlineBackend()
    raise ModelError(f"unknown back end {backend!r}", fix=f"use one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------- inline
class InlineBackend(Backend):
    """Trials in this process, in order."""

    name = "inline"

    def run(self, tasks, features, on_result, on_start=None) -> None:
        from .cv import execute_trial

        for t in tasks:
            if on_start is not None:
                on_start(t)
            on_result(t, execute_trial(t, features[t.order]))


# ---------------------------------------------------------------------------- local processes
_PAYLOAD: dict = {"paths": {}, "loaded": {}}


def _init_worker(paths, env) -> None:
    os.environ.update(env)
    _PAYLOAD["paths"] = dict(paths)
    _PAYLOAD["loaded"] = {}


def _worker_features(order: int):
    """The FeatureSet of ``order`` in a worker: read once from the driver's pickle."""
    import pickle

    got = _PAYLOAD["loaded"].get(order)
    if got is None:
        with open(_PAYLOAD["paths"][order], "rb") as fh:
            got = _PAYLOAD["loaded"][order] = pickle.load(fh)
    return got


def _local_execute(task):
    from .cv import execute_trial

    return execute_trial(task, _worker_features(task.order))


class LocalBackend(Backend):
    """A pool of ``workers`` spawned processes (default ``cpu_count() // cpus_per_trial``).

    The features go to the workers through one pickle per order in a temporary folder (each
    worker reads it once), not through the pool's pipes.  As with any ``spawn`` pool, a
    script that calls :func:`~ccdgen.selection.cv.run_sweep` must guard its top level with
    ``if __name__ == "__main__":``.
    """

    name = "local"

    def __init__(self, workers: int | None = None, cpus_per_trial: float = 1):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ModelError(f"--workers must be a whole number ≥ 1, got {workers!r}")
        if cpus_per_trial <= 0:
            raise ModelError(f"cpus per trial must be > 0, got {cpus_per_trial}")
        self.workers = workers or max(1, int(cpu_count() // max(cpus_per_trial, 1)))

    def describe(self) -> str:
        return f"local, {self.workers} process{'es' if self.workers > 1 else ''}"

    def run(self, tasks, features, on_result, on_start=None) -> None:
        import multiprocessing as mp
        import pickle
        import shutil
        import tempfile
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        tasks = list(tasks)
        if not tasks:
            return
        n = min(self.workers, len(tasks))
        tmp = tempfile.mkdtemp(prefix="ccdgen-cv-features-")
        pool = None
        ok = False
        try:
            paths = {}
            for o in sorted({t.order for t in tasks}):
                paths[o] = os.path.join(tmp, f"order{o}.pkl")
                with open(paths[o], "wb") as fh:
                    pickle.dump(features[o], fh, protocol=5)
            env = {k: v for k, v in os.environ.items() if k.startswith("CCDGEN_")}
            pool = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                       initargs=(paths, env))
            pending = {}
            queue = iter(tasks)

            def submit() -> bool:
                t = next(queue, None)
                if t is None:
                    return False
                pending[pool.submit(_local_execute, t)] = t
                if on_start is not None:
                    on_start(t)
                return True

            for _ in range(n):
                submit()
            while pending:
                finished, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in finished:
                    t = pending.pop(fut)
                    rec = _result(fut, t)
                    on_result(t, rec)
                    submit()
            ok = True
        finally:
            if pool is not None:
                if ok:
                    pool.shutdown(wait=True)
                else:
                    _stop_pool(pool)
            shutil.rmtree(tmp, ignore_errors=True)


def _result(fut, task):
    from concurrent.futures.process import BrokenProcessPool

    try:
        return fut.result()
    except BrokenProcessPool:
        raise ModelError(f"a worker process died while training {task.hp.label()} fold {task.fold}",
                         why="it was killed from outside or ran out of memory (or run_sweep was called from a "
                             "script without an `if __name__ == \"__main__\":` guard, which a spawn pool needs)",
                         fix="run the same command again: finished trials are kept and skipped") from None


def _stop_pool(pool) -> None:
    """Cancel queued work and end the worker processes now (interrupts, errors).

    SIGTERM first; a worker still alive 5 s later gets SIGKILL.  (Lightning handles SIGTERM
    inside ``fit`` by finishing the step, so a worker that was training survives SIGTERM and
    would then wait forever on the pool's call queue, whose lock a terminated sibling may hold;
    the interpreter would hang at exit joining it.)"""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


# ---------------------------------------------------------------------------- Ray
def _ray_execute(task, features):
    from .cv import execute_trial

    return execute_trial(task, features)


class RayBackend(Backend):
    """Trials as Ray tasks: a local Ray instance (``num_cpus``: its CPUs, default all) or
    the cluster at ``address`` (e.g. ``ray://head:10001`` or ``auto``)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_trial: float = 1,
                 gpus_per_trial: float = 0):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ModelError("the Ray back end needs Ray, which is not installed",
                             fix='pip install "ccdgen[ray]"  (or pip install ray), or use --backend local') from None
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise ModelError(f"a trial needs > 0 CPUs and ≥ 0 GPUs, got {cpus_per_trial} and {gpus_per_trial}")
        self.address, self.num_cpus = address, num_cpus
        self.cpus, self.gpus = float(cpus_per_trial), float(gpus_per_trial)

    def describe(self) -> str:
        where = f"cluster at {self.address}" if self.address else "local instance"
        return f"ray ({where}), {self.cpus:g} CPU / {self.gpus:g} GPU per trial"

    def _capacity(self, ray) -> int:
        res = ray.cluster_resources()
        cap = int(res.get("CPU", 1) // self.cpus)
        if self.gpus > 0:
            if res.get("GPU", 0) < self.gpus:
                raise ModelError(f"each trial asks for {self.gpus:g} GPU(s) but the Ray cluster has "
                                 f"{res.get('GPU', 0):g}", fix="lower --gpus-per-trial or add GPU nodes")
            cap = min(cap, int(res["GPU"] // self.gpus))
        return max(1, cap)

    def run(self, tasks, features, on_result, on_start=None) -> None:
        import logging

        import ray

        tasks = list(tasks)
        if not tasks:
            return
        started = False
        if not ray.is_initialized():
            kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            try:
                if self.address:
                    ray.init(address=self.address, **kw)
                else:
                    # trials run at normal priority, as with the local back end (Ray's default
                    # worker niceness is 15); set RAY_worker_niceness to choose another
                    os.environ.setdefault("RAY_worker_niceness", "0")
                    ray.init(num_cpus=self.num_cpus, **kw)
            except Exception as exc:  # connection refused, bad address, ...
                raise ModelError(f"cannot start or reach Ray ({type(exc).__name__}: {exc})",
                                 fix="check --address (or start the cluster with `ray start --head`)") from None
            started = True
        pending = {}
        try:
            orders = sorted({t.order for t in tasks})
            refs = {o: ray.put(features[o]) for o in orders}
            remote = ray.remote(_ray_execute)
            window = self._capacity(ray)
            queue = iter(tasks)

            def submit() -> bool:
                t = next(queue, None)
                if t is None:
                    return False
                ref = remote.options(num_cpus=self.cpus, num_gpus=self.gpus, name=f"ccdgen-trial-{t.key}") \
                    .remote(t, refs[t.order])
                pending[ref] = t
                if on_start is not None:
                    on_start(t)
                return True

            for _ in range(window):
                if not submit():
                    break
            while pending:
                # a timeout keeps the driver responsive to Ctrl-C / SIGTERM
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    t = pending.pop(ref)
                    on_result(t, _ray_result(ray, ref, t))
                    submit()
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or gone
                    pass
            if started:
                ray.shutdown()


def _ray_result(ray, ref, task):
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):  # the trial's own error (a CCDGenError, or a bug)
            raise cause from None
        raise ModelError(f"trial {task.hp.label()} fold {task.fold} failed on Ray: {exc}") from None
    except ray.exceptions.RayError as exc:  # worker died, node lost, ...
        raise ModelError(f"trial {task.hp.label()} fold {task.fold} was lost: {type(exc).__name__}: {exc}",
                         fix="run the same command again: finished trials are kept and skipped") from None
