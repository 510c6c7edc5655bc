"""Unit tests for aigi.eval.metrics, checked against values worked out by hand.

Conventions under test: label 1 = fake (positive), scores are P(fake), and an
image counts as fake at threshold t when p >= t.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from aigi.eval.metrics import accuracies, mean_over, score, tune_threshold

# The running example from the brief.
LABELS = [0, 0, 1, 1]
PROBS = [0.1, 0.4, 0.35, 0.8]


def balanced_accuracy(labels, probs, t):
    """Independent reference: mean of per-class accuracy with `p >= t` = fake."""
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=float)
    real_ok = (p[y == 0] < t).mean()
    fake_ok = (p[y == 1] >= t).mean()
    return (real_ok + fake_ok) / 2


# --------------------------------------------------------------------------- score: AP / AUC


def test_score_running_example_hand_computed():
    out = score(LABELS, PROBS)
    # Ranking by score, highest first: 0.8(fake) 0.4(real) 0.35(fake) 0.1(real).
    # AP: precision at each fake = 1/1 (at 0.8) and 2/3 (at 0.35); AP = (1 + 2/3) / 2.
    assert out["ap"] == pytest.approx((1 + 2 / 3) / 2)  # 0.8333...
    # AUC: fake/real pairs ranked correctly: 0.8>0.1, 0.8>0.4, 0.35>0.1 (yes), 0.35>0.4 (no) -> 3/4.
    assert out["auc"] == pytest.approx(0.75)
    # At 0.5: reals 0.1, 0.4 both < 0.5 -> 2/2 right; fakes 0.35 (<0.5, wrong), 0.8 (right) -> 1/2.
    assert out["acc_real@0.5"] == pytest.approx(1.0)
    assert out["acc_fake@0.5"] == pytest.approx(0.5)
    assert out["acc_mean@0.5"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert out["acc@0.5"] == pytest.approx(0.75)  # 3 of 4 images right
    assert (out["n"], out["n_real"], out["n_fake"]) == (4, 2, 2)
    # Without a tuned threshold there are no validation-threshold keys.
    assert "threshold" not in out
    assert not any(k.endswith("@val") for k in out)


def test_score_all_scores_tied():
    labels = [0, 1, 1, 0, 1]
    out = score(labels, [0.3] * 5)
    # One score for everything: the ROC curve is the diagonal -> AUC 0.5.
    assert out["auc"] == pytest.approx(0.5)
    # A single operating point at recall 1 with precision = positive rate 3/5.
    assert out["ap"] == pytest.approx(3 / 5)
    # 0.3 < 0.5: everything called real -> reals all right, fakes all wrong.
    assert out["acc_real@0.5"] == 1.0
    assert out["acc_fake@0.5"] == 0.0
    assert out["acc@0.5"] == pytest.approx(2 / 5)


def test_score_partial_tie_between_a_real_and_a_fake():
    labels = [0, 1, 0, 1]
    probs = [0.2, 0.2, 0.6, 0.9]
    out = score(labels, probs)
    # AUC pairs (fake vs real): 0.2 vs 0.2 tie -> 1/2, 0.2 vs 0.6 -> 0, 0.9 vs 0.2 -> 1, 0.9 vs 0.6 -> 1.
    # AUC = (0.5 + 0 + 1 + 1) / 4 = 0.625
    assert out["auc"] == pytest.approx(0.625)
    # AP over thresholds (desc): 0.9 -> P=1 R=1/2; 0.6 -> P=1/2 R=1/2; 0.2 -> P=2/4 R=1.
    # AP = sum (R_k - R_{k-1}) P_k = 1/2*1 + 0*1/2 + 1/2*1/2 = 0.75
    assert out["ap"] == pytest.approx(0.75)


def test_score_one_class_subset_reports_none_not_crash():
    only_fakes = score([1, 1, 1], [0.2, 0.7, 0.9])
    assert only_fakes["ap"] is None and only_fakes["auc"] is None
    assert only_fakes["acc_real@0.5"] is None
    assert only_fakes["acc_fake@0.5"] == pytest.approx(2 / 3)  # 0.7, 0.9 >= 0.5
    assert only_fakes["acc_mean@0.5"] == pytest.approx(2 / 3)  # mean of the one defined class
    assert (only_fakes["n"], only_fakes["n_real"], only_fakes["n_fake"]) == (3, 0, 3)

    only_reals = score([0, 0], [0.1, 0.6], tuned_threshold=0.7)
    assert only_reals["ap"] is None and only_reals["auc"] is None
    assert only_reals["acc_fake@0.5"] is None and only_reals["acc_fake@val"] is None
    assert only_reals["acc_real@0.5"] == pytest.approx(0.5)  # 0.6 >= 0.5 is called fake
    assert only_reals["acc_real@val"] == pytest.approx(1.0)  # both < 0.7


# --------------------------------------------------------------------------- accuracies


def test_accuracies_running_example():
    acc = accuracies(LABELS, PROBS, 0.5)
    assert acc == pytest.approx({"acc_real": 1.0, "acc_fake": 0.5, "acc_mean": 0.75, "acc": 0.75})


def test_accuracies_threshold_boundary_counts_as_fake():
    # p == t is fake: the real at exactly t is wrong, the fake at exactly t is right.
    acc = accuracies([0, 1], [0.3, 0.3], 0.3)
    assert acc["acc_real"] == 0.0
    assert acc["acc_fake"] == 1.0
    # Just above the score both flip.
    acc = accuracies([0, 1], [0.3, 0.3], np.nextafter(0.3, 1.0))
    assert acc["acc_real"] == 1.0
    assert acc["acc_fake"] == 0.0


def test_accuracies_other_threshold_hand_computed():
    # t = 0.3: reals 0.1 (right), 0.4 (wrong) -> 1/2; fakes 0.35, 0.8 both >= 0.3 -> 2/2.
    acc = accuracies(LABELS, PROBS, 0.3)
    assert acc["acc_real"] == pytest.approx(0.5)
    assert acc["acc_fake"] == pytest.approx(1.0)
    assert acc["acc_mean"] == pytest.approx(0.75)
    assert acc["acc"] == pytest.approx(0.75)  # 3 of 4


def test_accuracies_overall_differs_from_mean_when_imbalanced():
    # 3 reals all right, 1 fake wrong: acc = 3/4, acc_mean = (1 + 0) / 2.
    acc = accuracies([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], 0.5)
    assert acc["acc"] == pytest.approx(0.75)
    assert acc["acc_mean"] == pytest.approx(0.5)


def test_accuracies_empty_input_is_all_none():
    assert accuracies([], [], 0.5) == {"acc_real": None, "acc_fake": None, "acc_mean": None, "acc": None}


@pytest.mark.parametrize(
    "call",
    [
        lambda: accuracies([0, 1, 1], [0.2, 0.3], 0.5),
        lambda: tune_threshold([0, 1], [0.2, 0.3, 0.4]),
        lambda: score([0, 1, 0], [0.5]),
        lambda: score([0, 1], [0.1, 0.2, 0.3], tuned_threshold=0.5),
    ],
)
def test_mismatched_lengths_raise_value_error(call):
    with pytest.raises(ValueError, match="labels but"):
        call()


# --------------------------------------------------------------------------- tune_threshold


def test_tune_threshold_separable_running_example():
    # Running example: sorted scores 0.1(r) 0.35(f) 0.4(r) 0.8(f). Candidate midpoints:
    # 0.225 -> real 1/2, fake 2/2 -> 0.75; 0.375 -> real 1/2, fake 1/2 -> 0.5;
    # 0.6 -> real 2/2, fake 1/2 -> 0.75. Ends give 0.5. Ties 0.225 / 0.6: 0.6 is closer to 0.5.
    assert tune_threshold(LABELS, PROBS) == pytest.approx(0.6)


def test_tune_threshold_perfectly_separable_lands_in_the_gap():
    t = tune_threshold([0, 0, 1, 1], [0.05, 0.1, 0.7, 0.95])
    assert 0.1 < t <= 0.7
    assert accuracies([0, 0, 1, 1], [0.05, 0.1, 0.7, 0.95], t)["acc_mean"] == 1.0
    assert t == pytest.approx(0.4)  # midpoint of 0.1 and 0.7


@pytest.mark.parametrize("seed", range(8))
def test_tune_threshold_achieves_brute_force_maximum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    labels = rng.integers(0, 2, size=n)
    labels[:2] = [0, 1]  # both classes present
    # Coarse rounding forces ties between scores; overlapping distributions.
    probs = np.round(np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1), 2)

    # Brute force: every distinct score, every midpoint, both ends and a fine grid.
    u = np.unique(probs)
    cands = np.concatenate([u, (u[:-1] + u[1:]) / 2, [u[0] - 1e-3, u[-1] + 1e-3], np.linspace(-0.01, 1.01, 1021)])
    best = max(balanced_accuracy(labels, probs, c) for c in cands)

    t = tune_threshold(labels.tolist(), probs.tolist())
    assert 0.0 <= t <= 1.0
    assert balanced_accuracy(labels, probs, t) == pytest.approx(best, abs=1e-12)
    # The module's own accuracies agree with the reference at the returned threshold.
    assert accuracies(labels, probs, t)["acc_mean"] == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1], []])
def test_tune_threshold_one_class_or_empty_returns_half(labels):
    assert tune_threshold(labels, [0.9, 0.95, 0.99][: len(labels)]) == 0.5


@pytest.mark.parametrize(
    "probs, expected, other",
    [
        # labels 0,1,0,1 = reals at probs[0], probs[2]; fakes at probs[1], probs[3].
        # probs 0.1 0.3 0.6 0.9: midpoints 0.2 -> (1/2 + 2/2)/2 = 0.75, 0.45 -> (1/2 + 1/2)/2 = 0.5,
        # 0.75 -> (2/2 + 1/2)/2 = 0.75. Tie 0.2 (|0.2-0.5| = 0.3) vs 0.75 (0.25): 0.75 wins.
        ([0.1, 0.3, 0.6, 0.9], 0.75, 0.2),
        # probs 0.1 0.4 0.7 0.9: midpoints 0.25 -> 0.75, 0.55 -> 0.5, 0.8 -> 0.75.
        # Tie 0.25 (0.25) vs 0.8 (0.3): 0.25 wins -- so the rule is "nearest 0.5", not "highest".
        ([0.1, 0.4, 0.7, 0.9], 0.25, 0.8),
    ],
)
def test_tune_threshold_prefers_candidate_closest_to_half_among_equals(probs, expected, other):
    labels = [0, 1, 0, 1]
    # The example really has two equally good thresholds.
    assert balanced_accuracy(labels, probs, expected) == balanced_accuracy(labels, probs, other) == 0.75
    assert tune_threshold(labels, probs) == pytest.approx(expected)


def test_tune_threshold_result_clipped_to_unit_interval():
    # Inverted detector, scores inside (0, 1): every interior midpoint is worse than calling
    # everything fake or everything real (0.5). Lower end 0.1 - 1e-6 is nearer 0.5 than 0.95 + 1e-6.
    labels, probs = [1, 1, 0, 0], [0.1, 0.2, 0.9, 0.95]
    t = tune_threshold(labels, probs)
    assert 0.0 <= t <= 1.0
    assert t == pytest.approx(0.1 - 1e-6)
    assert accuracies(labels, probs, t)["acc_mean"] == pytest.approx(0.5)


def test_tune_threshold_clipped_end_keeps_its_accuracy():
    # Scores 0.0(f) 0.2(f) 0.9(r) 1.0(r). Midpoints: 0.1 -> (0 + 1/2)/2 = 0.25, 0.55 -> 0,
    # 0.95 -> (1/2 + 0)/2 = 0.25. Both ends give 0.5, the maximum.
    labels, probs = [1, 1, 0, 0], [0.0, 0.2, 0.9, 1.0]
    t = tune_threshold(labels, probs)
    assert balanced_accuracy(labels, probs, t) == pytest.approx(0.5)


def test_tune_threshold_maximum_is_exact_on_large_sets():
    # 100000 reals at 0.1; fakes: one at 0.3, 99999 at 0.9.
    # t = 0.2: every image right -> balanced accuracy 1.0 (the unique maximum).
    # t = 0.6: the fake at 0.3 is missed -> (1 + 99999/100000) / 2 = 0.999995, but |0.6-0.5| < |0.2-0.5|.
    n = 100_000
    labels = [0] * n + [1] * n
    probs = [0.1] * n + [0.3] + [0.9] * (n - 1)
    t = tune_threshold(labels, probs)
    assert accuracies(labels, probs, t)["acc_mean"] == 1.0


# --------------------------------------------------------------------------- score with a tuned threshold


def test_score_with_tuned_threshold_adds_threshold_and_val_keys():
    out = score(LABELS, PROBS, tuned_threshold=0.3)
    assert out["threshold"] == 0.3
    # At 0.3 (hand computed above): real 1/2, fake 2/2, mean 0.75, overall 3/4.
    assert out["acc_real@val"] == pytest.approx(0.5)
    assert out["acc_fake@val"] == pytest.approx(1.0)
    assert out["acc_mean@val"] == pytest.approx(0.75)
    assert out["acc@val"] == pytest.approx(0.75)
    # The @0.5 numbers are unchanged by the tuned threshold.
    assert out["acc_real@0.5"] == pytest.approx(1.0)
    assert out["acc_fake@0.5"] == pytest.approx(0.5)


def test_score_tuned_threshold_zero_is_not_treated_as_missing():
    out = score(LABELS, PROBS, tuned_threshold=0.0)
    assert out["threshold"] == 0.0
    assert out["acc_fake@val"] == 1.0 and out["acc_real@val"] == 0.0  # everything >= 0 is fake


def test_score_never_tunes_on_test_labels():
    # Test split where 0.5 is a poor threshold and ~0.2 would be perfect.
    test_labels = [0, 0, 0, 1, 1, 1]
    test_probs = [0.05, 0.1, 0.15, 0.25, 0.3, 0.35]
    better = tune_threshold(test_labels, test_probs)
    assert accuracies(test_labels, test_probs, better)["acc_mean"] == 1.0
    t = 0.5
    out = score(test_labels, test_probs, t)
    assert out["threshold"] == t
    # Accuracy "@val" is at the passed threshold (all images called real), not the better one ...
    assert out["acc_real@val"] == 1.0
    assert out["acc_fake@val"] == 0.0
    assert out["acc_mean@val"] == pytest.approx(0.5)
    # ... and the threshold fitted on these labels appears only under the "oracle" name.
    assert out["threshold_oracle"] == pytest.approx(better)
    assert out["acc_mean@oracle"] == 1.0
    # Flipping the test labels changes the oracle, never the reported validation threshold.
    flipped = score([1 - y for y in test_labels], test_probs, t)
    assert flipped["threshold"] == t


# --------------------------------------------------------------------------- mean_over


def test_mean_over_averages_and_sums_counts():
    a = score(LABELS, PROBS, tuned_threshold=0.3)  # ap 5/6, auc 0.75, acc_mean@0.5 0.75
    b = score([0, 1], [0.2, 0.9], tuned_threshold=0.3)  # ap 1, auc 1, acc_mean@0.5 1.0
    out = mean_over([a, b])
    assert out["ap"] == pytest.approx((5 / 6 + 1.0) / 2)
    assert out["auc"] == pytest.approx((0.75 + 1.0) / 2)
    assert out["acc_mean@0.5"] == pytest.approx((0.75 + 1.0) / 2)
    assert out["acc_fake@0.5"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["acc_real@val"] == pytest.approx((0.5 + 1.0) / 2)
    # Counts are totals, not means; the threshold is not a metric to average.
    assert (out["n"], out["n_real"], out["n_fake"]) == (6, 3, 3)
    assert "threshold" not in out


def test_mean_over_skips_none_and_nan():
    rows = [
        {"n": 3, "n_real": 0, "n_fake": 3, "ap": None, "auc": None, "acc": 0.6},
        {"n": 4, "n_real": 2, "n_fake": 2, "ap": 0.8, "auc": math.nan, "acc": 0.9},
        {"n": 2, "n_real": 1, "n_fake": 1, "ap": 0.4, "auc": None, "acc": 0.3},
    ]
    out = mean_over(rows)
    assert out["ap"] == pytest.approx((0.8 + 0.4) / 2)  # None skipped, not counted as 0
    assert out["auc"] is None  # nothing defined
    assert out["acc"] == pytest.approx((0.6 + 0.9 + 0.3) / 3)
    assert (out["n"], out["n_real"], out["n_fake"]) == (9, 3, 6)


def test_mean_over_of_one_class_subsets_from_score():
    rows = [score([1, 1], [0.7, 0.2]), score([0, 1], [0.1, 0.9])]
    out = mean_over(rows)
    assert out["ap"] == pytest.approx(1.0)  # only the second subset defines AP
    assert out["acc_real@0.5"] == pytest.approx(1.0)  # first subset has no reals
    assert out["acc_fake@0.5"] == pytest.approx((0.5 + 1.0) / 2)


def test_mean_over_empty():
    assert mean_over([]) == {"n": 0, "n_real": 0, "n_fake": 0}


# ---- EER, TPR at fixed FPR, calibration error, bootstrap intervals ----------------

def test_equal_error_rate_hand_computed():
    from aigi.eval.metrics import equal_error_rate

    # perfectly separated → 0
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # reals 0.1, 0.6 ; fakes 0.4, 0.9: at t in (0.4, 0.6] FPR = 1/2 (0.6 flagged), FNR = 1/2 (0.4 missed)
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    # all scores equal: the ROC is the diagonal, EER = 0.5
    assert equal_error_rate([0, 1, 0, 1], [0.3] * 4) == pytest.approx(0.5)
    assert equal_error_rate([1, 1], [0.2, 0.9]) is None


def test_tpr_at_fixed_fpr():
    from aigi.eval.metrics import tpr_at_fpr

    # 100 reals at 0.00..0.99, fakes at 0.985 (above 1 real) and 0.5 (above 50 reals)
    reals = [i / 100 for i in range(100)]
    labels = [0] * 100 + [1, 1]
    probs = reals + [0.985, 0.5]
    assert tpr_at_fpr(labels, probs, 0.01) == pytest.approx(0.5)   # 1 % FPR catches the 0.985 fake only
    assert tpr_at_fpr(labels, probs, 0.5) == pytest.approx(1.0)    # 50 % FPR catches both
    assert tpr_at_fpr([0, 0], [0.1, 0.2], 0.05) is None


def test_expected_calibration_error():
    from aigi.eval.metrics import expected_calibration_error

    # two bins: p = 0.9 for 10 images of which 9 fake → |0.9 − 0.9| = 0; p = 0.2 for 10 images, 0 fake → 0.2
    labels = [1] * 9 + [0] + [0] * 10
    probs = [0.9] * 10 + [0.2] * 10
    assert expected_calibration_error(labels, probs) == pytest.approx(0.5 * 0.0 + 0.5 * 0.2)
    assert expected_calibration_error([0, 0], [0.0, 0.0]) == 0.0  # one class is fine


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_n():
    from aigi.eval.metrics import bootstrap_ci

    rng = np.random.default_rng(0)
    def data(n):
        y = np.r_[np.zeros(n), np.ones(n)].astype(int)
        p = np.clip(np.r_[rng.normal(0.35, 0.15, n), rng.normal(0.65, 0.15, n)], 0, 1)
        return y, p
    y, p = data(100)
    ci = bootstrap_ci(y, p, 0.5, n=300, seed=1)
    est = score(y, p, 0.5)
    for key in ("ap", "auc", "acc_mean@0.5", "acc_mean@val"):
        lo, hi = ci[f"{key}_ci"]
        assert lo <= est[key] <= hi, key
    assert bootstrap_ci(y, p, 0.5, n=300, seed=1) == ci  # seeded
    y4, p4 = data(400)
    wide = ci["auc_ci"][1] - ci["auc_ci"][0]
    narrow = bootstrap_ci(y4, p4, 0.5, n=300, seed=1)["auc_ci"]
    assert narrow[1] - narrow[0] < wide
    assert bootstrap_ci([1, 1, 1], [0.2, 0.5, 0.9], None, n=50)["ap_ci"] is None


def test_score_reports_every_metric_and_one_class_is_not_a_crash():
    full = score([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], 0.5, bootstrap=20)
    for key in ("ap", "auc", "eer", "tpr@1%fpr", "tpr@5%fpr", "ece", "acc_mean@0.5", "acc_mean@val",
                "acc_mean@oracle", "threshold_oracle", "ap_ci", "auc_ci"):
        assert key in full, key
    one = score([1, 1, 1], [0.2, 0.6, 0.9], 0.5, bootstrap=20)
    assert one["ap"] is None and one["auc"] is None and one["eer"] is None and one["tpr@1%fpr"] is None
    assert one["acc_fake@0.5"] == pytest.approx(2 / 3) and one["ap_ci"] is None


def test_bootstrap_of_the_subset_average():
    from aigi.eval.metrics import bootstrap_ci, bootstrap_mean_ci

    rng = np.random.default_rng(3)
    groups = []
    for shift in (0.2, 0.4):
        y = np.r_[np.zeros(80), np.ones(80)].astype(int)
        p = np.clip(np.r_[rng.normal(0.5 - shift, 0.2, 80), rng.normal(0.5 + shift, 0.2, 80)], 0, 1)
        groups.append((y, p))
    ci = bootstrap_mean_ci(groups, 0.5, n=200, seed=0)
    mean_ap = np.mean([score(y, p)["ap"] for y, p in groups])
    assert ci["ap_ci"][0] <= mean_ap <= ci["ap_ci"][1]
    # one group: the same as the plain bootstrap
    assert bootstrap_mean_ci(groups[:1], 0.5, n=100, seed=4) == bootstrap_ci(*groups[0], 0.5, n=100, seed=4)
