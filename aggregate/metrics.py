"""Vessel segmentation metrics pooled over the pixels inside the field of view, in numpy.

Thresholded metrics (dice = F1, iou, sensitivity, specificity, accuracy) count a pixel as vessel when
``prob >= threshold``. AUC-ROC is the trapezoidal area under the ROC curve and AUC-PR is average precision, the
step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` over distinct scores; both treat tied scores as one threshold, which
matches scikit-learn's ``roc_auc_score`` and ``average_precision_score``. A metric whose denominator is zero (e.g.
AUC-ROC with no vessel pixel in the FOV) is NaN.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("dice", "iou", "auc_roc", "auc_pr", "sensitivity", "specificity", "accuracy")
DEFAULT_BINS = 2**16


def vessel_metrics(prob: np.ndarray, truth: np.ndarray, fov: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Exact metrics of one image or of several images pooled, inside the field of view.

    Parameters
    ----------
    prob
        (y, x) or (image, y, x) float vessel probabilities in [0, 1].
    truth
        Same shape, bool vessel ground truth.
    fov
        Same shape, bool field-of-view mask; pixels outside it are ignored.
    threshold
        Pixels with ``prob >= threshold`` are predicted vessel.

    Returns
    -------
    dict[str, float]
        One value per name in :data:`METRIC_NAMES`.
    """
    scores, labels = _select_fov(prob, truth, fov)
    order = np.argsort(scores, kind="stable")[::-1]
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(labels, dtype=np.int64)[last_of_tie]
    fps = last_of_tie + 1 - tps
    return _combine(_confusion(scores, labels, threshold), tps, fps)


class MetricAccumulator:
    """Pool :func:`vessel_metrics` over many images in constant memory.

    Thresholded metrics are exact (confusion counts). The AUCs come from a histogram of probabilities per class
    with ``bins`` equal bins on [0, 1], each bin taken as one tied score: they are exact when the probabilities
    are distinct at the bin width (e.g. vote fractions of an ensemble) and otherwise differ from the exact values
    by at most half the share of (vessel, background) pixel pairs that fall in one bin.

    Parameters
    ----------
    threshold
        As in :func:`vessel_metrics`.
    bins
        Histogram bins per class (65536 by default: 1 MiB of counts).
    """

    def __init__(self, *, threshold: float = 0.5, bins: int = DEFAULT_BINS) -> None:
        self.threshold = threshold
        self.bins = bins
        self._histogram = np.zeros((2, bins), dtype=np.int64)
        self._confusion = np.zeros(4, dtype=np.int64)

    @property
    def n_pixels(self) -> int:
        """FOV pixels pooled so far."""
        return int(self._histogram.sum())

    def update(self, prob: np.ndarray, truth: np.ndarray, fov: np.ndarray) -> None:
        """Add one image (y, x) or several (image, y, x), with arguments as in :func:`vessel_metrics`."""
        scores, labels = _select_fov(prob, truth, fov)
        index = np.minimum((scores.astype(np.float64) * self.bins).astype(np.int64), self.bins - 1)
        self._histogram += np.stack([np.bincount(index[labels == cls], minlength=self.bins) for cls in (0, 1)])
        self._confusion += _confusion(scores, labels, self.threshold)

    def best_dice_threshold(self) -> tuple[float, float]:
        """The threshold (a bin's lower edge) at which the pooled Dice is highest, and that Dice.

        This is how a labelled validation part of the sources picks the decision threshold of a head whose
        probabilities are not calibrated at 0.5; ties go to the threshold nearest 0.5.
        """
        negatives, positives = self._histogram
        tp = np.cumsum(positives[::-1])[::-1]  # vessel pixels at or above each bin's lower edge
        fp = np.cumsum(negatives[::-1])[::-1]
        denominator = tp + fp + positives.sum()  # 2 tp + fp + fn
        dice = np.divide(2.0 * tp, denominator, out=np.zeros(self.bins), where=denominator > 0)
        edges = np.arange(self.bins) / self.bins
        best = np.flatnonzero(dice == dice.max())
        index = int(best[np.argmin(np.abs(edges[best] - 0.5))])
        return float(edges[index]), float(dice[index])

    def compute(self) -> dict[str, float]:
        """The pooled metrics, one value per name in :data:`METRIC_NAMES`."""
        negatives, positives = self._histogram[:, ::-1]
        filled = (negatives + positives) > 0
        tps = np.cumsum(positives)[filled]
        fps = np.cumsum(negatives)[filled]
        return _combine(self._confusion, tps, fps)


def _select_fov(prob: np.ndarray, truth: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and bool labels of the FOV pixels, flattened; ValueError on mismatched shapes or invalid scores."""
    prob, truth, fov = np.asarray(prob), np.asarray(truth), np.asarray(fov)
    if not prob.shape == truth.shape == fov.shape or prob.ndim not in (2, 3):
        raise ValueError(f"prob {prob.shape}, truth {truth.shape} and fov {fov.shape} must share one (y, x) or "
                         "(image, y, x) shape")
    if truth.dtype != bool or fov.dtype != bool:
        raise ValueError(f"truth ({truth.dtype}) and fov ({fov.dtype}) must be bool masks")
    scores = prob[fov]
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError("prob has values outside [0, 1] (or NaN) inside the FOV; pass probabilities, not logits")
    return scores, truth[fov]


def _confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """(tp, fp, tn, fn) int64 counts at ``scores >= threshold``."""
    predicted = scores >= threshold
    tp = np.count_nonzero(predicted & labels)
    fp = np.count_nonzero(predicted & ~labels)
    fn = np.count_nonzero(~predicted & labels)
    return np.array([tp, fp, labels.size - tp - fp - fn, fn], dtype=np.int64)


def _combine(confusion: np.ndarray, tps: np.ndarray, fps: np.ndarray) -> dict[str, float]:
    metrics = {**_threshold_metrics(confusion), **_curve_metrics(tps, fps)}
    return {name: metrics[name] for name in METRIC_NAMES}


def _threshold_metrics(confusion: np.ndarray) -> dict[str, float]:
    tp, fp, tn, fn = (float(c) for c in confusion)
    return {"dice": _ratio(2 * tp, 2 * tp + fp + fn), "iou": _ratio(tp, tp + fp + fn),
            "sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "accuracy": _ratio(tp + tn, tp + fp + tn + fn)}


def _curve_metrics(tps: np.ndarray, fps: np.ndarray) -> dict[str, float]:
    """AUC-ROC and AUC-PR from cumulative (true, false) positive counts at descending distinct thresholds."""
    if tps.size == 0 or tps[-1] == 0:
        return {"auc_roc": float("nan"), "auc_pr": float("nan")}
    tps, fps = tps.astype(np.float64), fps.astype(np.float64)
    recall = tps / tps[-1]
    auc_pr = float(np.sum(np.diff(recall, prepend=0.0) * tps / (tps + fps)))
    if fps[-1] == 0:
        return {"auc_roc": float("nan"), "auc_pr": auc_pr}
    auc_roc = float(np.trapezoid(np.r_[0.0, recall], np.r_[0.0, fps / fps[-1]]))
    return {"auc_roc": auc_roc, "auc_pr": auc_pr}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")
