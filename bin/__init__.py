"""Thin absl-flag binaries, one per stage; installed as the package ``copycat_bin``."""
