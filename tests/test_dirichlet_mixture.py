"""The Dirichlet head as a mixture of K Dirichlets per question (`model.dirichlet_components`): its layout,
its intervals and coverage, its likelihood, its config, and a network that builds, trains, saves and predicts."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from galaxyzoo import schema
from galaxyzoo.config.experiment import config_hash, from_dict
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model import dirichlet
from galaxyzoo.model.head_layout import mixture_width, n_components

N, Q = schema.N_ANSWERS, len(schema.QUESTIONS)
COLUMNS = ["true_coverage", "vote_coverage", "vote_interval_coverage"]
SMALL = dict(input_size=16, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.0,))
T02_YES = schema.QUESTION_BY_ID["t02"].start


def _galaxies(n=300, seed=0):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(1.0, 30.0, (n, N))
    true_probs = np.concatenate([rng.dirichlet(np.full(q.stop - q.start, 2.0), n) for q in schema.QUESTIONS], axis=1)
    counts = np.concatenate([rng.multinomial(40, [1 / (q.stop - q.start)] * (q.stop - q.start), n)
                             for q in schema.QUESTIONS], axis=1).astype(float)
    counts[: n // 3, schema.QUESTIONS[3].slice] = 0  # a question some galaxies never reached
    return alpha, true_probs, counts


def _mixture(alphas, question_weights) -> np.ndarray:
    """The head's layout: each component's 37 concentrations, then each component's 11 question weights."""
    return np.concatenate([*alphas, *question_weights], axis=1)


def _halves(alpha):
    return _mixture([alpha, alpha], [np.full((len(alpha), Q), 0.5)] * 2)


def test_components_reads_the_layout_and_refuses_other_widths():
    outputs = _mixture([np.full((3, N), 2.0), np.full((3, N), 5.0)], [np.full((3, Q), 0.25), np.full((3, Q), 0.75)])
    assert outputs.shape == (3, mixture_width(2)) == (3, 96)
    alpha, weights = dirichlet.components(outputs)
    assert alpha.shape == weights.shape == (2, 3, N)
    assert (alpha[0] == 2).all() and (alpha[1] == 5).all()
    assert (weights[0] == 0.25).all() and (weights[1] == 0.75).all()
    single, ones = dirichlet.components(np.full((3, N), 2.0))
    assert single.shape == (1, 3, N) and (ones == 1).all()
    for width in (48, 37 + 48, 95):
        with pytest.raises(ValueError, match=f"got {width} columns"):
            n_components(width)


def test_a_mixture_of_two_equal_halves_is_the_single_dirichlet():
    alpha, true_probs, counts = _galaxies()
    single, halves = (dirichlet.coverage(x, true_probs, counts) for x in (alpha, _halves(alpha)))
    shown = ["question", "galaxies", *COLUMNS]
    pd.testing.assert_frame_equal(halves[shown], single[shown], atol=1e-9)
    for exact, bisected in zip(dirichlet.intervals(alpha), dirichlet.intervals(_halves(alpha))):
        np.testing.assert_allclose(bisected, exact, atol=1e-8)
    # the beta-binomials' whole-count quantiles, searched, are SciPy's own
    searched = dirichlet.vote_intervals(_halves(alpha), counts)
    for exact, found in zip(dirichlet.vote_intervals(alpha, counts), searched):
        np.testing.assert_array_equal(found, exact)
    np.testing.assert_allclose(dirichlet.fractions(_halves(alpha)), dirichlet.fractions(alpha), rtol=1e-6)


