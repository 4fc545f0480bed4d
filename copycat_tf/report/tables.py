"""The paper's tables from run folders: Table 3 (same architecture), Table 4 (cross architecture),
Table 5 (attack cost), and the class coverage of each copycat's stolen natural-image labels.
"""

from copycat_tf.coverage import coverage_report
from copycat_tf.report.runs import Run, from_npdd, lineage, stolen_folders
from copycat_tf.run_dir import RunName
from tfrecords_schema.extras import BalancedExtra, StolenExtra


def _by_problem(runs: list[Run]) -> dict[str, dict[str, Run]]:
    problems: dict[str, dict[str, Run]] = {}
    for run in runs:
        if run.macro_f1 is not None and run.queries is None:
            problems.setdefault(run.problem or "?", {})[run.base_name] = run
    return problems


def _ratio(a: float | None, b: float | None) -> str:
    return f"{100 * a / b:.1f}%" if a is not None and b else "–"


def _f1(run: Run | None) -> str:
    return f"{run.macro_f1:.3f}" if run and run.macro_f1 is not None else "–"


def performance_table(runs: list[Run], arch: str, copy_arch: str) -> list[list[str]]:
    """Rows: problem, target, baseline, then each copycat's macro F1 and its % of target and baseline."""
    target_name, baseline_name = str(RunName("BL", arch, "ODD", "OL")), str(RunName("BL", copy_arch, "PDD", "OL"))
    rows = [["problem", f"target {target_name}", f"baseline {baseline_name}", "copycat", "macro F1",
             "% of target", "% of baseline"]]
    for problem, named in sorted(_by_problem(runs).items()):
        target = named.get(target_name)
        baseline = named.get(baseline_name)
        copycats = sorted(n for n, r in named.items() if r.kind == "CC" and r.arch == copy_arch)
        for name in copycats or [None]:
            copy = named.get(name) if name else None
            rows.append([problem, _f1(target), _f1(baseline), name or "–", _f1(copy),
                         _ratio(copy.macro_f1 if copy else None, target.macro_f1 if target else None),
                         _ratio(copy.macro_f1 if copy else None, baseline.macro_f1 if baseline else None)])
    return rows


def cost_table(runs: list[Run], label_cost_per_image: float, default_price_per_1000: float) -> list[list[str]]:
    """Queries x price against what labeling the target's ODD would cost, and the break-even price."""
    rows = [["problem", "copycat", "queries", "price / 1000", "attack cost", "ODD images", "ODD labeling cost",
             "price / 1000 above which copying does not pay"]]
    by_problem = _by_problem(runs)
    for problem, named in sorted(by_problem.items()):
        target = next((r for r in named.values() if (r.kind, r.data, r.labels, r.variant) == ("BL", "ODD", "OL", None)),
                      None)
        odd_images = (target.metrics or {}).get("train_records") if target else None
        for name, run in sorted(named.items()):
            if run.kind != "CC":
                continue
            stolen = [manifest for _, manifest in stolen_folders(run)]
            queries = sum(StolenExtra.from_dict(m.get("extra")).queries_total or m.get("counts", {}).get("queries", 0)
                          for m in stolen)
            prices = [m.get("options", {}).get("price_per_1000") for m in stolen if m.get("options", {}).get("price_per_1000")]
            price = prices[0] if prices else default_price_per_1000
            attack = queries * price / 1000
            labeling = odd_images * label_cost_per_image if odd_images else None
            break_even = f"{labeling / (queries / 1000):.2f}" if labeling and queries else "–"
            rows.append([problem, name, str(queries), f"{price:.2f}", f"{attack:.2f}", str(odd_images or "–"),
                         f"{labeling:.2f}" if labeling is not None else "–", break_even])
    return rows


def coverage_table(runs: list[Run]) -> list[list[str]]:
    """Per copycat: how its natural-image labels were stolen, which classes they reached, how balancing replicated them."""
    rows = [["problem", "copycat", "strategy", "pool transforms", "labels", "classes seen", "never seen",
             "largest class", "P(next query shows a new class)", "replication factor (max)"]]
    for run in sorted((r for r in runs if r.kind == "CC"), key=lambda r: (r.problem or "", r.base_name, r.queries or 0)):
        for folder, manifest in stolen_folders(run):
            if not from_npdd(manifest):
                continue
            extra = StolenExtra.from_dict(manifest.get("extra"))
            report = extra.coverage or coverage_report(extra.label_histogram)
            replication = [max(BalancedExtra.from_dict(m.get("extra")).replication_factor or [0])
                           for f, m in lineage(run, "balance")
                           if any(entry.get("folder") == folder for entry in m.get("inputs", []))]
            never = report["classes_never_seen"]
            rows.append([run.problem or "?", run.name, extra.strategy,
                         ", ".join(manifest.get("options", {}).get("pool_transforms") or []) or "–",
                         str(report["labels"]), f"{report['classes_seen']} of {report['num_classes']}",
                         ", ".join(map(str, never)) or "–", f"{100 * report['largest_class_share']:.0f}%",
                         f"{report['good_turing_p_unseen']:.4f}",
                         f"{max(replication):.1f}" if replication else "–"])
    return rows


def markdown(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
