"""Issue #12, findings 2 and 8: misspelt flags and out-of-range numbers stop a binary before any work.

The out-of-range cases are generated from each stage Config's declared rules, and every numeric field
of every Config must have a rule, so a new knob cannot slip in unchecked.
"""

import dataclasses
import os
import re
import subprocess
import sys
import typing

import pytest

from beam_pipelines.balance import BalanceConfig
from beam_pipelines.build_npdd import BuildNpddConfig
from beam_pipelines.pool_transforms import PoolConfig
from beam_pipelines.prepare_problem import PrepareProblemConfig
from beam_pipelines.steal_labels import StealLabelsConfig
from beam_pipelines.runner import beam_option_errors
from copycat_tf.demo import DemoConfig
from copycat_tf import stages
from copycat_tf.errors import CopycatError
from copycat_tf.evaluation import EvaluateConfig
from copycat_tf.oracles import OracleSpec
from copycat_tf.relevance.figures import RelevanceConfig
from copycat_tf.serving.config import ServeConfig
from copycat_tf.serving.ownership import OwnershipConfig
from copycat_tf.report import ReportConfig
from copycat_tf.training.loop import TrainConfig

BIN = os.path.join(os.path.dirname(__file__), "..", "..", "bin")

# a valid config of each stage, and the binary whose flags its rules name (None: internal stage)
CONFIGS = {
    "build_npdd": (lambda: BuildNpddConfig(sources=["bundled"], output="o"), "build_npdd.py"),
    "balance": (lambda: BalanceConfig(input="i", output="o", per_class=3), "balance.py"),
    "steal_labels": (lambda: StealLabelsConfig(images="i", oracle=OracleSpec("m"), output="o"), "steal_labels.py"),
    "prepare_problem": (lambda: PrepareProblemConfig(problem="digits", output="o"), "prepare_problem.py"),
    "pool_transforms": (lambda: PoolConfig(images="i", output="o", variants=["grayscale"]), None),
    "evaluate": (lambda: EvaluateConfig(models=["m"], test="t"), "evaluate.py"),
    "relevance": (lambda: RelevanceConfig(target="t", copycats=["c"], images="i", output="o"), "relevance.py"),
    "report": (lambda: ReportConfig(runs=["r"], output="o"), "report.py"),
    "demo": (lambda: DemoConfig(output="o"), "demo.py"),
    "train": (lambda: TrainConfig(model="vgg16_bn", train=["t"], output="o"), "train.py"),
    "serve": (lambda: ServeConfig(model="m"), "serve.py"),
    "verify_ownership": (lambda: OwnershipConfig(suspect="s", reference="r", key="k", evidence=["e"]),
                         "verify_ownership.py"),
}

# Binaries whose flags are generated from their Config (issue #13: a knob is written once): every stage of
# the registry that has a Config.
GENERATED = {name.replace("-", "_"): (stage.binary, *stage.config.split(":"))
             for name, stage in ((n, stages.get(n)) for n in stages.names()) if stage.config}
