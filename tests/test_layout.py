"""The layout promised in DESIGN.md: every package is installed and every console script resolves."""

import ast
import configparser
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def _listed_packages() -> set[str]:
    return {line.strip() for line in SETUP["options"]["packages"].splitlines() if line.strip()}


def test_every_package_folder_is_listed_in_setup_cfg():
    found = set()
    for top, installed_as in [("tfrecords_schema", "tfrecords_schema"), ("copycat_tf", "copycat_tf"),
                              ("beam_pipelines", "beam_pipelines"), ("bin", "copycat_bin")]:
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((installed_as, *relative)))
    assert found <= _listed_packages(), f"add to setup.cfg packages: {sorted(found - _listed_packages())}"


def test_every_console_script_resolves():
    """Each entry point names a module that exists and defines the function (read, not imported:
    every binary defines its absl flags at import, and two binaries cannot share one process)."""
    scripts = [line for line in SETUP["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    assert scripts
    for line in scripts:
        name, target = (part.strip() for part in line.split("="))
        module, function = target.split(":")
        assert name.startswith("copycat-"), name
        spec = importlib.util.find_spec(module)
        assert spec and spec.origin, line
        tree = ast.parse(pathlib.Path(spec.origin).read_text())
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, line


def test_beam_is_imported_only_in_beam_pipelines():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("copycat_tf", "tfrecords_schema", "bin")
        for path in (ROOT / folder).rglob("*.py")
        if "apache_beam" in path.read_text()
    ]
    assert not offenders, f"Beam imported outside beam_pipelines/: {offenders}"
