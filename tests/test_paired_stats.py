"""benchmarks/paired.py: the statistics the benchmark tables use to call one plan better."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paired import mcnemar, sqnr_gap  # noqa: E402


@pytest.mark.parametrize("a_only,b_only", [(0, 0), (0, 2), (2, 12), (10, 2), (7, 7), (30, 11)])
def test_mcnemar_is_the_exact_binomial_test_on_discordant_samples(a_only, b_only):
    from scipy.stats import binomtest
    both, neither = 50, 9
    a = np.r_[np.ones(a_only, bool), np.zeros(b_only, bool), np.ones(both, bool), np.zeros(neither, bool)]
    b = np.r_[np.zeros(a_only, bool), np.ones(b_only, bool), np.ones(both, bool), np.zeros(neither, bool)]
    got_a, got_b, p = mcnemar(a, b)
    assert (got_a, got_b) == (a_only, b_only)
    want = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only).pvalue
    assert p == pytest.approx(want, rel=1e-12)


def test_sqnr_gap_interval_brackets_a_known_gap_and_flips_sign():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2000, 10))
    a = ref + 0.10 * rng.standard_normal(ref.shape)
    b = ref + 0.20 * rng.standard_normal(ref.shape)  # twice the noise amplitude: 6.02 dB worse
    gap, lo, hi = sqnr_gap(ref, a, b)
    assert lo < gap < hi
    assert lo < 20 * np.log10(2) < hi
    assert hi - lo < 0.5
    gap_r, lo_r, hi_r = sqnr_gap(ref, b, a)
    assert gap_r == pytest.approx(-gap) and lo_r < -5 and hi_r < 0
