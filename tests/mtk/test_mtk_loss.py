"""The MTK loss: locked targets for un-keyed secured rows, and the decoupling adversary's two
roles (the adversary learns the secured label; the network, weighted by λ, makes its answer uniform)."""
import torch

from raypriv.models import build_model
from raypriv.mtk.config import MtkConfig, TaskLayout
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


def _grads(decoupling: float):
    torch.manual_seed(0)
    net = build_model("multi_small_cnn", in_channels=1, num_classes=LAYOUT.head_sizes, image_size=28)
    trainee = build_trainee(net, LAYOUT, 1.0)
    x, labels, mask = _batch()
    logits, adversary = trainee(x)
    loss, _, _ = mtk_loss(logits, adversary, labels, mask, LAYOUT, MtkConfig(decoupling=decoupling),
                          gen=torch.Generator().manual_seed(0))
    loss.backward()
    return {n: p.grad.clone() for n, p in trainee.named_parameters()}


def test_the_adversary_learns_alone_and_the_network_is_pushed_by_lambda():
    low, high = _grads(0.1), _grads(10.0)
    adversary = [n for n in low if n.startswith("adversary")]
    shared = [n for n in low if n.startswith("net.heads.1")]          # the unsecured head the adversary reads
    assert adversary and shared
    for n in adversary:                                                # λ never reaches the adversary's weights
        torch.testing.assert_close(low[n], high[n])
    assert any(not torch.allclose(low[n], high[n]) for n in shared)   # but it does reach the network
