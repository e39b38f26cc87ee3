"""Settings and paths shared by the DP-VAE tests."""
import os

# digits: 1,437 training images of 8×8. The declared (public) size is 1,500, not the true
# count: q = 256 / 1500 = 0.171, 6 steps per epoch, and nothing released depends on 1,437.
TRUE_ROWS = 1437
TINY = dict(epsilon=4.0, delta=1e-4, batch_size=256, pretrain_epochs=2, epochs=2, latent_dim=4, width=8,
            checkpoint_every=4, dataset_size=1500)


def release(out: str, name: str = "manifest.json") -> str:
    """A file of a run's release directory."""
    return os.path.join(out, "release", name)


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
