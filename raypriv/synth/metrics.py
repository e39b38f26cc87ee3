"""Membership-inference scores of a synthetic set (image similarity is the core's
:mod:`raypriv.similarity`).

>>> import numpy as np
>>> attack_auc(members=np.array([0.1, 0.2]), nonmembers=np.array([0.3, 0.4]))["auc"]
1.0
"""
from __future__ import annotations

import numpy as np


def attack_auc(*, members: np.ndarray, nonmembers: np.ndarray, fpr: float = 0.01) -> dict:
    """Loss-threshold membership inference (Yeom et al. 2018): a lower loss means "member".

    Returns the attack's ROC ``auc`` (ties count one half; 0.5 is chance) and ``tpr_at_fpr``,
    the fraction of members flagged at the threshold that flags at most ``fpr`` of non-members."""
    m = -np.asarray(members, dtype=np.float64)
    n = -np.asarray(nonmembers, dtype=np.float64)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("membership inference needs members and non-members")
    scores = np.concatenate([m, n])
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    auc = (ranks[:len(m)].sum() - len(m) * (len(m) + 1) / 2) / (len(m) * len(n))
    k = int(np.floor(fpr * len(n)))  # non-members allowed above the threshold
    thr = np.sort(n)[::-1][k] if k < len(n) else -np.inf
    tpr = float(np.mean(m > thr))
    return {"auc": float(auc), "tpr_at_fpr": tpr, "fpr": fpr, "members": len(m), "nonmembers": len(n)}
