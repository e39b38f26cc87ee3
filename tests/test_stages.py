"""A pipeline's stages: finished ones are reused, and a stage made again is never followed by a
later stage's output made from the old one."""
import dataclasses
import os
import re
import shutil

import pytest

from raypriv.configs import setting
from raypriv.errors import ArtifactError
from raypriv.jobs.base import Outcome
from raypriv.jobs.stages import Stage, run_stages
from raypriv.manifest import write_manifest


@dataclasses.dataclass(frozen=True, kw_only=True)
class Copy(Stage):
    """Stand-in stage: writes its input's text (or ``text``) and a manifest."""

    name = "stagetest.copy"
    output: str = setting(help="where it writes")
    source: str | None = setting(None, help="the stage it reads")
    text: str = setting("", help="what a first stage writes")

    def execute(self, reporter):
        text = open(os.path.join(self.source, "data")).read() if self.source else self.text
        os.makedirs(self.output, exist_ok=True)
        with open(os.path.join(self.output, "data"), "w") as f:
            f.write(text)
        write_manifest(self.output, {"method": "copy"})
        return Outcome(artifacts={"copy": self.output})


def _pipeline(tmp_path, text):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    return [("a", Copy(output=a, text=text)), ("b", Copy(output=b, source=a))]


def test_finished_stages_are_reused_and_a_stale_later_stage_is_refused(tmp_path):
    lines = []
    run_stages(_pipeline(tmp_path, "old"), lines.append)
    run_stages(_pipeline(tmp_path, "new"), lines.append)          # both finished: reused as they are
    assert sum(line.startswith("reusing") for line in lines) == 2
    assert (tmp_path / "b" / "data").read_text() == "old"
    shutil.rmtree(tmp_path / "a")                                  # the first stage's output is gone
    for _ in range(2):                                             # refused before anything runs, every time
        with pytest.raises(ArtifactError, match=re.escape(f"{tmp_path / 'b'} holds a finished output, but "
                                                          f"{tmp_path / 'a'} before it")):
            run_stages(_pipeline(tmp_path, "new"), lines.append)
        assert not (tmp_path / "a").exists()                       # the first stage did not run again
    assert (tmp_path / "b" / "data").read_text() == "old"          # and the later one is not deleted
    shutil.rmtree(tmp_path / "b")
    run_stages(_pipeline(tmp_path, "new"), lines.append)
    assert (tmp_path / "b" / "data").read_text() == "new"
