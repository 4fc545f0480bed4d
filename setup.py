"""Only for Beam's --setup_file (Dataflow workers build the package from it); metadata is in setup.cfg."""

from setuptools import setup

setup()
