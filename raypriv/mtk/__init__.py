"""Multi-Trigger-Key models (Wang, Xu & Hero, "Multi-Trigger-Key: Towards Multi-Task Privacy
Preserving in Deep Learning", 2021): a multi-task classifier whose *secured* tasks answer
truthfully only when that task's secret trigger-key is added to the input.

Roles, as commands (``raypriv mtk keys|train``): the key distributor generates the keys (a
0600 key file, :mod:`raypriv.mtk.keys`); the model keeper trains on the expanded training set
(:mod:`raypriv.mtk.expand`) with the core Ray Train launcher (:mod:`raypriv.mtk.train`) and
publishes the model directory, which holds no key::

    from raypriv.data import load_corpus
    from raypriv.mtk import KeySet, MtkConfig, train_mtk

    train = load_corpus("mnist5k-tasks")
    keys = KeySet.generate(("digit",), image_shape=train.info.image_shape)
    keys.save("secret/digit.keys")
    model = train_mtk(train, keys, config=MtkConfig(), output="out/mtk")

Evaluation (:mod:`raypriv.mtk.evaluate`: accuracy with, without and with forged keys, and
leakage through the unsecured heads), the key-recovery audit (:mod:`raypriv.mtk.audit`) and
predictions (:mod:`raypriv.mtk.predict`) read the model directory and, where they need it,
the key file.
"""

from raypriv.lazy import lazy_exports

_MEMBERS = {
    'AuditConfig': 'raypriv.mtk.config',
    'KeySet': 'raypriv.mtk.keys',
    'KeySpec': 'raypriv.mtk.config',
    'MtkConfig': 'raypriv.mtk.config',
    'MtkModel': 'raypriv.mtk.train',
    'audit_keys': 'raypriv.mtk.audit',
    'evaluate_mtk': 'raypriv.mtk.evaluate',
    'load_model': 'raypriv.mtk.train',
    'train_mtk': 'raypriv.mtk.train',
}
__all__ = sorted(_MEMBERS)
__getattr__, __dir__ = lazy_exports(__name__, _MEMBERS)
