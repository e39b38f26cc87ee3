"""DP²-VAE: differentially private VAEs with a private pre-training stage (Jiang et al., 2022).

Both stages run DP-SGD (Opacus, Poisson sampling) on the private data and are charged to
one budget by one accountant; the run is a Ray Train job whose every step is written to a
durable privacy ledger before it is taken. A conditional VAE then samples a labeled
synthetic corpus, which :func:`evaluate_dpvae` scores by downstream accuracy and by a
Fréchet distance in a real-data classifier's feature space.

>>> from raypriv.dpvae import DPVAEConfig, plan_stages
>>> cfg = DPVAEConfig(epsilon=10, pretrain_epochs=2, epochs=2, accountant="rdp", dataset_size=4000)
>>> [(p.name, p.steps) for p in plan_stages(cfg, train_rows=4000)]
[('pretrain', 8), ('main', 8)]
"""

from raypriv.lazy import lazy_exports

_MEMBERS = {
    'BudgetExhaustedError': 'raypriv.privacy.ledger',
    'DPVAEConfig': 'raypriv.dpvae.config',
    'Mechanism': 'raypriv.privacy.accounting',
    'PrivacyLedger': 'raypriv.privacy.ledger',
    'build_vae': 'raypriv.dpvae.models',
    'check_dp_compatible': 'raypriv.dpvae.models',
    'epsilon': 'raypriv.privacy.accounting',
    'evaluate_dpvae': 'raypriv.dpvae.report',
    'frechet_distance': 'raypriv.dpvae.report',
    'is_finished': 'raypriv.dpvae.train',
    'load_vae': 'raypriv.dpvae.sample',
    'model_dir': 'raypriv.dpvae.train',
    'plan_stages': 'raypriv.dpvae.train',
    'release_dir': 'raypriv.dpvae.train',
    'sample_dpvae': 'raypriv.dpvae.sample',
    'solve_sigmas': 'raypriv.privacy.accounting',
    'train_dpvae': 'raypriv.dpvae.train',
}
__all__ = sorted(_MEMBERS)
__getattr__, __dir__ = lazy_exports(__name__, _MEMBERS)
