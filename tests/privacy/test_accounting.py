"""Privacy maths: pinned values, the σ search, and an independent check with Google's dp-accounting."""
import math

import pytest

from raypriv.privacy.accounting import Mechanism, check_budget, epsilon, solve_sigmas
from raypriv.errors import ConfigError

from tests.privacy.accountants import dp_accounting_epsilon

Q, STEPS = 256 / 4000, 313          # mnist5k's training split, expected batch 256, 20 epochs


def test_pinned_rdp_value():
    # Opacus' RDP accountant for σ = 1, q = 0.01, 1000 steps at δ = 1e-5
    assert epsilon([Mechanism(sigma=1.0, sample_rate=0.01, steps=1000)], delta=1e-5, accountant="rdp") == \
        pytest.approx(2.1014, abs=1e-3)


def test_no_steps_spend_nothing():
    assert epsilon([Mechanism(sigma=1.0, sample_rate=0.1, steps=0)], delta=1e-5) == 0.0


@pytest.mark.parametrize("target", [1.0, 10.0])
@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_solved_sigma_spends_the_target_and_no_more(target, accountant):
    (sigma,) = solve_sigmas(sample_rates=[Q], steps=[STEPS], epsilon_target=target, delta=1e-5, accountant=accountant)
    spent = epsilon([Mechanism(sigma=sigma, sample_rate=Q, steps=STEPS)], delta=1e-5, accountant=accountant)
    assert target * 0.99 <= spent <= target


def test_two_stage_split_gives_stage_one_its_share_and_the_total_the_target():
    s1, s2 = solve_sigmas(sample_rates=[Q, Q], steps=[STEPS, STEPS], epsilon_target=10.0, delta=1e-5,
                          accountant="prv", budget_split=0.3)
    alone = epsilon([Mechanism(sigma=s1, sample_rate=Q, steps=STEPS)], delta=1e-5)
    both = epsilon([Mechanism(sigma=s1, sample_rate=Q, steps=STEPS), Mechanism(sigma=s2, sample_rate=Q, steps=STEPS)],
                   delta=1e-5)
    assert 2.97 <= alone <= 3.0 and 9.9 <= both <= 10.0
    assert s2 < s1                               # stage 2 gets the larger share, so less noise


@pytest.mark.parametrize("target,split", [(1.0, 0.5), (10.0, 0.5), (10.0, 0.2)])
def test_epsilon_agrees_with_dp_accounting_within_two_percent(target, split):
    """Our PRV ε vs dp-accounting's PLD, and our RDP ε vs dp-accounting's RDP, for the
    two-stage mechanism a DP²-VAE run records (different σ per stage)."""
    sigmas = solve_sigmas(sample_rates=[Q, 128 / 4000], steps=[STEPS, 2 * STEPS], epsilon_target=target,
                          delta=1e-5, accountant="prv", budget_split=split)
    mech = [Mechanism(sigma=sigmas[0], sample_rate=Q, steps=STEPS),
            Mechanism(sigma=sigmas[1], sample_rate=128 / 4000, steps=2 * STEPS)]
    ours_prv, ours_rdp = epsilon(mech, delta=1e-5, accountant="prv"), epsilon(mech, delta=1e-5, accountant="rdp")
    pld, rdp = dp_accounting_epsilon(mech, delta=1e-5, kind="pld"), dp_accounting_epsilon(mech, delta=1e-5, kind="rdp")
    # within 2 %, and never optimistic beyond the PLD discretization (0.5 %)
    assert pld * 0.995 <= ours_prv <= pld * 1.02
    assert rdp * 0.98 <= ours_rdp <= rdp * 1.02
    assert ours_prv <= ours_rdp                  # RDP is the looser bound


@pytest.mark.parametrize("eps", [0, -1, math.inf, float("nan")])
def test_nonpositive_or_infinite_epsilon_is_refused(eps):
    with pytest.raises(ConfigError, match="epsilon"):
        check_budget(epsilon=eps, delta=1e-5)


def test_delta_must_be_below_one_over_n():
    check_budget(epsilon=1.0, delta=1e-5, dataset_size=4000)
    with pytest.raises(ConfigError, match=r"delta.*1/N = 0.00025 for N = 4000"):
        check_budget(epsilon=1.0, delta=1e-3, dataset_size=4000)


def test_two_stages_need_a_split():
    with pytest.raises(ConfigError, match="budget_split"):
        solve_sigmas(sample_rates=[Q, Q], steps=[10, 10], epsilon_target=1.0, delta=1e-5, budget_split=1.0)