OWN_FLAGS = {  # flags a binary defines that are no knob of its stage
    "train": set(), "balance": {"runner"},  # Beam stages' --runner (copycat_bin.app)
    "evaluate": {"output"},  # where the report JSON goes; the stage returns it
    "steal_labels": {"runner"}, "ensemble": set(), "build_npdd": {"runner"}, "prepare_problem": {"runner"}, "relevance": set(), "report": set(), "demo": set(),
    "serve": set(), "verify_ownership": set(),
}
CHECKS = {  # flag types, per binary
    "train": {"train": "list of strings", "epochs": "int", "lr": "float", "deterministic": "bool", "val": "string"},
    "balance": {"input": "string", "per_class": "int", "allow_missing_classes": "bool", "num_shards": "int"},
    "evaluate": {"model": "multi string", "test": "string", "bootstrap": "int", "num_classes": "int"},
    "steal_labels": {"oracle": "string", "oracle_timeout": "float", "oracle_value_range": "string enum",
                     "num_classes": "int", "adaptive_variants": "float", "pool_transforms": "list of strings",
                     "oracle_verify_tls": "bool", "strategy": "string", "adaptive_mixture": "bool"},
    "ensemble": {"members": "list of strings", "output": "string"},
    "serve": {"model": "string", "port": "int", "top1": "bool", "quota": "int", "rate": "float",
              "misinformation": "float", "prada_delta": "float", "prada_block": "bool", "watermark_keep": "string"},
    "verify_ownership": {"suspect": "string", "evidence": "list of strings", "controls": "list of strings",
                         "alpha": "float", "watermark_share": "float"},
    "build_npdd": {"source": "multi string", "max_file_mb": "float", "workers": "int", "tfds_data_dir": "string"},
    "prepare_problem": {"problem": "string", "data_dir": "string", "tfds_data_dir": "string"},
    "relevance": {"target": "string", "copycat": "multi string", "count": "int", "max_images": "int"},
    "report": {"runs": "multi string", "label_cost_per_image": "float", "tsne_samples": "int", "seed": "int"},
    "demo": {"output": "string", "crops": "int", "width": "float", "seeds": "int", "config": "string"},
}


def _bad_values(rule):
    bad = [float("nan"), "7"]
    if rule.low is not None:
        bad.append(rule.low if rule.above else rule.low - 1)
    if rule.high is not None:
        bad.append(rule.high + 1)
    if not rule.optional:
        bad.append(None)
    return bad


def _set(config, dotted, value):
    *path, last = dotted.split(".")
    for part in path:
        config = getattr(config, part)
    object.__setattr__(config, last, value)  # frozen specs too


CASES = [(stage, rule, bad) for stage, (make, _) in CONFIGS.items() for rule in make().RULES for bad in _bad_values(rule)]


@pytest.mark.parametrize("stage, rule, bad", CASES, ids=[f"{s}-{r.flag}={b!r}" for s, r, b in CASES])
def test_every_declared_bound_refuses_a_value_beyond_it(stage, rule, bad):
    config = CONFIGS[stage][0]()
    config.validate()  # the defaults pass
    _set(config, rule.field, bad)
    with pytest.raises(CopycatError, match=f"^--{rule.flag}=.* is out of range"):
        config.validate()


def _numeric_fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            yield from _numeric_fields(kind, f"{prefix}{field.name}.")
        elif {int, float} & set(typing.get_args(kind) or (kind,)) and kind is not bool:
            yield prefix + field.name


@pytest.mark.parametrize("stage", CONFIGS)
def test_every_numeric_field_has_a_rule_named_after_a_real_flag(stage):
    make, binary = CONFIGS[stage]
    config = make()
    ruled = {rule.field for rule in config.RULES}
    assert set(_numeric_fields(type(config))) <= ruled
    if binary:
        if stage in GENERATED:  # one flag per field (checked against the binary below)
            from copycat_bin.app import config_flags

            defined = {name for name, _ in config_flags(type(config))}
        else:
            with open(os.path.join(BIN, binary)) as handle:
                defined = set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", handle.read())) | {"seed", "output"}
        assert {rule.flag for rule in config.RULES} <= defined


def test_real_beam_options_pass_and_anything_else_is_named():
    assert beam_option_errors(["--project=p", "--region=europe-west1", "--temp_location=gs://b/tmp",
                               "--direct_num_workers=2", "--direct_running_mode=multi_processing"]) == []
    assert beam_option_errors(["--max_querie=10"]) == ["--max_querie=10"]
    assert beam_option_errors(["stray"]) == ["stray"]
    assert beam_option_errors(["--direct_num_workers=two"])  # a bad value is reported, not raised


def _run_binary(module, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPROFILEIMPORTTIME": "1"}
    script = os.path.join(os.path.dirname(sys.executable), "copycat-" + module.replace("_", "-"))
    result = subprocess.run([script, *args], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"copycat-") or "Traceback" in line
             or "FATAL" in line]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return result.returncode, lines, imported


