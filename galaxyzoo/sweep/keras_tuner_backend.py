"""The keras-tuner backend of `galaxyzoo sweep` (`--backend keras-tuner`).

keras-tuner has no MLflow integration, so `MlflowTuner` replaces its trial
runner: each trial draws its values from the same sweep file (through
`KerasTunerSuggest`) and trains with `training.run.train` as a nested
MLflow run, exactly like an Optuna trial. The oracle is Hyperband or random
search (`keras_tuner.algorithm` in the sweep file).

Hyperband runs a configuration for a few epochs, then runs the best ones
longer. keras-tuner would continue the earlier model from its checkpoint; here
a promoted configuration is trained again from scratch for the longer budget
(each training is one complete, reproducible MLflow run), tagged with its
bracket and round. The tuner's state lives in `<data.workdir>/keras-tuner/<study>`,
so a restarted sweep continues where it stopped. keras-tuner is single-worker
here: use the Optuna backend to spread a study over machines.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.config.sweep_spec import SweepSpec

logger = logging.getLogger(__name__)


class KerasTunerSuggest:
    """`Suggest` over `keras_tuner.HyperParameters` (declares the space on first use)."""

    def __init__(self, hp):
        self.hp = hp

    def float(self, name, low, high, *, log, step):
        return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")

    def int(self, name, low, high, *, log, step):
        return self.hp.Int(name, low, high, step=None if log else step, sampling="log" if log else "linear")

    def categorical(self, name, choices):
        return self.hp.Choice(name, choices, ordered=False)


def search(spec: SweepSpec, runner, base_cfg, study_name: str, n_trials: int):
    """Run the keras-tuner search; return `(in-memory Optuna study of its trials, trials run now)`.

    The Optuna study only feeds the sweep's summary (table, plots), so both
    backends report the same way.
    """
    import keras_tuner as kt

    project = project_dir(base_cfg.data.workdir, study_name)
    _claim_directory(project, spec.space_hash(runner.extra))
    hp = kt.HyperParameters()
    spec.sample(KerasTunerSuggest(hp))  # declares the space, so the oracle samples every key from trial 1
    objective = kt.Objective(spec.study.metric, direction="min" if spec.study.direction == "minimize" else "max")
    settings = spec.keras_tuner
    if settings.algorithm == "random":
        oracle = kt.oracles.RandomSearchOracle(objective=objective, max_trials=n_trials, seed=settings.seed,
                                               hyperparameters=hp)
    else:
        oracle = kt.oracles.HyperbandOracle(objective=objective, max_epochs=base_cfg.train.epochs,
                                            factor=settings.factor, hyperband_iterations=settings.hyperband_iterations,
                                            seed=settings.seed, hyperparameters=hp)
        oracle.max_trials = n_trials  # Hyperband sizes itself from max_epochs; the sweep's budget caps it
    try:  # reloads the study's files, if any
        tuner = _tuner_class()(oracle, spec=spec, runner=runner, directory=str(project.parent),
                               project_name=project.name)
    except (ValueError, KeyError) as exc:  # a JSONDecodeError is a ValueError
        raise damaged(project, project, exc) from None
    try:
        tuner.search(verbose=0)
    except RuntimeError as exc:  # keras-tuner gives up after 3 failed trials in a row
        raise GalaxyZooError(f"keras-tuner stopped: {exc} (last trial: {tuner.last_error or 'see the log'})") from None
    if len(tuner.oracle.trials) < n_trials:
        logger.warning("keras-tuner ended the search after %d of the %d trials asked: %s", len(tuner.oracle.trials),
                       n_trials, _why_short(settings, base_cfg.train.epochs))
    return _as_optuna_study(spec, tuner.oracle, runner, study_name), tuner.ran


def _why_short(settings, max_epochs: int) -> str:
    """Why the oracle stopped before the budget, in words, and what would let it go on."""
    if settings.algorithm == "random":
        return "the random search found no values it had not tried (the space is that small)"
    return (f"Hyperband's brackets for {max_epochs} epochs, factor {settings.factor} and "
            f"{settings.hyperband_iterations} iteration(s) hold no more; raise keras_tuner.hyperband_iterations "
            "in the sweep file for more")


def project_dir(workdir: str | Path, study_name: str) -> Path:
    """Where keras-tuner keeps a study's state (oracle, trials): `<data.workdir>/keras-tuner/<study>`."""
    return Path(workdir) / "keras-tuner" / study_name


