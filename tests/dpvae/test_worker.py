"""Where a resumed Ray Train worker group picks up each stage (``raypriv.dpvae.worker.stage_starts``)."""
from raypriv.privacy.dpsgd import StagePlan
from raypriv.dpvae.worker import stage_starts


def _plan(name: str, *, private: bool = True) -> StagePlan:
    return StagePlan(name=name, steps=20, sample_rate=0.25, sigma=1.0 if private else None, max_grad_norm=1.0,
                     lr=0.01, private=private)


def test_private_stages_continue_after_the_last_charged_step_not_the_checkpoint():
    plans = [_plan("pretrain"), _plan("main")]
    # checkpoint at step 10 of pretrain, but 13 steps were charged before the crash
    assert stage_starts(plans, checkpoint_stage=0, checkpoint_step=10, charged={"pretrain": 13}) == {0: 13, 1: 0}
    # pretrain finished and checkpointed; main crashed after 5 charged steps, before its first checkpoint
    assert stage_starts(plans, checkpoint_stage=1, checkpoint_step=0, charged={"pretrain": 20, "main": 5}) == {1: 5}
    # every stage checkpointed as done: nothing left to run
    assert stage_starts(plans, checkpoint_stage=2, checkpoint_step=0, charged={"pretrain": 20, "main": 20}) == {}


def test_a_public_stage_continues_from_its_checkpoint():
    plans = [_plan("pretrain", private=False), _plan("main")]
    assert stage_starts(plans, checkpoint_stage=0, checkpoint_step=8, charged={}) == {0: 8, 1: 0}
    assert stage_starts(plans, checkpoint_stage=1, checkpoint_step=0, charged={"main": 2}) == {1: 2}
