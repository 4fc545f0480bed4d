"""An oracle handler that notes each load, for the Dask test. Its own module: a Dask worker that unpickles it
imports this file only, not the test module, whose conftest import configures TensorFlow's devices (which a
worker that already started TensorFlow refuses: "Virtual devices cannot be modified")."""

import os

from beam_pipelines import steal_labels


class LoadCountingHandler(steal_labels.OracleModelHandler):
    """The steal stage's oracle handler, also noting each load (process id) in a folder."""

    def __init__(self, loads: str, *args):
        super().__init__(*args)
        self._loads = loads

    def load_model(self):
        loaded = super().load_model()
        with open(os.path.join(self._loads, f"{os.getpid()}-{len(os.listdir(self._loads))}"), "w"):
            pass
        return loaded
