"""copycat-ensemble: one copycat from several trained on the same stolen labels, their probabilities averaged.

Copycats trained from hard labels on natural images vary a lot from one training seed to the next
(the same labels gave 57% and 67% of the target in two seeds in the fidelity lab): each learns the
oracle's boundaries only where the stolen images put them, and elsewhere guesses differently. The
average of their class probabilities guesses less, costs no query (only training time) and is one
model: the ensemble's run folder has ``model.keras`` (the members inside one Keras model) and an
``export/`` that honours the oracle contract, so copycat-evaluate, copycat-relevance and reports read
it like any run. ``metrics.json`` (written last) names the members.

    copycat-ensemble --members=runs/CC-A,runs/CC-B,runs/CC-C --output=runs/CC-VGG-NPDD-SL.ensemble3
"""

import dataclasses
import json
import logging

from copycat_tf.config_checks import required
from copycat_tf.errors import CopycatError
from copycat_tf.run_dir import RunDir

STAGE = "ensemble"
log = logging.getLogger("copycat.ensemble")


@dataclasses.dataclass
class EnsembleConfig:
    members: list[str] = required("Run folders of copycat-train to average (comma-separated, two or more), trained "
                                  "on the same classes and input size.")
    output: str = required("The run folder to write (local path or gs://...).")

    RULES = ()

    def validate(self) -> None:
        """Refuse fewer than two members or a member given twice (one line naming the flag)."""
        if len(self.members or []) < 2:
            raise CopycatError(f"--members={','.join(self.members or [])}: give two or more copycat-train run folders")
        if len(set(self.members)) != len(self.members):
            raise CopycatError(f"--members={','.join(self.members)} names a run twice")
        if not self.output:
            raise CopycatError("--output is required: the run folder to write")


def _member_metrics(member: str) -> dict:
    from tfrecords_schema import fileio

    run = RunDir(member)
    if not fileio.exists(run.metrics) or not fileio.exists(run.model):
        raise CopycatError(f"--members: {member} is not a finished copycat-train run (no {run.metrics} or "
                           f"{run.model}); train it first")
    return json.loads(fileio.read_text(run.metrics))


def build_ensemble(models: list):
    """A Keras model whose output is the mean of ``models``' outputs (each named member0, member1, ...)."""
    import keras

    shapes = {tuple(m.input_shape[1:]) for m in models}
    if len(shapes) != 1:
        raise CopycatError(f"--members take different inputs ({sorted(shapes)}): train them at one --input_size")
    inputs = keras.Input(shapes.pop(), name="pixels")
    outputs = []
    for number, model in enumerate(models):
        model.name = f"member{number}"
        outputs.append(model(inputs, training=False))
    return keras.Model(inputs, keras.layers.Average(name="mean_probabilities")(outputs), name="ensemble")


def run(config: EnsembleConfig) -> dict:
    """Write the ensemble's run folder (model.keras, export/, metrics.json last); returns its metrics."""
    config.validate()
    from copycat_tf.stage_output import claim_output

    found = [_member_metrics(member) for member in config.members]
    classes = {(m.get("num_classes"), tuple(m.get("class_names") or ())) for m in found}
    if len(classes) != 1:
        raise CopycatError(f"--members were trained on different classes ({sorted(classes)}): an ensemble needs "
                           "one set of classes")
    claim_output(config.output, STAGE, [("--members", member) for member in config.members])

    import keras

    from copycat_tf.export import export_classifier
    from tfrecords_schema import fileio

    models = [keras.saving.load_model(RunDir(member).model, compile=False) for member in config.members]
    ensemble = build_ensemble(models)
    out = RunDir(config.output)
    fileio.makedirs(str(out))
    ensemble.save(out.model)
    export_classifier(ensemble, out.export)
    num_classes, class_names = classes.pop()
    metrics = {"model": "ensemble", "members": list(config.members), "num_classes": num_classes,
               "class_names": list(class_names), "member_models": [m.get("model") for m in found],
               "member_seeds": [m.get("options", {}).get("seed") for m in found],
               # the members' training folders, so reports follow the ensemble back to its stolen labels
               "options": {"members": list(config.members),
                           "train": sorted({t for m in found for t in m.get("options", {}).get("train", [])})}}
    fileio.write_text_atomically(out.metrics, json.dumps(metrics, indent=2))
    log.info("ensemble of %d copycats -> %s", len(models), out.export)
    return metrics


__all__ = ["EnsembleConfig", "STAGE", "build_ensemble", "run"]
