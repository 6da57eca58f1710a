"""Printed numbers: significant digits, decimals from a standard error, no negative zero."""

import math

import numpy as np
import pytest
import torch

from tutorial_pkg import reporting


@pytest.mark.parametrize("value, digits, expected", [(2703.762, 2, 2700.0), (0.08514, 2, 0.085), (439.78, 2, 440.0),
                                                     (-0.0, 2, 0.0), (95.72, 2, 96.0), (1.0, 3, 1.0), (-0.004567, 1, -0.005)])
def test_significant(value, digits, expected):
    assert reporting.significant(value, digits) == expected
    assert math.copysign(1.0, reporting.significant(-0.0)) == 1.0


@pytest.mark.parametrize("se, decimals", [(0.03, 2), (0.012, 3), (0.19, 2), (4.0, 0), (17.0, 0), (0.0004, 4)])
def test_decimals_for_a_standard_error(se, decimals):
    assert reporting.decimals_for(se) == decimals


def test_fmt_never_prints_a_negative_zero():
    assert reporting.fmt(-0.001, 2) == "0.00" and reporting.fmt(-0.0, 3) == "0.000"
    assert reporting.fmt(-0.006, 2) == "-0.01" and reporting.fmt(torch.tensor(1.23456), 3) == "1.235"


def test_estimate_and_mean_and_se():
    assert reporting.estimate(0.7234, 0.031) == "0.72 ± 0.03"
    assert reporting.estimate(-0.0004, 0.012) == "0.000 ± 0.012"
    assert reporting.estimate(0.2461, 0.0008, min_se=0.005) == "0.246 ± 0.001"   # no more digits than 0.005 gives
    assert reporting.estimate(1.0, 0.0, min_se=0.005) == "1.000 ± 0.000"
    mean, se = reporting.mean_and_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / math.sqrt(3))
    assert reporting.mean_and_se(np.array([0.5, 0.5]))[1] == 0.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="se must be > 0"):
        reporting.decimals_for(0.0)
    with pytest.raises(ValueError, match="at least two"):
        reporting.mean_and_se([1.0])
    with pytest.raises(TypeError, match="value must be a real number"):
        reporting.significant("3")
    with pytest.raises(ValueError, match="digits must be >= 1"):
        reporting.significant(3.0, 0)
