"""Classification metrics against hand-worked examples and brute-force definitions:
ROC/PR curves, AUC (ties count one half), average precision, the validation threshold,
binary and multiclass summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlab.analysis import metrics as mt


def mann_whitney_auc(y, s) -> float:
    """P(score of a positive > score of a negative) + 1/2 P(equal), over all pairs."""
    y, s = np.asarray(y), np.asarray(s, dtype=np.float64)
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def rank_auc(y, s) -> float:
    """The Mann-Whitney U from mid-ranks: (R_pos - P(P+1)/2) / (P N)."""
    y, s = np.asarray(y), np.asarray(s, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # mid-ranks for ties
        ranks[s == v] = ranks[s == v].mean()
    p, n = int((y == 1).sum()), int((y == 0).sum())
    return float((ranks[y == 1].sum() - p * (p + 1) / 2) / (p * n))


def brute_ap(y, s) -> float:
    """sum_k (R_k - R_{k-1}) P_k over the distinct scores, each computed from scratch."""
    y, s = np.asarray(y), np.asarray(s, dtype=np.float64)
    total, prev_r = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tp = np.sum(pred & (y == 1))
        prec, rec = tp / pred.sum(), tp / (y == 1).sum()
        total += (rec - prev_r) * prec
        prev_r = rec
    return total


def accuracy_at(y, p, thr) -> float:
    return float(np.mean((np.asarray(p) >= thr) == (np.asarray(y) == 1)))


# ---------------------------------------------------------------- ROC


def test_roc_curve_hand_worked():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    fpr, tpr, thr = mt.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert mt.roc_auc(y, s) == pytest.approx(0.75)


def test_roc_curve_ties_are_one_point():
    y, s = [0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]
    fpr, tpr, thr = mt.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.5, 0.2])
    # pairs: (0.9 > 0.5), (0.9 > 0.2), (0.5 > 0.2) and one tie (0.5 = 0.5): 3.5 / 4
    assert mt.roc_auc(y, s) == pytest.approx(0.875)


def test_auc_edge_values():
    assert mt.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert mt.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.0)
    assert mt.roc_auc([0, 1, 0, 1], [0.3] * 4) == pytest.approx(0.5)  # all tied: chance
    # only one class: undefined
    assert math.isnan(mt.roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(mt.roc_auc([0, 0], [0.1, 0.5]))


def test_auc_does_not_depend_on_the_order_or_a_monotone_transform():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    s = rng.standard_normal(50)
    perm = rng.permutation(50)
    assert mt.roc_auc(y[perm], s[perm]) == pytest.approx(mt.roc_auc(y, s))
    assert mt.roc_auc(y, 1 / (1 + np.exp(-3 * s))) == pytest.approx(mt.roc_auc(y, s))
    assert mt.roc_auc(y, -s) == pytest.approx(1 - mt.roc_auc(y, s))
    assert mt.roc_auc(1 - y, s) == pytest.approx(1 - mt.roc_auc(y, s))


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_mann_whitney_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.integers(0, 6, n) / 5.0 + 0.3 * y * rng.integers(0, 2, n)  # few distinct values: many ties
    assert len(np.unique(s)) < n / 3
    expected = mann_whitney_auc(y, s)
    assert mt.roc_auc(y, s) == pytest.approx(expected, abs=1e-12)
    assert rank_auc(y, s) == pytest.approx(expected, abs=1e-12)  # the two references agree


def test_roc_curve_is_monotone_and_ends_at_one():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = rng.random(300).round(2)
    fpr, tpr, thr = mt.roc_curve(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert (np.diff(thr) < 0).all()
    assert len(thr) == len(np.unique(s)) + 1
    # each point is the rates of "score >= threshold"
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:], strict=True):
        pred = s >= th
        assert t == pytest.approx(np.sum(pred & (y == 1)) / np.sum(y == 1))
        assert f == pytest.approx(np.sum(pred & (y == 0)) / np.sum(y == 0))


# ---------------------------------------------------------------- precision-recall


def test_pr_curve_and_average_precision_hand_worked():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    precision, recall, thr = mt.pr_curve(y, s)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [0.8, 0.4, 0.35, 0.1])
    # 0.5 * 1 + 0 * 0.5 + 0.5 * 2/3 + 0 * 0.5 (scikit-learn gives 0.8333 here too)
    assert mt.average_precision(y, s) == pytest.approx(5 / 6)


def test_pr_curve_with_ties():
    y, s = [0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]
    precision, recall, thr = mt.pr_curve(y, s)
    np.testing.assert_allclose(precision, [1, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 1, 1])
    np.testing.assert_array_equal(thr, [0.9, 0.5, 0.2])
    assert mt.average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_average_precision_edge_values():
    assert mt.average_precision([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    # all tied: precision is the positive rate
    assert mt.average_precision([0, 1, 0, 0], [0.3] * 4) == pytest.approx(0.25)
    assert math.isnan(mt.average_precision([0, 0, 0], [0.1, 0.5, 0.9]))  # no positives
    assert mt.average_precision([1, 1], [0.1, 0.5]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_average_precision_matches_the_definition(seed):
    rng = np.random.default_rng(10 + seed)
    y = rng.integers(0, 2, 120)
    y[:2] = [0, 1]
    s = (rng.random(120) + 0.5 * y).round(1)  # ties
    assert mt.average_precision(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)


# ---------------------------------------------------------------- the validation threshold


def test_best_threshold_separable_data():
    y, p = [0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8]
    thr = mt.best_threshold(y, p)
    assert 0.3 < thr < 0.6  # between the classes, not on a sample
    assert thr == pytest.approx(0.45)  # the midpoint
    assert accuracy_at(y, p, thr) == 1.0


def test_best_threshold_picks_max_accuracy_nearest_half_on_ties():
    # accuracy 3/4 both at 0.8 (only 0.9 positive) and at 0.15 (all but 0.1 positive): 0.8 is nearer 0.5
    y, p = [0, 1, 0, 1], [0.1, 0.2, 0.7, 0.9]
    thr = mt.best_threshold(y, p)
    assert thr == pytest.approx(0.8)
    assert accuracy_at(y, p, thr) == 0.75
    # here the lower candidate is nearer 0.5: accuracy 3/4 at (0.99 + 0.9) / 2 = 0.945 and (0.55 + 0.5) / 2 = 0.525
    y2, p2 = [0, 1, 0, 1], [0.5, 0.55, 0.9, 0.99]
    thr2 = mt.best_threshold(y2, p2)
    assert thr2 == pytest.approx(0.525)
    assert accuracy_at(y2, p2, thr2) == 0.75


def test_best_threshold_prefers_half_when_it_is_as_good():
    # 0.5 splits the classes, and so does everything in (0.4, 0.7); the chosen midpoint is 0.55
    y, p = [0, 0, 1, 1], [0.2, 0.4, 0.7, 0.9]
    thr = mt.best_threshold(y, p)
    assert accuracy_at(y, p, thr) == 1.0 and thr == pytest.approx(0.55)


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_reaches_the_best_accuracy_of_any_threshold(seed):
    rng = np.random.default_rng(seed)
    n = 80
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + 0.25 * (2 * y - 1) + 0.3 * rng.standard_normal(n), 0.001, 0.999).round(2)
    thr = mt.best_threshold(y, p)
    grid = np.r_[np.unique(p), 1.0 + 1e-9]  # every distinct decision: score >= one of the scores, or none
    best = max(accuracy_at(y, p, t) for t in grid)
    assert accuracy_at(y, p, thr) == pytest.approx(best)
    assert 0.0 <= thr <= 1.0


def test_best_threshold_all_one_class_and_empty():
    y, p = [0, 0, 0], [0.2, 0.6, 0.9]
    assert accuracy_at(y, p, mt.best_threshold(y, p)) == 1.0
    y, p = [1, 1, 1], [0.2, 0.6, 0.9]
    assert accuracy_at(y, p, mt.best_threshold(y, p)) == 1.0
    assert mt.best_threshold([], []) == 0.5


def test_best_threshold_with_saturated_probabilities():
    """Probabilities of exactly 1.0 (a float64 sigmoid of a logit > 37): "all negative" must stay reachable."""
    y, p = [0, 0, 1], [1.0, 1.0, 0.2]
    # the best decision predicts everything negative (2/3); any threshold <= 1.0 predicts the 1.0s positive
    thr = mt.best_threshold(y, p)
    assert accuracy_at(y, p, thr) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- binary_metrics


def test_binary_metrics_hand_worked():
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.6, 0.4, 0.7, 0.8, 0.3, 0.5]
    m = mt.binary_metrics(y, p, 0.5)
    # predicted positive: 0.6 (fp), 0.7, 0.8, 0.5 (tp; >= threshold); negative: 0.1, 0.4 (tn), 0.3 (fn)
    assert m["confusion"] == [[2, 1], [1, 3]]  # [[tn, fp], [fn, tp]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["threshold"] == 0.5
    assert m["roc_auc"] == pytest.approx(mann_whitney_auc(y, p))
    assert m["average_precision"] == pytest.approx(brute_ap(y, p))
    assert set(m) == {"accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "threshold",
                      "confusion"}


def test_binary_metrics_threshold_moves_the_decision_not_the_curves():
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.6, 0.4, 0.7, 0.8, 0.3, 0.5]
    m = mt.binary_metrics(y, p, 0.65)
    assert m["confusion"] == [[3, 0], [2, 2]]
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert m["roc_auc"] == mt.binary_metrics(y, p, 0.5)["roc_auc"]


def test_binary_metrics_f1_is_the_harmonic_mean():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    p = rng.random(200)
    m = mt.binary_metrics(y, p, 0.3)
    (tn, fp), (fn, tp) = m["confusion"]
    assert tn + fp + fn + tp == 200 and tp + fn == y.sum()
    assert m["precision"] == pytest.approx(tp / (tp + fp))
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert isinstance(m["confusion"][0][0], int)


def test_binary_metrics_zero_division():
    # nothing predicted positive: precision 0, recall 0, F1 0
    m = mt.binary_metrics([0, 1, 1], [0.1, 0.2, 0.3], 0.5)
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["confusion"] == [[1, 0], [2, 0]]
    # no positives at all: recall 0, AUC undefined
    m = mt.binary_metrics([0, 0, 0], [0.2, 0.7, 0.9], 0.5)
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])
    # only positives, all found
    m = mt.binary_metrics([1, 1], [0.6, 0.9], 0.5)
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(m["roc_auc"]) and m["average_precision"] == 1.0


def test_binary_metrics_accepts_column_vectors():
    y = np.array([[0], [1], [1], [0]])
    p = np.array([[0.2], [0.9], [0.4], [0.6]])
    assert mt.binary_metrics(y, p) == mt.binary_metrics(y.ravel(), p.ravel())


def test_empty_inputs_do_not_crash():
    fpr, tpr, thr = mt.roc_curve([], [])
    assert math.isnan(mt.roc_auc([], []))
    m = mt.binary_metrics([], [], 0.5)
    assert math.isnan(m["accuracy"]) and m["confusion"] == [[0, 0], [0, 0]]
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])
    mc = mt.multiclass_metrics(np.zeros(0, dtype=int), np.zeros((0, 3)))
    assert math.isnan(mc["accuracy"]) and mc["confusion"] == [[0] * 3] * 3


# ---------------------------------------------------------------- multiclass_metrics


def test_multiclass_metrics_hand_worked():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 0, 1, 2, 2, 2, 0])
    probs = np.eye(3)[pred] * 0.8 + 0.1  # argmax = pred
    m = mt.multiclass_metrics(y, probs)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]  # rows: true class, columns: predicted
    assert m["accuracy"] == pytest.approx(5 / 8)
    prec = np.array([2 / 3, 1 / 2, 2 / 3])
    rec = np.array([2 / 3, 1 / 2, 2 / 3])
    f1 = 2 * prec * rec / (prec + rec)
    assert m["precision"] == pytest.approx(prec.mean())
    assert m["recall"] == pytest.approx(rec.mean())
    assert m["f1"] == pytest.approx(f1.mean())


def test_multiclass_confusion_rows_are_the_true_class():
    y = np.array([2, 2, 2, 2])
    probs = np.tile([0.7, 0.2, 0.1], (4, 1))  # always predicts class 0
    cm = np.array(mt.multiclass_metrics(y, probs)["confusion"])
    assert cm[2, 0] == 4 and cm.sum() == 4
    assert cm.sum(axis=1).tolist() == np.bincount(y, minlength=3).tolist()


def test_multiclass_macro_averages_over_present_classes():
    # class 2 never occurs (but is predicted once); class 1 occurs but is never predicted
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 2])
    probs = np.eye(4)[pred]
    m = mt.multiclass_metrics(y, probs)
    assert m["confusion"] == [[2, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # class 0: precision 2/3, recall 1; class 1: precision 0 (never predicted), recall 0
    assert m["precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["recall"] == pytest.approx((1 + 0) / 2)
    assert m["f1"] == pytest.approx((0.8 + 0) / 2)
    assert m["accuracy"] == 0.5


def test_multiclass_perfect_and_two_class_agree_with_binary():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    m = mt.multiclass_metrics(y, np.eye(3)[y])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0, 1.0)
    # two classes: accuracy and confusion as binary_metrics at 0.5 (argmax ties aside)
    y2 = rng.integers(0, 2, 60)
    p1 = rng.random(60) * 0.98 + 0.01
    mc = mt.multiclass_metrics(y2, np.c_[1 - p1, p1])
    mb = mt.binary_metrics(y2, p1, 0.5)
    assert mc["confusion"] == mb["confusion"]
    assert mc["accuracy"] == pytest.approx(mb["accuracy"])
