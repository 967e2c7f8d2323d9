"""Training losses for the 37 Galaxy Zoo 2 answers, in backend-neutral Keras 3.

Four losses share one input convention. `y_true` is either the 37 target
fractions, shape `(N, 37)`, or the targets followed by the 37 raw vote counts,
shape `(N, 74)`; the losses that need counts ask for the wider form:

>>> loss = get_loss("dirichlet-multinomial", concentration=20.0)
>>> loss.needs_counts
True

- `"mse"`: mean squared error over the 37 outputs (the original study).
- `"vote-weighted-mse"`: squared errors weighted by the share of volunteers who
  reached each question, so answers to questions few people saw count less.
- `"dirichlet-multinomial"`: Zoobot-style negative log-likelihood of the raw
  vote counts of each question, summed over questions, with one fixed concentration.
- `"dirichlet-learned"`: the same likelihood with the concentrations the
  `"dirichlet"` head learns per galaxy (its output is `alpha`, not fractions),
  or with its mixture of Dirichlets per question (`model.dirichlet` describes
  both layouts).

Every loss is a registered `keras.losses.Loss` written with `keras.ops` only, so
it runs under the TensorFlow, JAX and PyTorch backends and survives a
`.keras` save (models are reloaded with `compile=False` and recompiled anyway).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from galaxyzoo import schema
from galaxyzoo.config.experiment import LOSSES  # the names experiment files may use
from galaxyzoo.model.head_layout import n_components

N = schema.N_ANSWERS  # 37
_T01 = schema.QUESTION_BY_ID["t01"].slice


def split_targets(y_true):
    """Split `y_true` into `(targets, counts)`; `counts` is None for width 37.

    Works on NumPy arrays and on backend tensors alike (plain slicing). The last
    dimension must be static: 37 (targets) or 74 (targets then vote counts).
    """
    width = y_true.shape[-1]
    if width == N:
        return y_true, None
    if width == 2 * N:
        return y_true[..., :N], y_true[..., N:]
    raise ValueError(
        f"y_true must have {N} columns (targets) or {2 * N} (targets then vote counts), "
        f"got shape {tuple(y_true.shape)}"
    )


def lgamma(x):
    """`log Gamma(x)` for `x > 0`, from `keras.ops` only (Keras 3.15 has no lgamma).

    Stirling's series, accurate to 1e-10 for arguments of 6 or more; smaller
    arguments are first shifted up by 6 with
    `Gamma(x) = Gamma(x + 6) / (x (x+1) ... (x+5))`. float32 rounding (about 1e-6
    relative) dominates the error. Two logs per call, not seven: XLA's compile
    time grows with every log in the graph.
    """
    small = x < 6.0
    # The product only sees small arguments, so it cannot overflow (and no inf
    # reaches the gradient of the branch `where` discards).
    xs = ops.where(small, x, 1.0)
    product = xs * (xs + 1.0) * (xs + 2.0) * (xs + 3.0) * (xs + 4.0) * (xs + 5.0)
    z = ops.where(small, x + 6.0, x)
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 / 1680)))
    stirling = (z - 0.5) * ops.log(z) - z + 0.5 * math.log(2 * math.pi) + series
    return stirling - ops.where(small, ops.log(product), 0.0)


def question_sums(x):
    """(..., 37) -> (..., 11): the sum of each question's answers.

    Slices rather than a product with a 0/1 matrix: GPUs may run matrix
    products in TF32, which would round vote counts and likelihood terms.
    """
    return ops.stack([ops.sum(x[..., q.slice], axis=-1) for q in schema.QUESTIONS], axis=-1)


def _per_answer(x):
    """(..., 11) -> (..., 37): each question's value repeated over its answers."""
    return ops.take(x, schema.QUESTION_OF_ANSWER, axis=-1)


class _GalaxyZooLoss(keras.losses.Loss):
    """Base class: per-galaxy loss values from `call`, Keras reduces over the batch."""

    needs_counts = False

    def _split(self, y_true):
        targets, counts = split_targets(y_true)
        if self.needs_counts and counts is None:
            raise ValueError(
                f"loss {self.name!r} needs vote counts: y_true must be (N, {2 * N}) = "
                f"{N} targets then {N} vote counts, got (N, {N})"
            )
        return targets, counts


