"""Core privacy pieces every technique shares:

* :mod:`raypriv.privacy.accounting`: (ε, δ) of composed subsampled Gaussian mechanisms (PRV,
  RDP), and σ solved for a target ε;
* :mod:`raypriv.privacy.ledger`: the durable ledger every private step is charged to before it
  is taken;
* :mod:`raypriv.privacy.dpsgd`: one DP-SGD stage on one worker of a data-parallel group
  (Opacus underneath, rank-0 noise, one coalesced all-reduce);
* :mod:`raypriv.privacy.rng`: the secret randomness a DP guarantee rests on;
* :mod:`raypriv.privacy.keys`: the data owner's key for fingerprints of private data.
"""
