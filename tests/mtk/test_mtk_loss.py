"""The MTK loss: locked targets for un-keyed secured rows, and the decoupling adversary's two
roles (the adversary learns the secured label; the network, weighted by λ, pushes its answer
toward uniform), the 'cell' term and the default 'secured' term."""
import pytest
import torch

from raypriv.errors import ConfigError
from raypriv.models import build_model
from raypriv.mtk.config import MtkConfig, TaskLayout
from raypriv.mtk.decouple import SecuredMemory, decoupling_loss, uses_adversary
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
    cfg = MtkConfig(decoupling=decoupling, decoupling_target=target)
    trainee = build_trainee(net, LAYOUT, cfg)
    x, labels, mask = _batch()
    trainee.adversary.set_prior(labels)
    for p in trainee.adversary.parameters():      # an adversary that has learned something
        torch.nn.init.normal_(p, generator=torch.Generator().manual_seed(1))
    logits, adversary = trainee(x, labels, mask)
    loss, _, _ = mtk_loss(logits, adversary, labels, mask, LAYOUT, cfg, gen=torch.Generator().manual_seed(0))
    loss.backward()
    return {n: p.grad.clone() for n, p in trainee.named_parameters()}


@pytest.mark.parametrize("target", ["uniform", "conditional"])
def test_the_adversary_learns_alone_and_the_network_is_pushed_by_lambda(target):
    low, high = _grads(0.1, target), _grads(10.0, target)
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


def _secured_case():
    """40 un-keyed rows, 4 per digit; parity logits = a cell offset, ±1 style alternating inside
    every digit, and (``by_digit``) a digit-dependent offset inside each parity cell."""
    digits = torch.arange(10).repeat_interleave(4)
    labels = torch.stack([digits, digits % 2], dim=1)
    by_cell = torch.stack([labels[:, 1] * 3.0, -labels[:, 1] * 3.0], dim=1)
    style = torch.tensor([1.0, -1.0]).repeat(20).unsqueeze(1)
    return labels, by_cell + style, by_cell + style + 0.5 * digits.unsqueeze(1).float()


def _term(z, labels, cfg, memory, layout=LAYOUT, mask=None):
    z = z.clone().requires_grad_(True)
    mask = torch.zeros(len(z), dtype=torch.long) if mask is None else mask
    value = decoupling_loss([torch.zeros(len(z), 11), z], None, labels, mask, layout, cfg, memory=memory)
    return value.item(), torch.autograd.grad(value, z)[0]


def test_the_secured_term_reads_only_what_the_secured_label_explains_inside_a_cell():
    """The 'secured' target: spread inside a parity cell that does not depend on the digit costs
    nothing, unlike under 'cell'; digit-dependent offsets inside a cell are pushed together,
    whatever the logits' scale (above a within-cell variance of one logit unit; below it, as
    early in training, the push is not larger)."""
    labels, style_only, by_digit = _secured_case()
    secured, cell = MtkConfig(decoupling=1.0), MtkConfig(decoupling=1.0, decoupling_target="cell")
    assert secured.decoupling_target == "secured" and secured.decoupling_memory == 50   # the defaults
    fresh = lambda: SecuredMemory(LAYOUT, steps=secured.decoupling_memory)           # noqa: E731

    assert _term(style_only, labels, secured, fresh())[0] == 0.0
    assert _term(style_only, labels, cell, None)[0] > 0.1
    value, grad = _term(by_digit, labels, secured, fresh())
    assert value > 0.1 and abs(_term(by_digit * 3, labels, secured, fresh())[0] - value) < 1e-5   # scale-free
    assert _term(by_digit / 10, labels, secured, fresh())[1].abs().max() <= grad.abs().max()   # bounded
    # the push is the same for every row of a group: blind to the style that cancels inside it
    style = torch.tensor([1.0, -1.0]).repeat(20).unsqueeze(1)
    assert abs(float((grad * style).sum())) < 1e-6 and grad.abs().max() > 1e-3
    # a gradient step moves the digits' means inside each cell toward each other
    stepped = by_digit - 0.5 * grad / grad.abs().max()
    assert _term(stepped, labels, secured, fresh())[0] < value
    with pytest.raises(ValueError, match="SecuredMemory"):
        _term(by_digit, labels, secured, None)


