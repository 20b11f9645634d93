"""Gamma_n and D_nm estimators."""

import pytest

from mdi_exit_ros.core import ComputeDelayEstimator, Ewma, LinkDelayEstimator


def test_ewma() -> None:
    e = Ewma(0.5)
    assert e.value is None and e.value_or(3.0) == 3.0
    assert e.update(2.0) == 2.0  # first sample initialises
    assert e.update(4.0) == 3.0
    assert e.count == 2
    assert Ewma(0.5, initial=1.0).update(3.0) == 2.0
    with pytest.raises(ValueError):
        Ewma(0.0)
    with pytest.raises(ValueError):
        Ewma(1.5)
    with pytest.raises(ValueError):
        e.update(float("nan"))


def test_compute_delay_prior_overall_and_per_task() -> None:
    g = ComputeDelayEstimator(prior=0.05, weight=0.5)
    assert g.gamma() == 0.05 and g.gamma(2) == 0.05 and g.samples == 0
    g.observe(0.1, task_index=1)
    g.observe(0.3, task_index=2)
    assert g.gamma() == pytest.approx(0.2)
    assert g.gamma(1) == pytest.approx(0.1) and g.gamma(2) == pytest.approx(0.3)
    assert g.gamma(5) == pytest.approx(0.2)  # unseen index: overall
    g.observe(0.2)
    assert g.gamma() == pytest.approx(0.2) and g.samples == 3
    with pytest.raises(ValueError):
        g.observe(-1.0)
    with pytest.raises(ValueError):
        ComputeDelayEstimator(prior=-1.0)


def test_link_prior_before_samples() -> None:
    link = LinkDelayEstimator(prior_latency=0.01, prior_bandwidth=1000.0)
    assert link.delay(500, 0.0) == pytest.approx(0.51)
    assert link.fit() is None and link.samples == 0


def test_link_regression_separates_latency_and_bandwidth() -> None:
    link = LinkDelayEstimator(prior_latency=1.0, prior_bandwidth=1.0, weight=0.2)
    latency, bw = 0.004, 2e6
    for i in range(200):
        size = 1_000 + (i % 5) * 50_000
        link.observe(2 * latency + size / bw, size, now=float(i))
    lat, per_byte = link.fit() or (0.0, 0.0)
    assert lat == pytest.approx(latency, rel=1e-6)
    assert per_byte == pytest.approx(1 / bw, rel=1e-6)
    assert link.delay(100_000, 200.0) == pytest.approx(latency + 100_000 / bw, rel=1e-6)


def test_link_constant_size_uses_prior_bandwidth_and_stays_within_rtt_bounds() -> None:
    link = LinkDelayEstimator(prior_latency=0.0, prior_bandwidth=1e6)
    size = 40_000
    rtt = 2 * 0.01 + size / 2e6  # true latency 0.01, bandwidth 2e6
    for i in range(10):
        link.observe(rtt, size, now=float(i))
    lat, per_byte = link.fit() or (0.0, 0.0)
    assert per_byte == pytest.approx(1e-6)  # prior slope
    # latency and bandwidth are not separable: D = rtt/2 + size * b_prior / 2
    d = link.delay(size, 9.0)
    assert d == pytest.approx(rtt / 2 + size * 1e-6 / 2)
    assert rtt / 2 <= d <= rtt and lat >= 0.0


def test_link_pessimistic_prior_bandwidth_capped_by_measured_rtt() -> None:
    link = LinkDelayEstimator(prior_latency=0.0, prior_bandwidth=10.0)  # absurdly slow prior
    link.observe(0.05, 40_000, 0.0)
    assert link.delay(40_000, 0.0) == pytest.approx(0.05)  # D <= rtt
    assert link.fit() == (0.0, pytest.approx(0.05 / 40_000))


def test_link_negative_slope_falls_back_to_prior() -> None:
    link = LinkDelayEstimator(prior_latency=0.0, prior_bandwidth=1e6)
    link.observe(0.5, 0, 0.0)
    link.observe(0.1, 100_000, 0.0)  # noise: bigger payload, faster ack
    _, per_byte = link.fit() or (0.0, 0.0)
    assert per_byte == pytest.approx(1e-6)


def test_link_decays_toward_prior_when_stale() -> None:
    link = LinkDelayEstimator(
        prior_latency=0.01, prior_bandwidth=1e9, stale_after=10.0, half_life=5.0
    )
    link.observe(2.0, 0, now=0.0)  # measured D = 1.0 s, prior = 0.01 s
    assert link.delay(0, 10.0) == pytest.approx(1.0)  # not stale yet
    assert link.delay(0, 15.0) == pytest.approx(0.5 * 1.0 + 0.5 * 0.01)  # one half-life
    assert link.delay(0, 1000.0) == pytest.approx(0.01, abs=1e-6)


def test_link_validation() -> None:
    with pytest.raises(ValueError):
        LinkDelayEstimator(prior_bandwidth=0.0)
    with pytest.raises(ValueError):
        LinkDelayEstimator(half_life=0.0)
    link = LinkDelayEstimator()
    with pytest.raises(ValueError):
        link.observe(-1.0, 10, 0.0)
    with pytest.raises(ValueError):
        link.observe(1.0, -10, 0.0)
