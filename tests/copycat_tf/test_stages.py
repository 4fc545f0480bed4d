"""Issue #13: one registry lists the stages; plans call exactly those, and a new stage is one register call."""

import dataclasses
import json
import os
import tempfile

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
        assert json.load(open(call.done))["args"] == [f"--output={output}", "--knob=3"]
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
stages.register(stages.Stage("toy-service", "a service", "tests.copycat_tf.toy_service", imports=()))
stages.register(stages.Stage("toy-step", "a long step", "tests.copycat_tf.toy_service", imports=()))
root, jobs = sys.argv[1], int(sys.argv[2])
steps = ["step"] if jobs == 1 else ["step", "step2"]
execute([StageCall("toy-service", ("--role=service", f"--output={root}/service"), f"{root}/service/ready",
                   background=True),
         *(StageCall("toy-step", ("--role=step", f"--output={root}/{s}"), f"{root}/{s}/done") for s in steps)],
        jobs=jobs)
"""


def test_a_terminated_plan_stops_its_running_steps_and_its_background_steps(tmp_path):
    """Two plans at once (one step at a time, and two steps at once): SIGTERM leaves no step of either running."""
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = {1: ("service", "step"), 2: ("service", "step", "step2")}
    plans = {n: subprocess.Popen([sys.executable, "-c", _PLAN_UNDER_SIGTERM, str(tmp_path / f"jobs{n}"), str(n)],
                                 cwd=root, stderr=subprocess.PIPE, text=True) for n in parts}
    pids = []
    try:
        deadline = time.time() + 120
        for n, plan in plans.items():
            while not all((tmp_path / f"jobs{n}" / part / "pid").exists() for part in parts[n]):
                assert plan.poll() is None and time.time() < deadline, plan.stderr.read() if plan.poll() else "no step"
                time.sleep(0.1)
            pids += [int((tmp_path / f"jobs{n}" / part / "pid").read_text()) for part in parts[n]]
        for plan in plans.values():
            plan.send_signal(signal.SIGTERM)
        for plan in plans.values():
            assert plan.wait(60) == 128 + signal.SIGTERM
    finally:
        for plan in plans.values():
            if plan.poll() is None:
                plan.kill()
    for pid in pids:  # neither the services nor the running steps outlive their plan
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"process {pid} outlived its terminated plan")


_FORKED_PLAN = """
import json, os, sys
from absl import flags
flags.DEFINE_string("output", None, "the plan's own flag, as copycat-demo defines one")
from copycat_tf import stages
from copycat_tf.errors import CopycatError
from copycat_tf.plan import StageCall, execute
stages.register(stages.Stage("toy-stage", "writes done.txt", "tests.copycat_tf.toy_stage", imports=("fractions",)))
root = sys.argv[1]
calls = [StageCall("toy-stage", (f"--output={root}/{name}", "--knob=3"), f"{root}/{name}/done.txt")
         for name in ("ok", "ok2")]
execute(calls, jobs=2)
os.environ["COPYCAT_TOY_SETTING"] = "set after the first steps"  # e.g. an API key the plan sets as it goes
execute([StageCall("toy-stage", (f"--output={root}/later",), f"{root}/later/done.txt")])
try:
    execute([StageCall("toy-stage", (f"--output={root}/bad", "--fail=3"), f"{root}/bad/done.txt")])
except CopycatError as error:
    print(json.dumps({"plan": os.getpid(), "error": str(error)}))
"""


@pytest.mark.parametrize("fork", ["1", "0"])
def test_plan_steps_fork_from_a_process_that_imported_their_stages_modules_once(tmp_path, fork):
    """A step forked from the warm server finds its stage's imports done and runs as ``python -m`` would: its
    arguments, its environment, its last line, its exit code and stderr in the failure, and none of the plan's own
    main script. COPYCAT_FORK_STEPS=0 runs fresh processes."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = tmp_path / "plan_script.py"  # a main script with a file, as copycat-demo's console script is
    script.write_text(_FORKED_PLAN)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "COPYCAT_FORK_STEPS": fork, "PYTHONPATH": root}, timeout=120)
    assert done.returncode == 0, done.stderr
    step = json.loads((tmp_path / "ok" / "done.txt").read_text())
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert step["args"] == [f"--output={tmp_path}/ok", "--knob=3"]
    assert step["preloaded"] is (fork == "1")  # imported by the server before the step started, or not at all
    assert (step["frozen"] > 10_000) is (fork == "1")  # the server's objects are left out of the step's collections
    assert (step["parent"] != plan["plan"]) is (fork == "1")  # a child of the server, or of the plan itself
    assert step["gpu_memory_growth"] == "true"  # two steps at once share a GPU: each takes memory as it needs it
    assert step["toy_setting"] is None
    assert json.loads((tmp_path / "later" / "done.txt").read_text())["toy_setting"] == "set after the first steps"
    assert step["main_again"] is False  # the plan's script (copycat-demo's flags) is not imported into the step
    assert "toy stage done" in done.stdout
    assert "step toy-stage failed (exit 3)" in plan["error"] and "toy stage failing as asked" in plan["error"]