def test_the_memory_pushes_rows_alone_in_their_group_within_the_batch():
    """One worker's batch holds a row or two per (cell, digit) group: the group means come from
    earlier batches, so a batch of lone rows is still pushed against its digits' offsets, and
    keyed rows neither count nor get pushed."""
    labels, _, by_digit = _secured_case()
    cfg, memory = MtkConfig(decoupling=1.0), SecuredMemory(LAYOUT, steps=50)
    _term(by_digit, labels, cfg, memory)                       # an earlier batch: 4 rows per digit
    lone = torch.arange(0, 40, 4)                              # one row per digit
    mask = torch.tensor([0, 1] * 5)
    value, grad = _term(by_digit[lone], labels[lone], cfg, memory, mask=mask)
    assert value > 0.1
    pushed = grad[mask == 0].abs().sum(dim=1) > 1e-4          # digits 0, 2, 4, 6, 8 of the even cell:
    assert pushed.tolist() == [True, True, False, True, True]  # 4 sits at its cell's mean
    assert grad[mask == 1].abs().max() == 0
    # on a fresh memory the same lone rows are groups of one: nothing to compare, no push
    value, grad = _term(by_digit[lone], labels[lone], cfg, SecuredMemory(LAYOUT, steps=50), mask=mask)
    assert value == 0.0 and grad.abs().max() == 0


def test_the_memory_forgets_old_batches_and_resumes_from_its_state():
    """Decayed over ``steps`` batches: after many style-only batches the digit offsets of an old
    batch are forgotten; a memory restored from its state continues exactly."""
    labels, style_only, by_digit = _secured_case()
    cfg = MtkConfig(decoupling=1.0)
    memory = SecuredMemory(LAYOUT, steps=5)
    first = _term(by_digit, labels, cfg, memory)[0]
    for _ in range(40):
        last = _term(style_only, labels, cfg, memory)[0]
    assert first > 0.1 and last < 1e-3
    a, b = SecuredMemory(LAYOUT, steps=5), SecuredMemory(LAYOUT, steps=5)
    for z in (by_digit, style_only):
        _term(z, labels, cfg, a)
    b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()})
    (va, ga), (vb, gb) = _term(by_digit * 2, labels, cfg, a), _term(by_digit * 2, labels, cfg, b)
    assert va == vb and torch.equal(ga, gb) and va != _term(by_digit * 2, labels, cfg, SecuredMemory(LAYOUT, steps=5))[0]


def test_the_memory_is_refused_for_too_many_label_combinations():
    layout = TaskLayout(("digit", "a", "b", "c"), (10, 1000, 1000, 10), ("digit",), locked=True)
    with pytest.raises(ConfigError, match="decoupling_target.*'cell' or 'uniform'"):
        SecuredMemory(layout, steps=50)
    with pytest.raises(ConfigError, match="decoupling_memory"):
        MtkConfig(decoupling_memory=0)


def test_two_secured_tasks_average_their_terms():
    layout = TaskLayout(("digit", "parity", "ge5"), (10, 2, 2), ("digit", "ge5"), locked=True)
    labels, _, z = _secured_case()
    labels = torch.cat([labels, (labels[:, :1] >= 5).long()], dim=1)
    mask = torch.zeros(40, dtype=torch.long)
    cfg = MtkConfig(decoupling=2.0)
    logits = [torch.zeros(40, 11), z, torch.zeros(40, 3)]
    both = decoupling_loss(logits, None, labels, mask, layout, cfg, memory=SecuredMemory(layout, steps=50)).item()
    each = []
    for t in (0, 2):            # each secured task alone, with parity unsecured
        alone = TaskLayout(("s", "parity"), (layout.num_classes[t], 2), ("s",), locked=True)
        each.append(decoupling_loss([torch.zeros(40, 11), z], None, labels[:, [t, 1]], mask, alone, cfg,
                                    memory=SecuredMemory(alone, steps=50)).item() / 2.0)
    assert min(each) > 0.01 and abs(both - 2.0 * sum(each) / 2) < 1e-5


