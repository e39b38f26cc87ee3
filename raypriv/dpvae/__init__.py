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
from __future__ import annotations

from raypriv.privacy.accounting import Mechanism, epsilon, solve_sigmas
from raypriv.dpvae.config import DPVAEConfig
from raypriv.dpvae.evaluate import evaluate_dpvae, frechet_distance
from raypriv.privacy.ledger import BudgetExhaustedError, PrivacyLedger
from raypriv.dpvae.models import build_vae, check_dp_compatible
from raypriv.dpvae.sample import load_vae, sample_dpvae
from raypriv.dpvae.train import is_finished, model_dir, plan_stages, release_dir, train_dpvae

__all__ = ["BudgetExhaustedError", "DPVAEConfig", "Mechanism", "PrivacyLedger", "build_vae", "check_dp_compatible",
           "epsilon", "evaluate_dpvae", "frechet_distance", "is_finished", "load_vae", "model_dir", "plan_stages",
           "release_dir", "sample_dpvae", "solve_sigmas", "train_dpvae"]