@keras.saving.register_keras_serializable(package="galaxyzoo")
class TargetMSE(_GalaxyZooLoss):
    """Mean squared error over the 37 targets; extra count columns are ignored."""

    def __init__(self, name="mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        targets, _ = self._split(y_true)
        return ops.mean(ops.square(y_pred - targets), axis=-1)


@keras.saving.register_keras_serializable(package="galaxyzoo")
class VoteWeightedMSE(_GalaxyZooLoss):
    """Squared errors weighted by the share of volunteers who reached each question.

    For galaxy `n` and question `q`, `w = votes on q / votes on t01`, clipped to
    [0, 1]; every answer of `q` gets that weight. The weighted squares are
    divided by 37 (not by the sum of weights): a fully reached tree gives plain
    MSE, an unreached question adds nothing, and no galaxy's reached questions
    are inflated because others were not reached.
    """

    needs_counts = True

    def __init__(self, name="vote_weighted_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        targets, counts = self._split(y_true)
        question_votes = _per_answer(question_sums(counts))
        root_votes = ops.sum(counts[..., _T01], axis=-1, keepdims=True)
        weights = ops.clip(question_votes / ops.maximum(root_votes, 1.0), 0.0, 1.0)
        return ops.mean(weights * ops.square(y_pred - targets), axis=-1)


@keras.saving.register_keras_serializable(package="galaxyzoo")
class DirichletMultinomialNLL(_GalaxyZooLoss):
    """Negative log-likelihood of each question's vote counts (Zoobot-style).

    The head's answer probabilities for question `q` are renormalised to sum to 1
    (a no-op for the softmax head, needed for the sigmoid head) and scaled by
    `concentration` into Dirichlet parameters `alpha`. The counts `k` (total `n`)
    then have probability

        n! / prod(k!) * Gamma(A) / Gamma(n + A) * prod(Gamma(k + alpha) / Gamma(alpha)),   A = sum(alpha)

    Questions without votes (never reached) contribute exactly 0, which is how
    the likelihood handles the decision tree. Returns the sum over questions.
    """

    needs_counts = True

    def __init__(self, concentration=20.0, name="dirichlet_multinomial", **kwargs):
        # a bool would pass as 1.0, and infinity as a NaN loss at the first batch
        number = isinstance(concentration, (int, float)) and not isinstance(concentration, bool)
        if not (number and 0 < concentration < math.inf):
            raise ValueError(f"dirichlet-multinomial concentration must be a finite number > 0, got {concentration!r}")
        super().__init__(name=name, **kwargs)
        self.concentration = float(concentration)

    def call(self, y_true, y_pred):
        _, counts = self._split(y_true)
        # The floor keeps alpha > 0 (lgamma's domain) when a sigmoid output reaches 0.
        alpha = self.concentration * per_question_fractions(ops.maximum(y_pred, 1e-7))
        return _dirichlet_multinomial_nll(counts, alpha)

    def get_config(self):
        return {**super().get_config(), "concentration": self.concentration}


@keras.saving.register_keras_serializable(package="galaxyzoo")
class LearnedDirichletMultinomialNLL(_GalaxyZooLoss):
    """`DirichletMultinomialNLL` with each galaxy's own concentrations: `y_pred` is `alpha`.

    For the `"dirichlet"` head, whose 37 outputs are the Dirichlet parameters
    themselves (`model.network.Concentrations`). Their sum per question says
    how sure the network is, and the likelihood of the vote counts rewards a
    small sum where the votes could go either way and a large one where they
    cannot, which is what makes the intervals (`model.dirichlet`) calibrated.
    """

    needs_counts = True

    def __init__(self, name="dirichlet_learned", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        _, counts = self._split(y_true)
        return -ops.sum(concentration_log_prob(counts, y_pred), axis=-1)


def concentration_log_prob(counts, outputs):
    """(batch, 37) vote counts and a Dirichlet head's outputs -> (batch, 11): each question's log-likelihood.

    One Dirichlet per question (37 outputs): `dirichlet_multinomial_log_prob`. A mixture (K * 48
    outputs): log sum_k w_k DM(votes | alpha_k), the votes' likelihood under a galaxy whose answer
    probabilities come from one of K Dirichlets, component k with chance w_k. Unvoted questions give 0.
    """
    k = n_components(outputs.shape[-1])
    if k == 1:
        return dirichlet_multinomial_log_prob(counts, outputs)
    alpha, weights = _mixture_parts(outputs, k)
    per_component = dirichlet_multinomial_log_prob(ops.expand_dims(counts, -2), alpha)  # (batch, K, 11)
    # The floor keeps log finite where a weight underflows; such a component adds nothing anyway.
    log_prob = ops.logsumexp(ops.log(ops.maximum(weights, 1e-30)) + per_component, axis=-2)
    # An unvoted question's terms are 0, but the log of its weights' sum is 0 only up to rounding.
    return ops.where(question_sums(counts) > 0, log_prob, 0.0)


def concentration_fractions(outputs):
    """A Dirichlet head's outputs -> (batch, 37) mean answer probabilities, inside a graph: alpha over its
    question's sum, for a mixture its components' means weighted (`model.dirichlet.fractions` in NumPy)."""
    k = n_components(outputs.shape[-1])
    if k == 1:
        return per_question_fractions(outputs)
    alpha, weights = _mixture_parts(outputs, k)
    return ops.sum(_per_answer(weights) * per_question_fractions(alpha), axis=-2)


def _mixture_parts(outputs, k: int):
    """A mixture head's (batch, K * 48) outputs -> alpha (batch, K, 37) and weights (batch, K, 11)."""
    split = k * N
    return (ops.reshape(outputs[:, :split], (-1, k, N)),
            ops.reshape(outputs[:, split:], (-1, k, len(schema.QUESTIONS))))


def per_question_fractions(x):
    """(..., 37) positive values -> each divided by its question's sum, so every question sums to 1.

    Turns the `"dirichlet"` head's concentrations into answer fractions (the
    Dirichlet's mean) inside a graph; `model.dirichlet.fractions` is the NumPy twin.
    """
    return x / _per_answer(question_sums(x))


def _dirichlet_multinomial_nll(counts, alpha):
    """(batch,) negative log-likelihood of the vote `counts` under Dirichlet(`alpha`), summed over questions.

    Questions without votes contribute exactly 0.
    """
    return -ops.sum(dirichlet_multinomial_log_prob(counts, alpha), axis=-1)


def dirichlet_multinomial_log_prob(counts, alpha):
    """(..., 37) vote counts and concentrations -> (..., 11): each question's log-likelihood of its votes.

    The formula of `DirichletMultinomialNLL`. A question without votes gives
    exactly 0 (its log-gamma terms would cancel only up to rounding).
    """
    n = question_sums(counts)
    total_alpha = question_sums(alpha)
    answer_terms = lgamma(counts + alpha) - lgamma(alpha) - lgamma(counts + 1.0)
    log_prob = lgamma(n + 1.0) + lgamma(total_alpha) - lgamma(n + total_alpha) + question_sums(answer_terms)
    return ops.where(n > 0, log_prob, 0.0)


# Each name of config's LOSSES -> its class and the parameters it takes.
_LOSSES = {
    "mse": (TargetMSE, ()),
    "vote-weighted-mse": (VoteWeightedMSE, ()),
    "dirichlet-multinomial": (DirichletMultinomialNLL, ("concentration",)),
    "dirichlet-learned": (LearnedDirichletMultinomialNLL, ()),
}
if set(_LOSSES) != set(LOSSES):
    # A config that validates must build: fail on import, not after a run has started.
    raise ImportError(f"losses.py implements {sorted(_LOSSES)} but config.experiment.LOSSES lists {sorted(LOSSES)}")


def get_loss(name: str, **params) -> keras.losses.Loss:
    """The loss called `name` (one of `config.experiment.LOSSES`) with its parameters.

    Only "dirichlet-multinomial" takes a parameter, `concentration` (default 20).
    """
    cls, allowed = _lookup(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"loss {name!r} does not take parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(allowed) if allowed else 'none'}"
        )
    return cls(**params)


def needs_counts(name: str) -> bool:
    """Whether the loss called `name` needs the (N, 74) targets-plus-counts `y_true`."""
    return _lookup(name)[0].needs_counts


def _lookup(name: str):
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return _LOSSES[name]
