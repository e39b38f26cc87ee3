"""The MTK loss: locked targets for un-keyed secured rows, and the decoupling adversary's two
roles (the adversary learns the secured label; the network, weighted by λ, pushes its answer
toward uniform), the 'cell' term and the default 'secured' term."""
import pytest
import torch

from raypriv.errors import ConfigError
from raypriv.models import build_model
from raypriv.mtk.config import MtkConfig, TaskLayout
from raypriv.mtk.decouple import decoupling_loss, uses_adversary
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


def _grads(decoupling: float, target: str):
    torch.manual_seed(0)
    net = build_model("multi_small_cnn", in_channels=1, num_classes=LAYOUT.head_sizes, image_size=28)
    trainee = build_trainee(net, LAYOUT, adversary=True)
    x, labels, mask = _batch()
    logits, adversary = trainee(x)
    loss, _, _ = mtk_loss(logits, adversary, labels, mask, LAYOUT,
                          MtkConfig(decoupling=decoupling, decoupling_target=target),
                          gen=torch.Generator().manual_seed(0))
    loss.backward()
    return {n: p.grad.clone() for n, p in trainee.named_parameters()}


def test_the_adversary_learns_alone_and_the_network_is_pushed_by_lambda():
    low, high = _grads(0.1, "uniform"), _grads(10.0, "uniform")
    adversary = [n for n in low if n.startswith("adversary")]
    shared = [n for n in low if n.startswith("net.heads.1")]          # the unsecured head the adversary reads
    assert adversary and shared
    for n in adversary:                                                # λ never reaches the adversary's weights
        torch.testing.assert_close(low[n], high[n])
    assert any(not torch.allclose(low[n], high[n]) for n in shared)   # but it does reach the network


def test_the_cell_term_pushes_only_what_varies_within_a_cell():
    """Unsecured logits that are a function of the true unsecured label (parity) get no push
    from the 'cell' term (that leakage is irreducible); logits that vary with the digit
    inside a parity cell are pushed, and shrinking them all does not lower the term."""
    _, labels, _ = _batch(64)
    mask = torch.zeros(64, dtype=torch.long)
    cfg = MtkConfig(decoupling=1.0, decoupling_target="cell")
    assert not uses_adversary(cfg) and not uses_adversary(MtkConfig(decoupling=1.0))
    by_cell = torch.stack([labels[:, 1] * 3.0 - 1.5, 1.5 - labels[:, 1] * 3.0], dim=1)
    by_digit = by_cell + 0.3 * labels[:, :1].float()
    terms = {}
    for name, parity_logits in (("cell", by_cell), ("digit", by_digit), ("digit/10", by_digit / 10)):
        z = parity_logits.clone().requires_grad_(True)
        term = decoupling_loss([torch.zeros(64, 11), z], None, labels, mask, LAYOUT, cfg)
        (grad,) = torch.autograd.grad(term, z)
        terms[name] = (term.item(), float(grad.abs().max()))
    assert terms["cell"] == (0.0, 0.0)
    assert terms["digit"][0] > 0.01 and terms["digit"][1] > 1e-4
    assert abs(terms["digit/10"][0] - terms["digit"][0]) < 1e-5          # scale-free


def test_rows_with_a_true_key_are_left_out_of_the_cell_term():
    """Keyed rows vary with the digit inside their parity cell, un-keyed rows do not: no term."""
    _, labels, mask = _batch(64)
    z = torch.stack([labels[:, 1] * 3.0, -labels[:, 1] * 3.0], dim=1)
    z = z + torch.where(mask.bool(), labels[:, 0].float(), 0.0).unsqueeze(1)
    cfg = MtkConfig(decoupling=1.0, decoupling_target="cell")
    assert float(decoupling_loss([torch.zeros(64, 11), z], None, labels, mask, LAYOUT, cfg)) == 0.0
    assert float(decoupling_loss([torch.zeros(64, 11), z], None, labels, torch.zeros_like(mask), LAYOUT, cfg)) > 0.01


def test_the_batch_loss_adds_the_cell_term_weighted_by_lambda():
    torch.manual_seed(0)
    net = build_model("multi_small_cnn", in_channels=1, num_classes=LAYOUT.head_sizes, image_size=28)
    x, labels, mask = _batch()
    logits = net(x)
    cfg = {lam: MtkConfig(decoupling=lam, decoupling_target="cell") for lam in (0.0, 2.0)}
    loss = {lam: float(mtk_loss(logits, None, labels, mask, LAYOUT, c, gen=torch.Generator().manual_seed(0))[0])
            for lam, c in cfg.items()}
    term = float(decoupling_loss(logits, None, labels, mask, LAYOUT, cfg[2.0]))
    assert term > 0 and abs(loss[2.0] - loss[0.0] - term) < 1e-5


