"""The privacy of tuning, pinned against Google's dp-accounting (an independent implementation):
composition of trials, and private selection with a truncated negative binomial number of trials."""
import math

import pytest

from raypriv.errors import ConfigError
from raypriv.privacy.accounting import Mechanism
from raypriv.privacy.selection import RdpCurve, TruncatedNegativeBinomial, compose, private_selection_curve

RUN = [Mechanism(sigma=1.0, sample_rate=0.01, steps=1000)]
OTHER = [Mechanism(sigma=2.0, sample_rate=0.02, steps=500), Mechanism(sigma=1.5, sample_rate=0.01, steps=300)]


def _event(run):
    import dp_accounting as dpa

    return dpa.ComposedDpEvent([dpa.SelfComposedDpEvent(
        dpa.PoissonSampledDpEvent(m.sample_rate, dpa.GaussianDpEvent(m.sigma)), m.steps) for m in run])


@pytest.mark.parametrize("count", [1, 3, 8])
def test_composed_trials_match_dp_accounting(count):
    import dp_accounting as dpa

    ours = compose([RdpCurve.of(RUN)] * count + [RdpCurve.of(OTHER)]).epsilon(1e-5)
    theirs = dpa.rdp.RdpAccountant().compose(
        dpa.ComposedDpEvent([_event(RUN)] * count + [_event(OTHER)])).get_epsilon(1e-5)
    assert ours == pytest.approx(theirs, rel=1e-4)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_private_selection_matches_dp_accounting(eta):
    import dp_accounting as dpa
    from dp_accounting.dp_event import RepeatAndSelectDpEvent

    k = TruncatedNegativeBinomial.with_mean(8, eta=eta)
    assert k.mean == pytest.approx(8, rel=1e-9)
    ours = private_selection_curve(RdpCurve.of(RUN), k).epsilon(1e-5)
    theirs = dpa.rdp.RdpAccountant().compose(RepeatAndSelectDpEvent(_event(RUN), 8.0, eta)).get_epsilon(1e-5)
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_private_selection_costs_a_small_multiple_of_one_trial_where_composition_grows():
    one = RdpCurve.of(RUN)
    single = one.epsilon(1e-5)
    selected = {m: private_selection_curve(one, TruncatedNegativeBinomial.with_mean(m, eta=1)).epsilon(1e-5)
                for m in (8, 32)}
    composed = {m: compose([one] * m).epsilon(1e-5) for m in (8, 32)}
    assert single < selected[8] < selected[32] < 2.5 * single            # 2.10 → 3.97, 4.72
    assert composed[8] > selected[8] and composed[32] > 2.5 * selected[32]    # 5.93, 13.2


def test_the_number_of_trials_follows_its_distribution():
    k = TruncatedNegativeBinomial.with_mean(4, eta=1)             # geometric with γ = 1/4
    assert k.gamma == pytest.approx(0.25, rel=1e-9)
    assert sum(k.pmf(i) for i in range(1, 400)) == pytest.approx(1.0, abs=1e-9)
    assert k.pmf(1) == pytest.approx(0.25) and k.pmf(2) == pytest.approx(0.25 * 0.75)
    draws = [k.draw() for _ in range(4000)]
    assert min(draws) >= 1 and abs(sum(draws) / len(draws) - 4) < 0.3
    log = TruncatedNegativeBinomial.with_mean(4, eta=0)            # logarithmic: pmf ∝ (1-γ)^k / k
    assert log.pmf(2) / log.pmf(1) == pytest.approx((1 - log.gamma) / 2)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="eta"):
        TruncatedNegativeBinomial(-1.5, 0.5)
    with pytest.raises(ConfigError, match="mean_trials"):
        TruncatedNegativeBinomial.with_mean(1, eta=1)
    with pytest.raises(ConfigError, match="delta"):
        RdpCurve.of(RUN).epsilon(0)
    assert RdpCurve.zero().epsilon(1e-5) < math.log(1e5)      # the conversion's own floor, no crash