def test_each_question_follows_its_own_weights():
    alpha, true_probs, counts = _galaxies(seed=1)
    other = alpha[::-1].copy()  # another galaxy's concentrations: a different coverage
    first = np.isin(np.arange(Q), [0, 2, 4, 6, 8, 10]).astype(float)  # t01, t03, ... all on the first component
    outputs = _mixture([alpha, other], [np.tile(first, (len(alpha), 1)), np.tile(1 - first, (len(alpha), 1))])
    mixed = dirichlet.coverage(outputs, true_probs, counts)
    from_first, from_other = (dirichlet.coverage(a, true_probs, counts) for a in (alpha, other))
    mean = dirichlet.fractions(outputs)
    for i, q in enumerate(schema.QUESTIONS):
        expected = from_first if i % 2 == 0 else from_other
        np.testing.assert_allclose(mixed.loc[i, COLUMNS].to_numpy(float), expected.loc[i, COLUMNS].to_numpy(float),
                                   atol=1e-9, err_msg=q.id)
        np.testing.assert_allclose(mean[:, q.slice], dirichlet.fractions(alpha if i % 2 == 0 else other)[:, q.slice],
                                   rtol=1e-6)


def test_a_sharp_and_a_broad_component_give_the_mixtures_own_percentiles():
    sharp = np.ones((1, N))
    sharp[0, schema.QUESTIONS[1].slice] = (30.0, 970.0)  # t02 yes at 0.03, sure
    broad = sharp.copy()
    broad[0, schema.QUESTIONS[1].slice] = (1.0, 10.0)
    outputs = _mixture([sharp, broad], [np.full((1, Q), 0.9), np.full((1, Q), 0.1)])
    low, high = dirichlet.intervals(outputs)
    betas = [stats.beta(*dirichlet.beta_parameters(a)) for a in (sharp, broad)]
    for share, bound in ((0.05, low), (0.95, high)):  # the mixture's CDF reaches the share exactly at its percentile
        cdf = 0.9 * betas[0].cdf(bound) + 0.1 * betas[1].cdf(bound)
        np.testing.assert_allclose(cdf[0, T02_YES], share, atol=1e-7)
    # the 10 % broad component lifts the 95th percentile above the sharp one's, but far below its own
    assert dirichlet.intervals(sharp)[1][0, T02_YES] < high[0, T02_YES] < dirichlet.intervals(broad)[1][0, T02_YES]
    assert dirichlet.fractions(outputs)[0, T02_YES] == pytest.approx(0.9 * 0.03 + 0.1 / 11)


def test_the_mixture_likelihood_is_the_weighted_sum_of_its_components():
    from scipy.special import logsumexp

    from galaxyzoo.model.losses import concentration_log_prob, dirichlet_multinomial_log_prob, get_loss

    alpha, _, counts = _galaxies(5, seed=2)
    other = alpha[::-1].copy()
    w = np.linspace(0.1, 0.9, Q)  # a different weight of the first component for each question
    outputs = _mixture([alpha, other], [np.tile(w, (5, 1)), np.tile(1 - w, (5, 1))]).astype("float32")
    per_component = np.stack([np.asarray(dirichlet_multinomial_log_prob(counts.astype("float32"), a.astype("float32")))
                              for a in (alpha, other)])  # (2, 5, 11)
    voted = np.stack([counts[:, q.slice].sum(axis=1) > 0 for q in schema.QUESTIONS], axis=1)
    expected = np.where(voted, logsumexp(per_component + np.log(np.stack([w, 1 - w]))[:, None, :], axis=0), 0)
    np.testing.assert_allclose(np.asarray(concentration_log_prob(counts.astype("float32"), outputs)), expected,
                               rtol=1e-5)
    # The loss: two equal halves are the single Dirichlet, and the loss is minus the sum over questions.
    loss = get_loss("dirichlet-learned")
    y_true = np.concatenate([counts, counts], axis=1).astype("float32")  # the loss reads the counts' half
    single = np.asarray(loss.call(y_true, alpha.astype("float32")))
    np.testing.assert_allclose(np.asarray(loss.call(y_true, _halves(alpha).astype("float32"))), single, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(loss.call(y_true, outputs)), -expected.sum(axis=1), rtol=1e-5)


