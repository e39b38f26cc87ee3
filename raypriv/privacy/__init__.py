"""Core privacy pieces every technique shares: the randomness a DP guarantee rests on
(:mod:`raypriv.privacy.rng`) and the data owner's key for fingerprints of private data
(:mod:`raypriv.privacy.keys`)."""
