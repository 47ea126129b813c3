"""Metrics against scikit-learn and a direct numpy Dice, on fixed random arrays with ties."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dgss.aggregate.metrics import METRIC_NAMES, MetricAccumulator, vessel_metrics


def _random_case(seed: int, shape=(3, 20, 24), tied: bool = True):
    rng = np.random.default_rng(seed)
    truth = rng.random(shape) < 0.2
    prob = np.clip(rng.random(shape) * 0.6 + 0.4 * truth, 0, 1)
    if tied:
        prob = np.round(prob, 1)
    fov = rng.random(shape) < 0.8
    return prob, truth, fov


def _reference(prob, truth, fov, threshold=0.5):
    p, t = prob[fov], truth[fov]
    pred = p >= threshold
    tp, fp = np.sum(pred & t), np.sum(pred & ~t)
    fn, tn = np.sum(~pred & t), np.sum(~pred & ~t)
    return {"dice": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn), "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp), "accuracy": (tp + tn) / p.size,
            "auc_roc": roc_auc_score(t, p), "auc_pr": average_precision_score(t, p)}


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_vessel_metrics_match_sklearn(seed, tied):
    prob, truth, fov = _random_case(seed, tied=tied)
    got = vessel_metrics(prob, truth, fov)
    assert tuple(got) == METRIC_NAMES
    expected = _reference(prob, truth, fov)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_single_image_and_threshold():
    prob, truth, fov = _random_case(2, shape=(16, 16), tied=False)
    got = vessel_metrics(prob, truth, fov, threshold=0.7)
    assert got["dice"] == pytest.approx(_reference(prob, truth, fov, threshold=0.7)["dice"])


def test_pixels_outside_fov_are_ignored():
    prob, truth, fov = _random_case(3)
    changed = np.where(fov, prob, 1.0 - prob)
    assert vessel_metrics(changed, truth, fov) == vessel_metrics(prob, truth, fov)


def test_no_vessel_gives_nan_aucs():
    prob = np.full((4, 4), 0.2)
    got = vessel_metrics(prob, np.zeros((4, 4), bool), np.ones((4, 4), bool))
    assert np.isnan(got["auc_roc"]) and np.isnan(got["auc_pr"]) and np.isnan(got["sensitivity"])
    assert got["specificity"] == 1.0


@pytest.mark.parametrize("bad", ["shape", "range", "dtype"])
def test_invalid_inputs_raise(bad):
    prob, truth, fov = _random_case(4)
    if bad == "shape":
        prob = prob[:, :-1]
    elif bad == "range":
        prob = prob * 3 - 1
    else:
        truth = truth.astype(np.uint8)
    with pytest.raises(ValueError):
        vessel_metrics(prob, truth, fov)


def test_accumulator_close_to_exact_pooled():
    cases = [_random_case(seed, shape=(40, 40), tied=False) for seed in range(5)]
    accumulator = MetricAccumulator(bins=1000)
    for case in cases:
        accumulator.update(*case)
    pooled = [np.stack(arrays) for arrays in zip(*cases)]
    exact = vessel_metrics(*pooled)
    approx = accumulator.compute()
    assert accumulator.n_pixels == int(pooled[2].sum())
    for name in ("dice", "iou", "sensitivity", "specificity", "accuracy"):
        assert approx[name] == exact[name], name
    assert abs(approx["auc_roc"] - exact["auc_roc"]) < 1e-3
    assert abs(approx["auc_pr"] - exact["auc_pr"]) < 1e-3


def test_accumulator_exact_on_vote_fractions():
    rng = np.random.default_rng(5)
    truth = rng.random((2, 30, 30)) < 0.3
    votes = np.clip(rng.integers(0, 8, truth.shape) + 3 * truth, 0, 10) / 10
    fov = np.ones(truth.shape, bool)
    accumulator = MetricAccumulator()
    accumulator.update(votes, truth, fov)
    exact = vessel_metrics(votes, truth, fov)
    for name, value in accumulator.compute().items():
        assert value == pytest.approx(exact[name], abs=1e-12), name