def test_the_network_lays_out_a_mixture_and_keeps_it_through_a_save(tmp_path):
    import keras

    from galaxyzoo.model.losses import concentration_fractions
    from galaxyzoo.model.network import LOGITS_LAYER, build_model, embedding_model, load_model, outputs_concentrations

    keras.utils.set_random_seed(0)
    model = build_model(head="dirichlet", dirichlet_components=3, concentration_ceiling=1000.0, **SMALL)
    assert outputs_concentrations(model) and model.output_shape == (None, 3 * 48)
    # A network that sees nothing (zero kernel) starts every component at alpha 3, with equal weights.
    logits = model.get_layer(LOGITS_LAYER)
    logits.set_weights([np.zeros_like(logits.get_weights()[0]), logits.get_weights()[1]])
    alpha, weights = dirichlet.components(model.predict(np.zeros((2, 16, 16, 1), "float32"), verbose=0))
    np.testing.assert_allclose(alpha, 3.0, rtol=1e-5)
    np.testing.assert_allclose(weights, 1 / 3, rtol=1e-5)

    keras.utils.set_random_seed(1)
    model = build_model(head="dirichlet", dirichlet_components=3, concentration_ceiling=1000.0, **SMALL)
    x = np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")
    outputs = model.predict(x, verbose=0)
    alpha, weights = dirichlet.components(outputs)
    assert ((alpha > 1) & (alpha < 1000)).all() and np.ptp(alpha, axis=0).max() > 0.01  # the components differ
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(concentration_fractions(keras.ops.convert_to_tensor(outputs))),
                               dirichlet.fractions(outputs), rtol=1e-5)
    assert embedding_model(model).output_shape == (None, 8)  # cut before the head, as for every head
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), outputs, rtol=1e-6)


