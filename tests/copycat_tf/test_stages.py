"""Issue #13: one registry lists the stages; plans call exactly those, and a new stage is one register call."""

import dataclasses
import os

import pytest

from copycat_tf import stages
from copycat_tf.errors import CopycatError
from copycat_tf.plan import StageCall, execute, run_in_subprocess


def test_every_stage_names_a_binary_and_a_config_with_a_help_text_per_field():
    assert {"prepare-problem", "build-npdd", "steal-labels", "balance", "train", "evaluate", "report"} <= set(stages.names())
    for name in stages.names():
        stage = stages.get(name)
        assert stage.summary and stage.binary.startswith("copycat_bin.")
        config = stage.config_class()
        if config is not None:
            assert all(f.metadata.get("help") or f.metadata.get("nested") for f in dataclasses.fields(config)), name


def test_an_unknown_stage_is_refused_in_a_plan():
    with pytest.raises(CopycatError, match="unknown stage 'toy-stage'"):
        StageCall("toy-stage", ("--output=o",), "o/done.txt")


def test_a_registered_toy_stage_runs_in_a_plan_without_editing_the_executor(tmp_path):
    stages.register(stages.Stage("toy-stage", "writes done.txt", "tests.copycat_tf.toy_stage"))
    try:
        output = str(tmp_path / "toy")
        call = StageCall("toy-stage", (f"--output={output}", "--knob=3"), os.path.join(output, "done.txt"))
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        ran = execute([call], run=lambda c: run_in_subprocess(c, cwd=root))
        assert ran == [call]
        assert open(call.done).read() == f"--output={output} --knob=3"
        assert execute([call]) == []  # finished: its marker exists, so a rerun skips it
    finally:
        stages.unregister("toy-stage")
    with pytest.raises(CopycatError):
        stages.get("toy-stage")


def test_one_name_is_one_stage():
    with pytest.raises(CopycatError, match="already registered"):
        stages.register(stages.Stage("train", "another train", "copycat_bin.other"))


def test_every_binary_is_a_registered_stage():
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bin")
    binaries = {f"copycat_bin.{name[:-3]}" for name in os.listdir(folder)
                if name.endswith(".py") and name not in ("__init__.py", "app.py")}
    assert binaries == {stages.get(name).binary for name in stages.names()}


_PLAN_UNDER_SIGTERM = """
import sys
from copycat_tf import stages
from copycat_tf.plan import StageCall, execute
stages.register(stages.Stage("toy-service", "a service", "tests.copycat_tf.toy_service"))
stages.register(stages.Stage("toy-step", "a long step", "tests.copycat_tf.toy_service"))
root = sys.argv[1]
execute([StageCall("toy-service", ("--role=service", f"--output={root}/service"), f"{root}/service/ready",
                   background=True),
         StageCall("toy-step", ("--role=step", f"--output={root}/step"), f"{root}/step/done")])
"""


def test_a_terminated_plan_stops_its_running_step_and_its_background_steps(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    plan = subprocess.Popen([sys.executable, "-c", _PLAN_UNDER_SIGTERM, str(tmp_path)], cwd=root,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "step" / "pid").exists():
            assert plan.poll() is None and time.time() < deadline, plan.stderr.read() if plan.poll() else "no step"
            time.sleep(0.1)
        pids = [int((tmp_path / part / "pid").read_text()) for part in ("service", "step")]
        plan.send_signal(signal.SIGTERM)
        assert plan.wait(60) == 128 + signal.SIGTERM
    finally:
        if plan.poll() is None:
            plan.kill()
    for pid in pids:  # neither the service nor the running step outlives its plan
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"process {pid} outlived its terminated plan")