@pytest.mark.parametrize("module, args, message", [
    ("steal_labels", ["--images=i", "--oracle=o", "--output=o2", "--max_querie=10"], "unknown flag --max_querie=10.*--max_queries"),
    ("prepare_problem", ["--output=o", "--bogus_flag=1"], "unknown flag --bogus_flag=1"),
    ("evaluate", ["--model=m", "--test=t", "--bogus=1"], "Unknown command line flag 'bogus'"),
    ("balance", ["--input=i", "--output=o", "--per_class=-3"], r"--per_class=-3 is out of range"),
    ("steal_labels", ["--images=i", "--oracle=o", "--output=o2", "--strategy=bogus"],
     r"--strategy='bogus' is unknown; use one of random, adaptive"),
    ("serve", ["--model=m", "--port=70000"], r"--port=70000 is out of range"),
    ("serve", ["--model=/no/such/export"], r"--model=/no/such/export is not a SavedModel"),
    ("relevance", ["--target=t", "--copycat=c", "--images=i", "--output=o", "--count=-1"], r"--count=-1 is out of range"),
    ("verify_ownership", ["--suspect=s", "--reference=r", "--key=k", "--evidence=e", "--watermark_share=0.9"],
     r"--watermark_share=0.9 is out of range"),
])
def test_a_binary_refuses_with_one_line_and_exit_2(module, args, message, tmp_path):
    code, lines, imported = _run_binary(module, *args)
    assert code == 2
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert "absl.flags" in imported  # the import log is there, and it shows TensorFlow never started:
    assert not {"tensorflow", "keras"} & imported  # refusing a bad option costs no TensorFlow start-up
    if not re.search("unknown flag|Unknown command line flag", message):  # nor Beam's: only a flag the stage does
        # not know is Beam's to check
        assert "apache_beam" not in imported



@pytest.mark.parametrize("stage", sorted(GENERATED))
def test_a_binarys_flags_are_its_configs_fields_with_the_same_defaults_and_help(stage):
    module, config_module, config_class = GENERATED[stage]
    code = (
        "import dataclasses, importlib, json, sys\n"
        "from absl import flags\n"
        f"binary = importlib.import_module({module!r})\n"
        f"config = getattr(importlib.import_module({config_module!r}), {config_class!r})\n"
        "defined = {f.name: [f.default, f.help, f.flag_type()] for m in (binary.__name__, 'copycat_bin.app')\n"
        "           for f in flags.FLAGS.get_flags_for_module(sys.modules[m])}\n"
        "from copycat_bin.app import config_flags\n"
        "def default(f):\n"
        "    if f.default is not dataclasses.MISSING: return f.default\n"
        "    return None if f.default_factory is dataclasses.MISSING else f.default_factory()\n"
        "fields = {name: [default(f), f.metadata.get('help'), bool(f.metadata.get('common'))]\n"
        "          for name, f in config_flags(config)}\n"
        "print(json.dumps({'defined': defined, 'fields': fields, 'tf': 'tensorflow' in sys.modules,\n"
        "                  'beam': 'apache_beam' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    import json

    found = json.loads(done.stdout.strip().splitlines()[-1])
    defined, fields = found["defined"], found["fields"]
    assert set(defined) - OWN_FLAGS[stage] == set(fields)  # one flag per field, no other
    for name, kind in CHECKS[stage].items():
        assert defined[name][2].endswith(kind), (name, defined[name][2])
    for name, (default, help_text, common) in fields.items():
        assert defined[name][0] == default, name
        if not common:  # the common flags (--output, --seed) keep the common help text
            assert help_text in defined[name][1], name  # absl adds the choices of an enum, a line to repeated flags
    assert not found["tf"] and not found["beam"]  # defining the flags imports no TensorFlow and no Beam