def test_tta_of_a_mixture_averages_each_components_parameters():
    import keras

    from galaxyzoo.model.network import build_model
    from galaxyzoo.model.tta import average_over_views, dihedral_views

    keras.utils.set_random_seed(0)
    model = build_model(head="dirichlet", dirichlet_components=2, **SMALL)
    x = np.random.default_rng(0).random((3, 16, 16, 1)).astype("float32")
    mean = average_over_views(model.predict_on_batch, x)
    np.testing.assert_allclose(mean, np.mean([model.predict_on_batch(v) for v in dihedral_views(x)], axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(dirichlet.components(mean)[1].sum(axis=0), 1.0, rtol=1e-5)  # still a mixture


def test_the_packaged_prediction_of_a_mixture_has_its_intervals(real_images_dir):
    import keras

    from galaxyzoo.model.network import build_model
    from galaxyzoo.registry import packaged

    keras.utils.set_random_seed(0)
    network = build_model(head="dirichlet", dirichlet_components=2, **SMALL)
    images = [p.read_bytes() for p in sorted(real_images_dir.glob("*.jpg"))[:3]] + [b"not an image"]
    frame = packaged.predict_images(network, images, 16, 1)
    assert list(frame.columns[: 3 * N]) == [*packaged.ANSWER_COLUMNS, *packaged.INTERVAL_COLUMNS]
    # the image that could not be cropped has no interval, as with one Dirichlet: NaN, not a searched number
    assert frame.loc[3, "error"] and frame.loc[3, packaged.INTERVAL_COLUMNS].isna().all()
    frame = frame.iloc[:3]
    mean = frame[packaged.ANSWER_COLUMNS].to_numpy()
    low, high = (frame[packaged.INTERVAL_COLUMNS].to_numpy()[:, i * N:(i + 1) * N] for i in (0, 1))
    assert (low < high).all() and (low > 0).all() and (high < 1).all()
    for q in schema.QUESTIONS:
        np.testing.assert_allclose(mean[:, q.slice].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_a_refitted_mixture_trains_with_mlflow_and_predicts_raw_images_with_intervals(tiny_experiment,
                                                                                     real_images_dir, tmp_path,
                                                                                     capsys, monkeypatch):
    import mlflow
    import pandas as pd

    from galaxyzoo.cli import main
    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.registry import packaged
    from galaxyzoo.training import head_refit
    from galaxyzoo.training.run import train
    from stores import seeded_uri

    monkeypatch.setattr(head_refit, "MAX_EPOCHS", 10)  # the refit's length is not what this test is about

    uri = seeded_uri(tmp_path)
    cfg = load_experiment(tiny_experiment, [f"tracking.tracking_uri={uri}", "epochs=1", "tracking.plots=false",
                                            "tracking.system_metrics=false", "model.head=dirichlet",
                                            "train.loss=dirichlet-learned", "model.dirichlet_components=2",
                                            "model.concentration_ceiling=500", "train.refit_head=true"])
    result = train(cfg, experiment_file=str(tiny_experiment), progress=False, verbose=0)
    assert 0 < result.metrics["test_rmse"] < 1  # scored on the mixture's mean fractions
    logged = mlflow.MlflowClient(uri).get_run(result.run_id).data.metrics
    refit_keys = ("head_refit_val_loss_before", "head_refit_val_loss", "head_refit_epochs", "head_refit_seconds")
    # the refit's report, in the run beside the test metrics, as train returned it
    assert {k: logged[k] for k in refit_keys} == {k: result.metrics[k] for k in refit_keys}
    assert logged["head_refit_epochs"] >= 1
    out = tmp_path / "preds.csv"
    images = [str(p) for p in sorted(real_images_dir.glob("*.jpg"))[:3]]
    assert main(["predict", "--model", f"runs:/{result.run_id}/packaged_model", *images, "--out", str(out),
                 "--tracking-uri", uri, "--tta"]) == 0
    capsys.readouterr()
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns[1: 1 + 3 * N]) == [*packaged.ANSWER_COLUMNS, *packaged.INTERVAL_COLUMNS]
    assert len(table) == 3 and (table["error"] == "").all()
    mean = table[packaged.ANSWER_COLUMNS].to_numpy(float)
    low, high = (table[packaged.INTERVAL_COLUMNS].to_numpy(float)[:, i * N:(i + 1) * N] for i in (0, 1))
    assert ((0 < low) & (low < high) & (high < 1)).all()
    for q in schema.QUESTIONS:
        np.testing.assert_allclose(mean[:, q.slice].sum(axis=1), 1.0, rtol=1e-4)


def test_the_config_keeps_the_mixture_to_the_dirichlet_head_and_old_hashes_unchanged():
    dirichlet_head = {"model": {"head": "dirichlet"}, "train": {"loss": "dirichlet-learned"}}
    plain = from_dict(dirichlet_head)
    at_defaults = from_dict({**dirichlet_head, "model": {"head": "dirichlet", "dirichlet_components": 1,
                                                         "concentration_ceiling": 100.0}})
    assert config_hash(at_defaults) == config_hash(plain)  # runs from before these keys keep their hash
    mixed = from_dict({**dirichlet_head, "model": {"head": "dirichlet", "dirichlet_components": 2}})
    ceiling = from_dict({**dirichlet_head, "model": {"head": "dirichlet", "concentration_ceiling": 1000}})
    assert len({config_hash(c) for c in (plain, mixed, ceiling)}) == 3
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: model\.dirichlet_components: only the 'dirichlet' head"):
        from_dict({"model": {"dirichlet_components": 2}}, source="x.yaml")
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: model\.concentration_ceiling: only the 'dirichlet' head"):
        from_dict({"model": {"concentration_ceiling": 1000}}, source="x.yaml")
    for key, value in (("dirichlet_components", 0), ("dirichlet_components", 9), ("concentration_ceiling", 5),
                       ("concentration_ceiling", 20_000), ("concentration_ceiling", float("inf"))):
        with pytest.raises(GalaxyZooError, match=rf"model\.{key}: (must be in|expected a number)"):
            from_dict({**dirichlet_head, "model": {"head": "dirichlet", key: value}})
