"""copycat-report: the paper's tables and figures for whatever runs exist, as Markdown and static HTML."""

import html
import logging
import os

from copycat_tf.errors import CopycatError
from copycat_tf.report import figures, tables
from copycat_tf.report.runs import Run, find_runs, from_npdd, stolen_folders
from copycat_tf.report_config import ReportConfig
from copycat_tf.stage_output import claim_output

log = logging.getLogger("copycat.report")


def _tsne_inputs(runs: list[Run]):
    """(target run, its ODD folder, the NPDD-SL folder a copycat of the same problem was trained from)."""
    for target in (r for r in runs if r.kind == "BL" and r.data == "ODD" and r.metrics):
        odd = (target.metrics.get("options", {}).get("train") or [None])[0]
        for copycat in (r for r in runs if r.kind == "CC" and r.problem == target.problem):
            for folder, manifest in stolen_folders(copycat):
                if odd and from_npdd(manifest) and os.path.isdir(folder):
                    return target, odd, folder  # the stolen labels before balancing: no replicated images
    return None


def build_report(config: ReportConfig) -> dict:
    config.validate()
    claim_output(config.output, "report", clear=False)
    runs = find_runs(config.runs)
    if not runs:
        raise CopycatError(f"no run folders (named like BL-VGG-ODD-OL or CC-VGG-NPDD-SL) under {', '.join(config.runs)}")
    os.makedirs(config.output, exist_ok=True)
    sections = []
    same = tables.performance_table(runs, "VGG", "VGG")
    sections.append(("Table 3: same architecture (VGG target, VGG copycats)", tables.markdown(same), None))
    cross = tables.performance_table(runs, "VGG", "Alex")
    sections.append(("Table 4: cross architecture (VGG target, AlexNet copycat and baseline)", tables.markdown(cross), None))
    cost = tables.cost_table(runs, config.label_cost_per_image, config.price_per_1000)
    sections.append((f"Table 5: attack cost (labeling an ODD image: {config.label_cost_per_image:.2f})", tables.markdown(cost), None))
    covered = tables.coverage_table(runs)
    if len(covered) > 1:
        sections.append(("Class coverage of the stolen natural-image labels", tables.markdown(covered), None))
    produced = {"tables": ["table3", "table4", "table5"] + (["coverage"] if len(covered) > 1 else []), "figures": []}
    for name, title, draw in [
        ("fig4_label_distribution.png", "Fig. 4: distribution of the stolen labels", lambda p: figures.label_distribution(runs, p)),
        ("fig5_data_curve.png", "Fig. 5: copy performance against the number of queries", lambda p: figures.data_curve(runs, p)),
        ("coverage_curves.png", "Coverage: classes covered, copy performance and agreement against queries, per strategy",
         lambda p: figures.coverage_curves(runs, p)),
    ]:
        if draw(os.path.join(config.output, name)):
            sections.append((title, "", name))
            produced["figures"].append(name)
    if config.defenses:
        produced["figures"] += _defenses_section(config, sections)
    inputs = _tsne_inputs(runs)
    if inputs and figures.tsne(*inputs, os.path.join(config.output, "fig2_tsne.png"), config.tsne_samples, config.seed):
        sections.append(("Fig. 2: t-SNE of the target's features, ODD-OL and NPDD-SL", "", "fig2_tsne.png"))
        produced["figures"].append("fig2_tsne.png")
    runs_table = [["run", "problem", "macro F1", "balanced accuracy", "accuracy", "copy performance"]] + [
        [r.name, r.problem or "–", *(f"{r.evaluation[k]:.3f}" if r.evaluation and r.evaluation.get(k) is not None else "–"
                                      for k in ("macro_f1", "balanced_accuracy", "accuracy", "copy_performance"))]
        for r in sorted(runs, key=lambda r: r.name)]
    sections.insert(0, ("Runs", tables.markdown(runs_table), None))
    _write(config.output, sections)
    produced["runs"] = [r.name for r in runs]
    log.info("report of %d runs in %s", len(runs), config.output)
    return produced


def _defenses_section(config: ReportConfig, sections: list) -> list[str]:
    """The defenses experiment's table and figure (copycat_tf.defenses_plan), from its plan file."""
    import json

    from copycat_tf import defenses_plan
    from tfrecords_schema import fileio

    try:
        planned = json.loads(fileio.read_text(config.defenses))
    except (OSError, ValueError) as error:
        raise CopycatError(f"--defenses={config.defenses}: cannot read the defenses plan ({error}); give "
                           "OUT/defenses/plan.json of a defenses experiment") from None
    rows = defenses_plan.gather_defenses(planned["target"], planned["entries"],
                                         lambda path: json.loads(fileio.read_text(path)))
    sections.append(("Defenses: what each costs honest users and takes from the copy",
                     tables.markdown(defenses_plan.table(rows)), None))
    name = "defenses.png"
    if defenses_plan.figure(rows, os.path.join(config.output, name)):
        sections.append(("Defenses: copy performance per defense and strategy, honest users' macro F1", "", name))
        return [name]
    return []


def _write(output: str, sections) -> None:
    markdown = ["# copycat report", ""]
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>copycat report</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}</style></head><body><h1>copycat report</h1>"]
    for title, table, image in sections:
        markdown += [f"## {title}", ""]
        page.append(f"<h2>{html.escape(title)}</h2>")
        if table:
            markdown += [table, ""]
            rows = [line.strip("|").split("|") for line in table.splitlines() if not line.startswith("| ---") and "---" not in line]
            page.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(cell.strip())}</{'th' if i == 0 else 'td'}>"
                                 for cell in row) + "</tr>" for i, row in enumerate(rows)) + "</table>")
        if image:
            markdown += [f"![{title}]({image})", ""]
            page.append(f"<img src='{html.escape(image)}' alt='{html.escape(title)}'>")
    page.append("</body></html>")
    with open(os.path.join(output, "report.md"), "w") as handle:
        handle.write("\n".join(markdown))
    with open(os.path.join(output, "index.html"), "w") as handle:
        handle.write("\n".join(page))


__all__ = ["ReportConfig", "build_report"]