def _trained_adversary(z, labels, layout=LAYOUT, *, steps=300):
    """A 'conditional' adversary trained alone (its own loss, λ = 0) on fixed logits ``z``."""
    from raypriv.mtk.decouple import adversary_loss, build_adversary

    torch.manual_seed(0)
    adversary = build_adversary(layout, conditional=True)
    adversary.set_prior(labels)
    opt = torch.optim.SGD(adversary.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        adversary_loss(adversary(z, labels), 0.0).backward()
        opt.step()
    return adversary


def _read(adversary, z, labels):
    """The adversary's accuracy on the digit, and the network's term (KL to the cell prior) with
    its gradient with respect to the logits."""
    from raypriv.mtk.decouple import adversary_loss

    z = z.clone().requires_grad_(True)
    ((learn, confuse, target, y),) = adversary(z, labels)
    kl = adversary_loss([(learn.detach(), confuse, target, y)], 1.0) - torch.nn.functional.cross_entropy(learn, y)
    (grad,) = torch.autograd.grad(kl, z)
    return float((learn.argmax(1) == y).float().mean()), kl.item(), grad


def test_the_conditional_adversary_reads_and_pushes_only_what_a_cell_does_not_explain():
    """Within a parity cell, logits that vary with style only tell the adversary nothing beyond
    the cell's prior (chance among the cell's 5 digits) and the network gets no push; logits
    offset by the digit inside each cell are read, and a step against the network's gradient
    makes them less readable to the same adversary."""
    labels, style_only, by_digit = _secured_case()
    adversary = _trained_adversary(style_only, labels)
    acc, kl, grad = _read(adversary, style_only, labels)
    assert acc <= 0.3 and kl < 0.05 and grad.abs().max() < 1e-2
    by_digit = style_only + 2.0 * (by_digit - style_only)                 # digits 4 logit units apart
    adversary = _trained_adversary(by_digit, labels)
    acc, kl, grad = _read(adversary, by_digit, labels)
    assert acc >= 0.5 and kl > 0.3
    stepped = by_digit - 2.0 * grad / grad.abs().max()
    assert _read(adversary, stepped, labels)[1] < kl


def test_the_conditional_adversary_is_refused_for_too_many_label_combinations():
    from raypriv.mtk.decouple import build_adversary

    layout = TaskLayout(("digit", "a", "b", "c"), (10, 1000, 1000, 10), ("digit",), locked=True)
    with pytest.raises(ConfigError, match="decoupling_target.*'cell' or 'uniform'"):
        build_adversary(layout, conditional=True)
    assert build_adversary(layout, conditional=False) is not None        # 'uniform' needs no cells


def test_the_secured_term_weighs_offsets_by_how_little_the_logits_vary_that_way():
    """Digit offsets inside the parity cells along a logit that varies little otherwise, beside
    a logit with 10× the style spread: a probe reads the digit, and so does the term (the
    Euclidean share of the spread would be 7 %)."""
    labels, _, _ = _secured_case()
    style = torch.tensor([1.0, -1.0]).repeat(20)
    z = torch.stack([10 * style + 3 * labels[:, 1], 2.0 * (labels[:, 0] // 2 - 2).float()], dim=1)
    value, grad = _term(z, labels, MtkConfig(decoupling=1.0), SecuredMemory(LAYOUT, steps=50))
    assert value > 0.9
    assert grad[:, 1].abs().max() > 10 * grad[:, 0].abs().max()        # pushed along the readable logit


def test_a_warm_up_as_long_as_training_is_refused():
    import dataclasses

    short = dataclasses.replace(MtkConfig().train, epochs=2)
    assert MtkConfig(decoupling=1.0, train=short).decoupling_warmup == 1                 # the default
    with pytest.raises(ConfigError, match="decoupling_warmup.*never start: 2 warm-up epochs of 2"):
        MtkConfig(decoupling=1.0, decoupling_warmup=2, train=short)
    assert MtkConfig(decoupling=0.0, decoupling_warmup=2, train=short)                   # no term, no matter


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
