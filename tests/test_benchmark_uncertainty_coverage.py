"""The coverage benchmark's count of questions within the target band, with and without the sampling margin."""

import numpy as np
import pandas as pd

from benchmark_scripts import load


def test_within_band_counts_questions_and_widens_by_each_shares_own_margin():
    within_band = load("uncertainty_coverage").within_band
    shares = pd.DataFrame({"true_coverage": [0.90, 0.96, 0.847], "vote_coverage": [0.85, 0.95, 0.951]})
    assert within_band(shares).to_dict() == {"true_coverage": 1, "vote_coverage": 2}  # the bounds are inside
    # a margin of 0.004 (two standard errors of 0.002) brings 0.847 in, not 0.96; 0.951 needs more than 0.0005
    margin = np.array([[0.004, 0.004], [0.004, 0.004], [0.004, 0.0005]])
    assert within_band(shares, margin).to_dict() == {"true_coverage": 2, "vote_coverage": 2}
    assert within_band(shares, 0.01).to_dict() == {"true_coverage": 3, "vote_coverage": 3}
    # no standard error (a question one galaxy answered): no widening, and an inside share still counts
    margin[:, 0] = np.nan
    assert within_band(shares, margin).to_dict() == {"true_coverage": 1, "vote_coverage": 2}