def ended_trials(project: Path) -> set[int] | None:
    """The trial numbers whose end keras-tuner recorded in `project`: those its reload keeps (it trains a
    trial still among its ongoing ones again, though `end_trial` lists it as ended before it saves that).
    Without its tuner file (written at each trial's end) a rerun starts a fresh oracle, which keeps none.
    None without the folder: a new study, or one removed to start afresh, whose runs are not its own."""
    if not project.is_dir():
        return None
    oracle = project / "oracle.json"
    if not (project / "tuner0.json").is_file() or not oracle.is_file():
        return set()
    try:
        state = json.loads(oracle.read_text(encoding="utf-8"))
        return {int(t) for t in state["end_order"]} - {int(t) for t in state["ongoing_trials"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # written in place: a kill cuts it
        raise damaged(project, oracle, exc) from None


def damaged(project: Path, path: Path, exc: Exception) -> GalaxyZooError:
    """The one error for a keras-tuner file a kill cut short (keras-tuner writes its files in place)."""
    return GalaxyZooError(f"{path}: damaged keras-tuner state ({type(exc).__name__}: {exc}); remove {project} to "
                          "start the study afresh (its runs stay in MLflow as they are), or give another --study-name")


def _claim_directory(project: Path, space_hash: str) -> None:
    """Refuse to continue a tuner directory that searched another space (as the Optuna study does)."""
    marker = project / "galaxyzoo_space.json"
    if marker.is_file():
        found = json.loads(marker.read_text())["space_hash"]
        if found != space_hash:
            raise GalaxyZooError(
                f"{project}: holds a keras-tuner search of another space or base config ({found}; this one is "
                f"{space_hash}); give this sweep another --study-name"
            )
        return
    project.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"space_hash": space_hash}))


def _tuner_class():
    """`MlflowTuner`, defined on first use: keras-tuner imports TensorFlow."""
    import keras_tuner as kt

    class MlflowTuner(kt.engine.base_tuner.BaseTuner):
        """A keras-tuner whose trials are `training.run.train` runs nested under the sweep's parent run."""

        def __init__(self, oracle, *, spec: SweepSpec, runner, **kwargs):
            super().__init__(oracle, **kwargs)
            self.spec, self.runner = spec, runner
            self.ran, self.last_error = 0, None

        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            values = self.spec.sample(KerasTunerSuggest(hp))  # the trial's values, as config values
            schedule = {k: v for k, v in hp.values.items() if k.startswith("tuner/")}
            extra = [f"train.epochs={schedule['tuner/epochs']}"] if "tuner/epochs" in schedule else []
            tags = {k.replace("/", "_"): str(v) for k, v in schedule.items()}
            self.ran += 1
            try:
                _, value = self.runner(int(trial.trial_id), values, extra=extra, tags=tags)
            except GalaxyZooError as exc:
                self.last_error = str(exc)
                raise kt.errors.FailedTrialError(str(exc)) from None
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("trial %s failed: %s", trial.trial_id, self.last_error)
                raise
            return {self.spec.study.metric: value}

    return MlflowTuner


def _as_drawn(distribution, value):
    """A tuner value as the sweep file wrote it: keras-tuner keeps a boolean choice as 1 or 0, which
    the summary would show as `best.model.batch_norm=1` beside the trial's param `true`."""
    import optuna

    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return next((c for c in distribution.choices if c == value), value)
    return value


def _as_optuna_study(spec: SweepSpec, oracle, runner, study_name: str):
    """The tuner's trials as an in-memory Optuna study (for the shared summary)."""
    import optuna

    states = {"COMPLETED": optuna.trial.TrialState.COMPLETE, "FAILED": optuna.trial.TrialState.FAIL,
              "INVALID": optuna.trial.TrialState.FAIL}
    distributions = spec.distributions()
    verbosity = optuna.logging.get_verbosity()
    # Optuna's "A new study created in memory" would read as if this keras-tuner sweep were an Optuna one
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=study_name, direction=spec.study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial_id in sorted(oracle.trials, key=int):
        trial = oracle.trials[trial_id]
        state = states.get(trial.status)
        if state is None:
            continue  # still running or never started
        values = trial.hyperparameters.values
        params = {k: _as_drawn(distributions[k], values[k]) for k in distributions if k in values}
        attrs = {k.replace("/", "_"): v for k, v in values.items() if k.startswith("tuner/")}
        run_id = runner.run_of(int(trial_id))
        if run_id:
            info = runner.client.get_run(run_id).info
            attrs["mlflow_run_id"] = run_id
            attrs["duration_s"] = ((info.end_time or info.start_time) - info.start_time) / 1000.0
        if trial.message:
            attrs["error"] = trial.message.strip().splitlines()[-1][:1000]
        if state == optuna.trial.TrialState.COMPLETE and trial.score is None:
            state = optuna.trial.TrialState.FAIL  # finished without a value: nothing to rank
        study.add_trial(optuna.trial.create_trial(
            params=params,
            distributions={k: distributions[k] for k in params},
            value=trial.score if state == optuna.trial.TrialState.COMPLETE else None,
            state=state,
            user_attrs=attrs,
        ))
    return study
