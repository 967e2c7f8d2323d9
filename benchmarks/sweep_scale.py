"""How the sweep's coordination scales: many workers on one PostgreSQL study, with a free objective.

    .venv/bin/python benchmarks/sweep_scale.py --storage postgresql://USER@HOST:PORT/DB \\
        [--workers 1 4 16 64] [--threads-from 64] [--trials 200] [--ask-after 100 1000 5000]
    (`--workers` with no count times only the ask)

Each worker runs the sweep's own loop (`galaxyzoo.sweep`): take the study lock
(`storage.study_lock`, a PostgreSQL advisory lock), `optuna_backend.take_trial` under it (repair
dead workers' trials, count, `ask`), then outside it draw the trial's values from
`sweeps/quickstart.yaml`'s space with TPE and `tell` a random value at once: no training, no MLflow.
Worker counts from `--threads-from` on run as threads of one process (each with its own storage and
connections, as processes would), the others as processes.

Reported per worker count: trials/s, the wait for the lock and the time it is held (p50, p99), and
duplicates (a trial number twice, or more finished trials than asked for: there must be none). Then,
on one study filled to 100, 1,000 and 5,000 finished trials, the time of one take (under the lock)
and of drawing one trial's values with TPE (outside it). Every run uses a fresh study name.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import queue
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "sweeps" / "quickstart.yaml"


def _open(url: str, name: str):
    import optuna

    from galaxyzoo.config.sweep_spec import load_sweep
    from galaxyzoo.sweep.optuna_backend import _sampler
    from galaxyzoo.sweep.storage import database_url, open_storage

    spec = load_sweep(SWEEP)
    storage = open_storage(database_url(url), 60, None)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
    study.sampler = _sampler(spec, already=0)
    return spec, study


def work(url: str, name: str, n_trials: int, out) -> None:
    """One worker: take trials until the study holds `n_trials` finished; put (wait, held, numbers) on `out`."""
    import optuna

    from galaxyzoo.sweep.optuna_backend import quiet_optuna_warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with quiet_optuna_warnings():
        _work(url, name, n_trials, out)


def _work(url: str, name: str, n_trials: int, out) -> None:
    from galaxyzoo.sweep.optuna_backend import OptunaSuggest, _fail_dead_trials, take_trial
    from galaxyzoo.sweep.parent import Worker
    from galaxyzoo.sweep.storage import database_url, study_lock

    spec, study = _open(url, name)
    me, waits, held, numbers = Worker.me(), [], [], []
    while True:
        asked = time.perf_counter()
        with study_lock(database_url(url), name):
            got = time.perf_counter()
            trial, finished, running = take_trial(study, n_trials, me, lambda: _fail_dead_trials(study, None, {}))
            held.append(time.perf_counter() - got)
        waits.append(got - asked)
        if finished >= n_trials:
            break
        if trial is None:
            time.sleep(0.01)  # the other workers' last trials are being told
            continue
        spec.sample(OptunaSuggest(trial))
        study.tell(trial, random.random())
        numbers.append(trial.number)
    out.put((waits, held, numbers))


def scale(url: str, workers: int, threads: bool, n_trials: int) -> dict:
    import optuna

    name = f"scale-{workers}-{time.time_ns()}"
    _open(url, name)  # created once, before the workers race to load it
    out = queue.Queue() if threads else multiprocessing.get_context("spawn").Queue()
    start = (threading.Thread if threads else multiprocessing.get_context("spawn").Process)
    jobs = [start(target=work, args=(url, name, n_trials, out)) for _ in range(workers)]
    began = time.perf_counter()
    for job in jobs:
        job.start()
    results = [out.get() for _ in jobs]
    wall = time.perf_counter() - began
    for job in jobs:
        job.join()
    waits = sorted(w for r in results for w in r[0])
    held = sorted(h for r in results for h in r[1])
    numbers = [n for r in results for n in r[2]]
    _, study = _open(url, name)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "workers": workers, "as": "threads" if threads else "processes", "trials": len(numbers),
        "trials_per_s": len(numbers) / wall,
        "wait_p50_ms": 1000 * _pct(waits, 50), "wait_p99_ms": 1000 * _pct(waits, 99),
        "held_p50_ms": 1000 * _pct(held, 50), "held_p99_ms": 1000 * _pct(held, 99),
        "duplicates": len(numbers) - len(set(numbers)) + max(0, len(done) - n_trials),
        "finished": len(done),
    }


def ask_cost(url: str, sizes: list[int], repeats: int = 5) -> Iterator[dict]:
    """Time one take (under the lock) and one TPE draw (outside it) as the study grows; a row per size."""
    import optuna

    from galaxyzoo.sweep.optuna_backend import OptunaSuggest, _fail_dead_trials, take_trial
    from galaxyzoo.sweep.parent import Worker

    spec, study = _open(url, f"ask-{time.time_ns()}")
    filler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))  # in memory: cheap values
    me = Worker.me()
    for size in sizes:
        missing = size - len(study.get_trials(deepcopy=False))
        for _ in range(missing):
            trial = filler.ask()
            spec.sample(OptunaSuggest(trial))
            filler.tell(trial, random.random())
        _fill(study, filler.get_trials(deepcopy=False)[-missing:])
        takes, draws = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            trial, _, _ = take_trial(study, size + repeats + 1, me, lambda: _fail_dead_trials(study, None, {}))
            took = time.perf_counter()
            spec.sample(OptunaSuggest(trial))
            draws.append(time.perf_counter() - took)
            takes.append(took - began)
            study.tell(trial, random.random())
        yield {"trials": size, "take_ms": 1000 * statistics.median(takes),
               "tpe_draw_ms": 1000 * statistics.median(draws)}


def _fill(study, trials) -> None:
    """Copy finished `trials` into the study's database in one transaction, with Optuna's own
    per-trial insert: `study.add_trials` commits each trial, minutes per thousand over PostgreSQL."""
    from optuna.storages._rdb.storage import _create_scoped_session

    rdb = study._storage._backend  # under Optuna's cache, which reads the new trials on the next get_trials
    with _create_scoped_session(rdb.scoped_session) as session:
        for trial in trials:
            rdb._get_prepared_new_trial(study._study_id, trial, session)


def _pct(values: list[float], p: int) -> float:
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, help="a PostgreSQL URL (a database you can throw away)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 4, 16, 64],
                        help="worker counts to time (none: only the ask costs)")
    parser.add_argument("--threads-from", type=int, default=64, help="worker counts from this on run as threads")
    parser.add_argument("--trials", type=int, default=200, help="finished trials each worker count's study reaches")
    parser.add_argument("--ask-after", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args()
    import optuna

    from galaxyzoo.sweep.optuna_backend import quiet_optuna_warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with quiet_optuna_warnings():
        report(args)


def report(args) -> None:
    print(f"{platform.node()}: {multiprocessing.cpu_count()} CPUs, Python {platform.python_version()}")
    if args.workers:
        print("| workers | as | trials | trials/s | lock wait p50 / p99 (ms) | lock held p50 / p99 (ms) | duplicates |")
        print("|---|---|---|---|---|---|---|")
    for n in args.workers:
        r = scale(args.storage, n, n >= args.threads_from, args.trials)
        print(f"| {r['workers']} | {r['as']} | {r['finished']} | {r['trials_per_s']:.1f} | "
              f"{r['wait_p50_ms']:.1f} / {r['wait_p99_ms']:.1f} | {r['held_p50_ms']:.1f} / {r['held_p99_ms']:.1f} | "
              f"{r['duplicates']} |", flush=True)
    print("\n| trials in the study | take under the lock (ms) | TPE draw outside it (ms) |\n|---|---|---|")
    for r in ask_cost(args.storage, args.ask_after):
        print(f"| {r['trials']} | {r['take_ms']:.1f} | {r['tpe_draw_ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
