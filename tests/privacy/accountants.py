"""An accountant independent of raypriv's (dp-accounting), for cross-checking its ε."""


def dp_accounting_epsilon(mechanisms, *, delta, kind):
    """ε of the composed Poisson-subsampled Gaussian mechanisms by dp-accounting (PLD or RDP)."""
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    acct = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4) if kind == "pld" \
        else rdp_privacy_accountant.RdpAccountant()
    events = [dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(m.sample_rate, dp_accounting.GaussianDpEvent(m.sigma)), m.steps)
        for m in mechanisms]
    acct.compose(dp_accounting.ComposedDpEvent(events))
    return acct.get_epsilon(delta)