_BURNING_PLAN = """
import sys
from copycat_tf import stages
from copycat_tf.plan import StageCall, execute
stages.register(stages.Stage("toy-stage", "writes done.txt", "tests.copycat_tf.toy_stage", imports=()))
root = sys.argv[1]
execute([StageCall("toy-stage", (f"--output={root}/{name}", "--burn=0.6"), f"{root}/{name}/done.txt")
         for name in ("a", "b")])
"""


def test_the_cpu_time_of_forked_steps_is_counted_as_the_plans_childrens():
    """``time copycat-demo`` shows the steps' CPU time: at exit the plan waits for the server, which waited for
    every step, so their time reaches whoever waits for the plan."""
    import resource
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory() as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sys.executable, "-c", _BURNING_PLAN, folder], cwd=root, capture_output=True, text=True,
                              env={**os.environ, "COPYCAT_FORK_STEPS": "1", "PYTHONPATH": root}, timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stderr
        assert os.path.exists(os.path.join(folder, "b", "done.txt"))
    spent = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert spent >= 1.2, spent  # the two steps' 0.6 s each, and the plan's own


def test_a_forked_step_takes_its_temporary_folder_from_its_own_environment(tmp_path):
    """TMPDIR given to a step is where its temporary files go, as in a fresh process, although the warm server
    (and this process) looked the temporary folder up long before."""
    from copycat_tf import forked_steps

    tempfile.gettempdir()  # cached here, and in the server forked from here (TensorFlow's import looks it up too)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = str(tmp_path / "out.txt")
    process = forked_steps.start("tests.copycat_tf.toy_stage", [f"--output={tmp_path / 'toy'}"],
                                 {**os.environ, "TMPDIR": str(scratch)}, out, out)
    process.join(120)
    assert process.exitcode == 0, open(out).read()
    assert json.loads((tmp_path / "toy" / "done.txt").read_text())["tmpdir"] == str(scratch)


def test_a_forked_step_that_crashes_leaves_its_python_stack_in_its_stderr(tmp_path):
    """A step killed by SIGSEGV (a native library's bug) says where it was, as ``python -X faulthandler`` would."""
    import signal

    from copycat_tf import forked_steps

    out, err = str(tmp_path / "out.txt"), str(tmp_path / "err.txt")
    process = forked_steps.start("tests.copycat_tf.toy_stage", [f"--output={tmp_path / 'toy'}", "--crash"],
                                 dict(os.environ), out, err)
    process.join(120)
    assert process.exitcode == -signal.SIGSEGV
    stderr = open(err).read()
    assert "Fatal Python error: Segmentation fault" in stderr and "toy_stage.py" in stderr, stderr


def test_steps_are_forked_on_linux_unless_told_not_to_and_elsewhere_only_when_told(monkeypatch):
    import sys

    from copycat_tf import forked_steps

    monkeypatch.delenv("COPYCAT_FORK_STEPS", raising=False)
    seen = {}
    for platform in ("linux", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        for setting in (None, "0", "1"):
            if setting is None:
                monkeypatch.delenv("COPYCAT_FORK_STEPS", raising=False)
            else:
                monkeypatch.setenv("COPYCAT_FORK_STEPS", setting)
            seen[platform, setting] = forked_steps.available()
    assert seen == {("linux", None): True, ("linux", "0"): False, ("linux", "1"): True,
                    ("darwin", None): False, ("darwin", "0"): False, ("darwin", "1"): True}
