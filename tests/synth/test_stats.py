"""Class-wise BN statistics: exact merge over any sharding, and clear errors."""
import dataclasses

import numpy as np
import pytest
import torch

from raypriv.errors import ConfigError, DataError
from raypriv.runtime import ResourceSpec
from raypriv.synth import ClassBNStats, compute_class_stats
from raypriv.synth.stats import BNInputRecorder

QUIET = dict(progress=lambda m: None)


def _one_process(corpus, teacher):
    """Per-class mean/var of each BN input, computed on the whole set at once in float64."""
    rows = corpus.ds.take_all()
    x = torch.tensor(np.stack([r["image"] for r in rows])).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor([int(r["label"]) for r in rows])
    net = teacher.build().eval()
    rec = BNInputRecorder(net)
    with torch.no_grad():
        net(x)
    out = []
    for inp in rec.inputs:
        per = []
        for c in range(corpus.info.num_classes):
            xc = inp[y == c].double().transpose(0, 1).reshape(inp.shape[1], -1)
            per.append((xc.mean(1).numpy(), xc.var(1, unbiased=False).numpy()))
        out.append(per)
    return out


@pytest.mark.parametrize("blocks,batch_size,workers", [(1, 300, 1), (7, 13, 2)])
def test_merged_statistics_equal_one_process_for_any_sharding(digits300, digits_teacher, blocks, batch_size, workers):
    corpus = dataclasses.replace(digits300, ds=digits300.ds.random_shuffle(seed=blocks).repartition(blocks))
    stats = compute_class_stats(corpus, digits_teacher, resources=ResourceSpec(workers=workers),
                                batch_size=batch_size, **QUIET)
    ref = _one_process(digits300, digits_teacher)
    assert len(stats.layers) == 4 and stats.channels == (32, 32, 64, 64)
    for layer, per_class in enumerate(ref):
        for c, (m, v) in enumerate(per_class):
            np.testing.assert_allclose(stats.mean[layer][c], m, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(stats.var[layer][c], v, rtol=1e-7, atol=1e-10)
    # class-wise statistics really differ between classes (else the method degenerates to global)
    assert np.abs(stats.mean[0][0] - stats.mean[0][1]).max() > 1e-3
    assert sum(stats.manifest["images_per_class"]) == 300


def test_statistics_round_trip_through_disk(digits300, digits_teacher, tmp_path):
    stats = compute_class_stats(digits300, digits_teacher, resources=ResourceSpec(workers=1), **QUIET)
    back = ClassBNStats.load(stats.save(str(tmp_path / "stats")))
    assert back.layers == stats.layers and back.manifest["input_fingerprint"] == digits300.keyed_fingerprint()
    for a, b in zip(stats.var + stats.global_mean, back.var + back.global_mean):
        np.testing.assert_array_equal(a, b)
    t = back.targets(3)
    np.testing.assert_array_equal(t[0][0], stats.mean[0][3])
    np.testing.assert_array_equal(back.targets(3, kind="global")[1][1], stats.global_var[1])


def test_network_without_batchnorm_is_refused(digits300):
    import torch.nn as nn

    from raypriv.models import register_model
    from raypriv.synth import Teacher

    @register_model("test_no_bn")
    def _no_bn(*, in_channels, num_classes, image_size):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))

    kw = {"in_channels": 1, "num_classes": 10, "image_size": 8}
    t = Teacher(model="test_no_bn", model_kwargs=kw, state=_no_bn(**kw).state_dict(), manifest={})
    with pytest.raises(ConfigError, match="no BatchNorm"):
        compute_class_stats(digits300, t, **QUIET)


def test_class_without_images_is_named(digits300, digits_teacher):
    from raypriv.data import Corpus

    no_sevens = digits300.ds.filter(lambda r: r["label"] != 7).materialize()
    with pytest.raises(DataError, match=r"class\(es\) 7 \(7\) have no images"):
        compute_class_stats(Corpus(ds=no_sevens, info=digits300.info), digits_teacher, **QUIET)


def test_teacher_input_shape_must_match_the_corpus(digits300):
    from raypriv.data import load_corpus
    from tests.synth.synth_helpers import quick_teacher

    mnist = load_corpus("mnist5k").head(50)
    with pytest.raises(DataError, match=r"8x8x1 but the teacher .* expects 28x28x1"):
        compute_class_stats(digits300, quick_teacher(mnist), **QUIET)
