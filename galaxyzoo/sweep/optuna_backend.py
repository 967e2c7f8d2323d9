"""The Optuna backend of `galaxyzoo sweep`: how a sweep file's space is asked of an `optuna.Trial`."""

from __future__ import annotations


class OptunaSuggest:
    """`Suggest` over an `optuna.Trial`."""

    def __init__(self, trial):
        self.trial = trial

    def float(self, name, low, high, *, log, step):
        return self.trial.suggest_float(name, low, high, log=log, step=step)

    def int(self, name, low, high, *, log, step):
        return self.trial.suggest_int(name, low, high, log=log, step=step)

    def categorical(self, name, choices):
        return self.trial.suggest_categorical(name, choices)
