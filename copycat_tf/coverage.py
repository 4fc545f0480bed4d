"""Class coverage of stolen labels: which classes the queries reached, and whether more queries would reach the rest.

The copy can only learn classes it has stolen labels for (paper §5.8), and natural random images
reach some classes rarely or never. From the label histogram alone, this module tells the attacker:

- ``classes_never_seen`` and the share of the largest class;
- the Good–Turing estimate of the chance that the next query returns a class not seen yet: the
  share of queries whose class was seen exactly once (``singletons / queries``);
- for each never-seen class, a 95% upper bound on how often a query returns it (no sighting in n
  queries means its rate is below 1 - 0.05^(1/n), about 3/n), hence roughly how many more queries it
  would take to see it once;
- with a quota of images per class, how many queries at the current rates each seen class needs
  to reach it (the rare classes' numbers say whether plain random querying can ever get there).
"""

import math
from typing import Sequence


def unseen_rate_upper_95(queries: int) -> float:
    """Largest per-query rate of a class that was not seen in ``queries`` queries, at 95% confidence."""
    return 1.0 if queries <= 0 else 1.0 - 0.05 ** (1.0 / queries)


def good_turing_unseen(histogram: Sequence[int]) -> float:
    """Estimated chance that the next query returns a class not seen so far (1.0 before any query)."""
    queries = sum(histogram)
    singletons = sum(1 for n in histogram if n == 1)
    return 1.0 if queries == 0 else singletons / queries


def coverage_report(histogram: Sequence[int], quota: int | None = None) -> dict:
    """The coverage numbers of one label histogram (index = class id), JSON-ready for a manifest."""
    histogram = [int(n) for n in histogram]
    queries = sum(histogram)
    never = [c for c, n in enumerate(histogram) if n == 0]
    upper = unseen_rate_upper_95(queries)
    report = {
        "labels": queries,
        "num_classes": len(histogram),
        "classes_seen": len(histogram) - len(never),
        "classes_never_seen": never,
        "classes_seen_once": [c for c, n in enumerate(histogram) if n == 1],
        "largest_class_share": round(max(histogram) / queries, 4) if queries else 0.0,
        "good_turing_p_unseen": round(good_turing_unseen(histogram), 6),
        "unseen_rate_upper_95": round(upper, 6),
        "queries_to_see_an_unseen_class_at_least": math.ceil(1.0 / upper) if never and upper > 0 else 0,
    }
    if quota is not None:
        report["quota"] = int(quota)
        report["below_quota"] = [c for c, n in enumerate(histogram) if n < quota]
        report["queries_to_quota"] = [
            (0 if n >= quota else math.ceil(quota * queries / n)) if n else None for n in histogram
        ]
    return report


def describe(report: dict) -> str:
    """One line for logs and the binary's output."""
    line = (f"{report['classes_seen']} of {report['num_classes']} classes seen in {report['labels']} labels; "
            f"largest class {100 * report['largest_class_share']:.0f}%; "
            f"Good-Turing chance the next query shows a new class: {report['good_turing_p_unseen']:.4f}")
    if report["classes_never_seen"]:
        line += (f"; each unseen class answers < 1 in {report['queries_to_see_an_unseen_class_at_least']} "
                 f"queries (95%)")
    return line


__all__ = ["coverage_report", "describe", "good_turing_unseen", "unseen_rate_upper_95"]