def test_the_secured_term_reads_only_what_the_secured_label_explains_inside_a_cell():
    """The 'secured' target: spread inside a parity cell that does not depend on the digit
    (here ±1 alternating inside every digit) costs nothing, unlike under 'cell'; digit-dependent
    offsets inside a cell are pushed together, whatever the logits' scale (above a within-cell
    variance of one logit unit; below it, as early in training, the push is not larger)."""
    digits = torch.arange(10).repeat_interleave(4)
    labels = torch.stack([digits, digits % 2], dim=1)
    mask = torch.zeros(40, dtype=torch.long)
    by_cell = torch.stack([labels[:, 1] * 3.0, -labels[:, 1] * 3.0], dim=1)
    style = torch.tensor([1.0, -1.0]).repeat(20).unsqueeze(1)
    secured, cell = MtkConfig(decoupling=1.0), MtkConfig(decoupling=1.0, decoupling_target="cell")
    assert secured.decoupling_target == "secured"                  # the default

    def term(z, cfg):
        z = z.clone().requires_grad_(True)
        value = decoupling_loss([torch.zeros(40, 11), z], None, labels, mask, LAYOUT, cfg)
        return value.item(), torch.autograd.grad(value, z)[0]

    assert term(by_cell + style, secured)[0] == 0.0 and term(by_cell + style, cell)[0] > 0.1
    by_digit = by_cell + style + 0.5 * digits.unsqueeze(1).float()
    value, grad = term(by_digit, secured)
    assert value > 0.1 and abs(term(by_digit * 3, secured)[0] - value) < 1e-5     # scale-free above
    assert term(by_digit / 10, secured)[1].abs().max() <= grad.abs().max()    # bounded near-constant logits
    # a gradient step moves the digits' means inside each cell toward each other
    stepped = by_digit - 0.5 * grad / grad.abs().max()
    assert term(stepped, secured)[0] < value


def _share_case():
    digits = torch.arange(10).repeat_interleave(4)
    style = torch.tensor([1.0, -1.0]).repeat(20).unsqueeze(1)
    z = torch.stack([(digits % 2) * 3.0, -(digits % 2) * 3.0], dim=1) + style + 0.5 * digits.unsqueeze(1).float()
    return digits, digits % 2, style, z


def test_the_secured_term_ignores_lone_rows_and_one_label_cells_and_holds_its_scale_fixed():
    from raypriv.mtk.decouple import secured_share

    digits, cells, style, z = _share_case()
    base = secured_share(z, cells, digits).item()
    # a row alone in its (cell, digit) group and a cell holding one digit only change nothing but
    # the share of the rows that count (40 of 43)
    extra = torch.tensor([[40.0, -7.0], [-30.0, 5.0], [12.0, 8.0]])
    value = secured_share(torch.cat([z, extra]), torch.cat([cells, torch.tensor([0, 2, 2])]),
                          torch.cat([digits, torch.tensor([7, 3, 3])])).item()
    assert abs(value - base * 40 / 43) < 1e-6
    # the denominator is held fixed: the push is the same for every row of a group, so it is
    # blind to style that cancels inside each group
    z = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(secured_share(z, cells, digits), z)
    assert abs(float((grad * style).sum())) < 1e-6 and grad.abs().max() > 1e-3
    assert secured_share(z, cells, torch.arange(40)) is None          # every group a lone row


def test_two_secured_tasks_average_the_terms_of_those_with_rows_to_compare():
    from raypriv.mtk.decouple import secured_share

    layout = TaskLayout(("digit", "parity", "ge5"), (10, 2, 2), ("digit", "ge5"), locked=True)
    digits, cells, _, z = _share_case()
    labels = torch.stack([digits, cells, (digits >= 5).long()], dim=1)
    mask = torch.zeros(40, dtype=torch.long)
    cfg = MtkConfig(decoupling=2.0)
    logits = [torch.zeros(40, 11), z, torch.zeros(40, 3)]
    both = decoupling_loss(logits, None, labels, mask, layout, cfg).item()
    each = [secured_share(z, cells, labels[:, t]).item() for t in (0, 2)]
    assert min(each) > 0.01 and abs(both - 2.0 * sum(each) / 2) < 1e-5
    # ge5 constant inside the batch: no rows to compare for it, and the digit's term is not halved
    labels[:, 2] = 1
    alone = decoupling_loss(logits, None, labels, mask, layout, cfg).item()
    assert abs(alone - 2.0 * each[0]) < 1e-5


def test_mtk_networks_output_log_probabilities_with_no_direction_softmax_ignores():
    """The heads of an MTK network return log-probabilities: the predictions and the training
    loss of the raw logits, but shifting every logit of a head (which softmax ignores, and
    which a probe on raw logits can read) changes nothing in the outputs."""
    from raypriv.mtk.train import model_kwargs

    class Info:
        image_shape = (28, 28, 1)

    kwargs = model_kwargs(Info(), LAYOUT)
    assert kwargs["log_probs"] is True
    torch.manual_seed(0)
    net = build_model("multi_small_cnn", **kwargs)
    raw = build_model("multi_small_cnn", **{**kwargs, "log_probs": False})
    raw.load_state_dict(net.state_dict())
    x = torch.rand(8, 1, 28, 28)
    for out, logits in zip(net(x), raw(x)):
        torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(8))
        assert torch.equal(out.argmax(1), logits.argmax(1))
        torch.testing.assert_close(torch.nn.functional.cross_entropy(out, torch.zeros(8, dtype=torch.long)),
                                   torch.nn.functional.cross_entropy(logits, torch.zeros(8, dtype=torch.long)))
    with torch.no_grad():
        for head in net.heads:
            head.bias += 5.0                     # a shift of every logit of every head
    for before, after in zip(raw(x), net(x)):
        torch.testing.assert_close(after, before.log_softmax(dim=1))
