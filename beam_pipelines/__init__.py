"""The Beam pipelines of copycat (build_npdd, steal_labels, balance, prepare_problem) and their transforms.

Beam is imported in this package only; the pipelines run unchanged on DirectRunner, Dataflow,
Flink or Spark.
"""
