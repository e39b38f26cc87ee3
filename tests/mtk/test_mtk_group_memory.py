"""The 'secured' decoupling term's memory across steps and workers (GroupMemory): with only the
batch in it, the term is the batch term; a row alone in its (cell, secured label) group is pushed
against its remembered offset; every worker remembers every worker's rows."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from raypriv.errors import ConfigError
from raypriv.mtk.config import MtkConfig, TaskLayout
from raypriv.mtk.decouple import GroupMemory, remember, remembered_share, secured_share

LAYOUT = TaskLayout(("digit", "cell"), (10, 3), ("digit",))


def _case(seed=0, n=60):
    g = torch.Generator().manual_seed(seed)
    cells, digits = torch.randint(0, 3, (n,), generator=g), torch.randint(0, 4, (n,), generator=g)
    return cells, digits, torch.randn(n, 5, generator=g) * 3


def _remembered(memory):
    """The remembered term of a batch, once ``memory`` holds it (as in training: :func:`remember`)."""
    def term(z, cells, digits):
        remember(memory, z, cells, torch.stack([digits, cells], 1), LAYOUT)
        return lambda v: remembered_share(v, cells, digits, memory, 0, 10)
    return term


def _value_and_grad(fn, z):
    z = z.clone().requires_grad_(True)
    value = fn(z)
    return float(value.detach()), torch.autograd.grad(value, z)[0]


def test_with_only_the_batch_remembered_the_term_is_the_batch_term():
    cells, digits, z = _case()
    digits[0] = 9                                   # alone in its group: left out by both
    batch = _value_and_grad(lambda v: secured_share(v, cells, digits), z)
    remembered = _value_and_grad(_remembered(GroupMemory(rows=100))(z, cells, digits), z)
    assert batch[0] > 0.01 and abs(batch[0] - remembered[0]) < 1e-6
    assert torch.allclose(batch[1], remembered[1], atol=1e-8) and float(batch[1][0].abs().max()) == 0.0


def test_a_row_alone_in_its_group_is_pushed_against_its_remembered_offset():
    cells, digits, z = _case()
    memory = GroupMemory(rows=16)
    for seed in (1, 2, 3):                          # earlier batches: digit 3 sits +4 above its cells' means
        c, d, old = _case(seed)
        memory.add(0, old + 4.0 * (d == 3).float().unsqueeze(1), c * 10 + d)
    assert all(len(rows) <= 16 for rows in memory.kept.values())
    lone = torch.cat([z[digits != 3], z[:1]])       # this batch holds one digit-3 row
    lone_cells, lone_digits = torch.cat([cells[digits != 3], cells[:1]]), torch.cat([digits[digits != 3], torch.tensor([3])])
    assert _value_and_grad(lambda v: secured_share(v, lone_cells, lone_digits), lone)[1][-1].abs().max() == 0
    _, grad = _value_and_grad(_remembered(memory)(lone, lone_cells, lone_digits), lone)
    assert (grad[-1] > 0).all()                     # a descent step moves it down, toward its cell's mean


def test_the_memory_survives_a_checkpoint():
    cells, digits, z = _case()
    memory = GroupMemory(rows=4)
    memory.add(0, z, cells * 10 + digits)
    again = GroupMemory(rows=1)
    again.load_state_dict(memory.state_dict())
    assert again.rows == 4 and all(torch.equal(again.kept[k], v) for k, v in memory.kept.items())
    assert [torch.equal(a, b) for a, b in zip(again.means(0), memory.means(0))] == [True] * 3


def test_decoupling_rows_is_validated():
    assert MtkConfig().decoupling_rows == 0 and MtkConfig(decoupling_rows=16).decoupling_rows == 16
    with pytest.raises(ConfigError, match="decoupling_rows"):
        MtkConfig(decoupling_rows=-1)


def _worker(rank, port, out):
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    memory = GroupMemory(rows=16)
    cells, digits, z = _case(seed=rank, n=20 + 7 * rank)   # the workers' batches differ, in size too
    remember(memory, z, cells, torch.stack([digits, cells], 1), LAYOUT)
    torch.save(memory.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_every_worker_remembers_every_workers_rows(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt")["kept"] for r in (0, 1))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sum(len(v) for v in a.values()) == 20 + 27
