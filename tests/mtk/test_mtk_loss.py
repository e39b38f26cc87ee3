"""The MTK loss: locked targets for un-keyed secured rows, and the decoupling adversary's two
roles (the adversary learns the secured label; the network, weighted by λ, pushes its answer
toward the target distribution: p(secured | unsecured labels), or uniform)."""
import numpy as np
import pytest
import torch

from raypriv.models import build_model
from raypriv.mtk.config import MtkConfig, TaskLayout
from raypriv.mtk.decouple import conditional_prior, decoupling_loss, prior_tensors
from raypriv.mtk.worker import build_trainee, mtk_loss, secured_targets

LAYOUT = TaskLayout(("digit", "parity"), (10, 2), ("digit",), locked=True)


def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    labels = torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)], 1)
    return x, labels, torch.tensor([0, 1] * (n // 2))


def test_un_keyed_secured_rows_learn_the_locked_output():
    _, labels, mask = _batch()
    targets, true = secured_targets(labels, mask, LAYOUT, gen=torch.Generator().manual_seed(0))
    assert (targets[0][mask == 0] == 10).all() and (targets[0][mask == 1] == labels[mask == 1, 0]).all()
    assert (targets[1] == labels[:, 1]).all() and true[0].tolist() == mask.bool().tolist()


def _prior(labels, mask):
    return prior_tensors(conditional_prior([(labels.numpy(), mask.numpy())], LAYOUT), "cpu")


def _grads(decoupling: float, target: str):
    torch.manual_seed(0)
    net = build_model("multi_small_cnn", in_channels=1, num_classes=LAYOUT.head_sizes, image_size=28)
    trainee = build_trainee(net, LAYOUT, adversary=True)
    x, labels, mask = _batch()
    logits, adversary = trainee(x)
    loss, _, _ = mtk_loss(logits, adversary, labels, mask, LAYOUT,
                          MtkConfig(decoupling=decoupling, decoupling_target=target),
                          gen=torch.Generator().manual_seed(0), prior=_prior(labels, mask))
    loss.backward()
    return {n: p.grad.clone() for n, p in trainee.named_parameters()}


@pytest.mark.parametrize("target", ["conditional", "uniform"])
def test_the_adversary_learns_alone_and_the_network_is_pushed_by_lambda(target):
    low, high = _grads(0.1, target), _grads(10.0, target)
    adversary = [n for n in low if n.startswith("adversary")]
    shared = [n for n in low if n.startswith("net.heads.1")]          # the unsecured head the adversary reads
    assert adversary and shared
    for n in adversary:                                                # λ never reaches the adversary's weights
        torch.testing.assert_close(low[n], high[n])
    assert any(not torch.allclose(low[n], high[n]) for n in shared)   # but it does reach the network


def test_the_conditional_target_leaves_alone_outputs_that_reveal_only_the_unsecured_answers():
    """An adversary already answering p(digit | parity) gets no push from the conditional target
    (that leakage is irreducible), while the uniform target still pushes it toward the base rate."""
    _, labels, mask = _batch(64)
    mask = torch.zeros_like(mask)
    prior = _prior(labels, mask)
    codes, probs = prior
    q = probs[0][torch.searchsorted(codes, labels[:, 1])]
    assert torch.allclose(q.sum(1), torch.ones(64)) and (q.max(1).values < 1).all()
    pushes = {}
    for target in ("conditional", "uniform"):
        confuse = torch.log(q.clamp_min(1e-9)).requires_grad_(True)
        learn = confuse.detach().clone().requires_grad_(True)
        loss = decoupling_loss(None, ([learn], [confuse]), labels, mask, LAYOUT,
                               MtkConfig(decoupling=1.0, decoupling_target=target), prior=prior)
        (grad,) = torch.autograd.grad(loss, confuse)
        pushes[target] = float(grad.abs().max())
    assert pushes["conditional"] < 1e-6 < 1e-3 < pushes["uniform"]


def test_the_prior_counts_only_rows_without_a_true_key():
    labels = np.array([[3, 1], [5, 1], [7, 1]]); mask = np.array([0, 0, 1])
    prior = conditional_prior([(labels, mask)], LAYOUT)
    assert prior["codes"] == [1] and prior["probs"][0][0][3] == prior["probs"][0][0][5] == 0.5
    assert prior["probs"][0][0][7] == 0
