"""The ``defenses`` experiment (for API owners): what each served defense costs honest users and takes from a copy.

The target is served behind each defense (copycat-serve, in the background on loopback) and attacked the
same way (random and adaptive querying, equal budget, over seeds), each attacker under its own API key; a
benign client sends the problem's TDD. :func:`plan_defenses` adds the stage calls to an experiment's plan;
:func:`gather_defenses` reads the results: per defense and strategy the copy's performance and agreement
(mean ± std over seeds), the honest users' macro F1 on the TDD, whether and after how many queries the
detector flagged each key (from the server's query log), and the watermark's ownership p-values for every
copycat and for an independent model.
"""

import json
import statistics

from copycat_tf.errors import CopycatError
from copycat_tf.plan import StageCall, join
from copycat_tf.run_dir import RunDir

# The defenses experiment's served defenses unless its config names its own: name → copycat-serve options. A
# quota is left out: it stops the attack at the quota (the copy is then the data curve's point at that budget).
DEFENSES = {
    "none": [],
    "top1": ["--top1"],
    "round1": ["--round_to=1"],
    "watermark": ["--watermark_share=0.005"],
    "misinformation": ["--misinformation=0.5"],
    "prada": ["--prada_delta=0.9"],
}
DEFENSES_PORT = 18600  # defense i listens on loopback at port + i


def key_variable(name: str) -> str:
    """The environment variable the attack's client reads an API key from (COPYCAT_KEY_<NAME>)."""
    return "COPYCAT_KEY_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def plan_defenses(p, config: dict, npdd: str, target: str, runs: str, result) -> None:
    """The target behind each defense, attacked the same way. Per defense (``defenses.served``, default DEFENSES):
    copycat-serve in the background on loopback (port ``defenses.port`` + i, one API key per attacker and one
    benign client, the query log per key; a watermark also keeps its evidence); each strategy
    (``defenses.strategies``: random, adaptive) with each seed (``defenses.seeds``) steals ``defenses.budget``
    labels from it under its own key and trains a copycat (run CC-*-NPDD-SL.served-DEFENSE+STRATEGY+sSEED@BUDGET,
    trained with ``defenses.train_options``, default square-root class shares), evaluated against the bare
    target; a benign client sends the TDD (the honest users' answers, and the detector's false positives);
    under a watermark, copycat-verify-ownership tests every copycat and, as a control, a model trained on the
    PDD that never saw the API. The output folder must be local (the servers announce themselves in files)."""
    from copycat_tf.experiment import ARCH, _run

    options = config.get("defenses", {})
    strategies = options.get("strategies", ["random", "adaptive"])
    if set(strategies) - {"random", "adaptive"}:
        raise CopycatError(f"defenses: strategies={strategies}: give random and/or adaptive")
    if "adaptive" in strategies and not options.get("num_classes"):
        raise CopycatError("defenses: give num_classes (the attacker knows the class count; a top-1 API does not "
                           "tell it, and adaptive querying needs it)")
    arch = ARCH.get(config["copycat"]["model"], config["copycat"]["model"])
    independent = p.train(_run(runs, "BL", arch, "PDD", "OL"), config["copycat"], join(p.problem, "pdd"))
    seeds = options.get("seeds", [0, 1, 2])
    result.api_keys = {name: key_variable(name) for name in
                       ["benign", *(f"attacker-{how}-s{seed}" for how in strategies for seed in seeds)]}
    for number, (defense, served) in enumerate(options.get("served", DEFENSES).items()):
        serve_options, attackers = _served_spec(defense, served, strategies)
        url, entry = _served(p, options, target, number, defense, serve_options)
        entry["independent"] = independent
        for how in attackers:
            for seed in seeds:
                entry["attacks"].append(_attack(p, config, options, npdd, target, runs, entry, url, how, seed))
        result.defenses.append(entry)


def _served_spec(defense: str, served, strategies: list) -> tuple[list, list]:
    """A served defense's copycat-serve options and the strategies that attack it. ``served`` is the options, or
    {"options": [...], "strategies": [...]} to attack it with some of the experiment's strategies only (e.g.
    controls whose hard labels cannot differ from the bare model's, checked with the cheaper attacker)."""
    if isinstance(served, list):
        return served, strategies
    if not isinstance(served, dict) or set(served) - {"options", "strategies"}:
        raise CopycatError(f"defenses: served.{defense}={served!r}: give a list of copycat-serve options, or "
                           '{"options": [...], "strategies": [...]}')
    attackers = served.get("strategies", strategies)
    if not attackers or set(attackers) - set(strategies):
        raise CopycatError(f"defenses: served.{defense}.strategies={attackers}: give some of the experiment's "
                           f"strategies {strategies}")
    return list(served.get("options", [])), [how for how in strategies if how in attackers]


def _served(p, options: dict, target: str, number: int, defense: str, serve_options: list) -> tuple[str, dict]:
    """The background server of one defense and the benign client's steal of the TDD from it."""
    root = join(p.out, "defenses")
    folder, port = join(root, defense), int(options.get("port", DEFENSES_PORT)) + number
    args = [f"--model={RunDir(target).export}", f"--port={port}", "--model_name=model",
            f"--api_keys={join(root, 'api_keys.txt')}", f"--query_log={join(folder, 'queries.jsonl')}",
            f"--ready_file={join(folder, 'ready')}", *serve_options]
    share = next((o.split("=", 1)[1] for o in serve_options if o.startswith("--watermark_share=")), None)
    if share is not None:
        args += [f"--watermark_key={join(root, 'watermark.key')}", f"--watermark_keep={join(folder, 'evidence')}"]
    p.calls.append(StageCall("serve", tuple(args), join(folder, "ready"), background=True))
    url = f"http://127.0.0.1:{port}/v1/models/model:predict"
    classes = [f"--num_classes={options['num_classes']}"] if options.get("num_classes") else []
    benign = p.steal(p.tdd, target, join(p.lake, "stolen", f"served-{defense}", "TDD-SL"),
                     f"--oracle_api_key_env={key_variable('benign')}", *classes, oracle=url)
    return url, {"defense": defense, "options": list(serve_options), "log": join(folder, "queries.jsonl"),
                 "benign": benign, "tdd": p.tdd, "attacks": [], "folder": folder, "watermark_share": share}


def _attack(p, config: dict, options: dict, npdd: str, target: str, runs: str, entry: dict, url: str, how: str,
            seed: int) -> dict:
    """One attacker against one served defense: steal under its own key, train, evaluate, and (watermark) verify."""
    from copycat_tf.experiment import ARCH, _name, _run

    budget, key = int(options.get("budget", 2000)), f"attacker-{how}-s{seed}"
    classes = [f"--num_classes={options['num_classes']}"] if options.get("num_classes") else []
    extra = [f"--max_queries={budget}", f"--strategy={how}", f"--seed={seed}",
             f"--oracle_api_key_env={key_variable(key)}", *options.get("steal_options", []), *classes]
    if how == "adaptive":
        extra.append(f"--adaptive_cache={join(p.lake, 'adaptive-cache')}")
    stolen = p.steal(npdd, target, join(p.lake, "stolen", f"served-{entry['defense']}", f"NPDD-SL.{how}.s{seed}@{budget}"),
                     *extra, oracle=url)
    copy_model = {**config["copycat"], "train_options": [*config["copycat"].get("train_options", []),
                                                         *options.get("train_options", ["--class_balance=sqrt"])]}
    arch = ARCH.get(copy_model["model"], copy_model["model"])
    run = p.train(_run(runs, "CC", arch, "NPDD", "SL", recipe=f"served-{entry['defense']}+{how}+s{seed}", budget=budget),
                  copy_model, stolen, seed=seed)
    p.evaluate(run, target)
    attack = {"strategy": how, "seed": seed, "key": key, "stolen": stolen, "run": run}
    if entry["watermark_share"] is not None:
        attack["ownership"] = join(entry["folder"], "ownership", f"{_name(run)}.json")
        p.add("verify-ownership", [f"--suspect={RunDir(run).export}", f"--reference={RunDir(target).export}",
                                   f"--key={join(p.out, 'defenses', 'watermark.key')}",
                                   f"--evidence={join(entry['folder'], 'evidence', key)}",
                                   f"--watermark_share={entry['watermark_share']}",
                                   f"--controls={RunDir(entry['independent']).export}", "--missing_evidence_ok",
                                   *classes, f"--output={attack['ownership']}"], attack["ownership"])
    return attack


def prepare_keys(result, environ) -> None:
    """Before the plan runs: the API keys file (one secret per attacker and the benign client) and the watermark
    key, made once and kept (a resumed experiment uses the same keys), and each secret in ``environ`` under the
    variable its client reads. Only when the plan has a defenses experiment."""
    import os
    import secrets

    if not result.defenses:
        return
    root = join(result.out, "defenses")
    os.makedirs(root, exist_ok=True)
    path = join(root, "api_keys.txt")
    known = {}
    if os.path.exists(path):
        known = dict(line.split(":", 1) for line in open(path).read().split() if ":" in line)
    for name in result.api_keys:
        known.setdefault(name, secrets.token_hex(16))
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:  # secrets: owner only
        handle.write("".join(f"{name}:{secret}\n" for name, secret in known.items()))
    for name, variable in result.api_keys.items():
        environ[variable] = known[name]
    with open(plan_file(result.out), "w") as handle:
        json.dump({"target": result.target, "entries": result.defenses}, handle, indent=2)
    watermark = join(root, "watermark.key")
    if not os.path.exists(watermark):
        with os.fdopen(os.open(watermark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")


def flagged_at(log_lines: list[dict]) -> dict:
    """Per key of a query log: its queries and the count at which the detector first flagged it (None: never): the
    detector's own count (``prada:flagged@N``), else (an older log's bare ``prada:flagged``) the line's place."""
    out: dict[str, dict] = {}
    for line in log_lines:
        key = out.setdefault(line["key"], {"queries": 0, "flagged_at": None})
        key["queries"] += 1
        for note in line.get("defenses", []):
            if note == "prada:flagged" or note.startswith("prada:flagged@"):
                count = int(note.split("@", 1)[1]) if "@" in note else key["queries"]
                key["flagged_at"] = count if key["flagged_at"] is None else min(key["flagged_at"], count)
    return out


def honest_macro_f1(tdd: str, answered: str) -> float:
    """Macro F1 of the served answers (the benign client's stolen folder) against the TDD's true labels."""
    from sklearn.metrics import f1_score

    from tfrecords_schema import LABELED_IMAGE, read_records

    served = {r["id"]: int(r["label"]) for r in read_records(answered, LABELED_IMAGE)}
    truth = [(int(r["label"]), served[r["id"]]) for r in read_records(tdd, LABELED_IMAGE) if r["id"] in served]
    if not truth:
        raise CopycatError(f"{answered} holds no answer for an image of {tdd}")
    return float(f1_score([t for t, _ in truth], [a for _, a in truth], average="macro"))


def _mean_std(values: list) -> dict:
    values = [v for v in values if v is not None]
    return {"mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}


def plan_file(out: str) -> str:
    """Where the defenses experiment's entries are written before it runs (the report and gather read them)."""
    return join(out, "defenses", "plan.json")


def gather_defenses(target: str, entries: list[dict], read_json) -> list[dict]:
    """One row per defense and strategy (see the module docstring), from the finished plan's outputs."""
    from tfrecords_schema import fileio

    target_f1 = read_json(RunDir(target).evaluation)["macro_f1"]
    rows = []
    for entry in entries:
        log = [json.loads(line) for line in fileio.read_text(entry["log"]).splitlines() if line.strip()]
        detection = flagged_at(log)
        honest = honest_macro_f1(entry["tdd"], entry["benign"])
        benign = detection.get("benign", {"queries": 0, "flagged_at": None})
        for strategy in dict.fromkeys(a["strategy"] for a in entry["attacks"]):
            attacks = [a for a in entry["attacks"] if a["strategy"] == strategy]
            evaluations = [read_json(RunDir(a["run"]).evaluation) for a in attacks]
            flags = [detection.get(a["key"], {}).get("flagged_at") for a in attacks]
            row = {"defense": entry["defense"], "options": entry["options"], "strategy": strategy,
                   "seeds": [a["seed"] for a in attacks],
                   "copy_performance": _mean_std([e["macro_f1"] / target_f1 if target_f1 else None for e in evaluations]),
                   "agreement": _mean_std([(e.get("agreement") or {}).get("overall") for e in evaluations]),
                   "honest_macro_f1": honest, "target_macro_f1": target_f1,
                   "detector": any(o.startswith("--prada_delta") for o in entry["options"]),
                   "benign_flagged_at": benign["flagged_at"], "benign_queries": benign["queries"],
                   "attackers_flagged": sum(f is not None for f in flags), "flagged_at": flags}
            if any("ownership" in a for a in attacks):
                reports = [read_json(a["ownership"]) for a in attacks]
                row["ownership_p_copycat"] = [r["models"]["suspect"]["p_value"] for r in reports]
                row["ownership_p_independent"] = [next(m["p_value"] for role, m in r["models"].items()
                                                       if role.startswith("control:")) for r in reports]
            rows.append(row)
    return rows


def table(rows: list[dict]) -> list[list[str]]:
    """The report's table of the rows: one line per defense and strategy."""
    def pm(value: dict) -> str:
        return "–" if value["mean"] is None else f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}"

    def p_values(values) -> str:
        return ", ".join(f"{v:.2g}" for v in values) if values else "–"

    out = [["defense", "strategy", "copy performance (%)", "agreement (%)", "honest users' macro F1",
            "attackers flagged (at query)", "benign client flagged", "watermark p: copycats", "watermark p: independent"]]
    for row in rows:
        flagged = [str(f) for f in row["flagged_at"] if f is not None]
        watched = row.get("detector", True)  # no detector runs: nothing to report, not "nobody flagged"
        out.append([row["defense"], row["strategy"], pm(row["copy_performance"]), pm(row["agreement"]),
                    f"{row['honest_macro_f1']:.3f} (bare {row['target_macro_f1']:.3f})",
                    (f"{row['attackers_flagged']} of {len(row['flagged_at'])}" + (f" ({', '.join(flagged)})" if flagged
                                                                                 else "")) if watched else "–",
                    ("no" if row["benign_flagged_at"] is None else f"at {row['benign_flagged_at']}") if watched else "–",
                    p_values(row.get("ownership_p_copycat")), p_values(row.get("ownership_p_independent"))])
    return out


def figure(rows: list[dict], path: str) -> bool:
    """Copy performance per defense and strategy (mean ± std over seeds) beside the honest users' macro F1 relative
    to the bare model's; False when there is nothing to draw."""
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    width = 0.8 / (len(strategies) + 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(defenses)), 4))
    for i, strategy in enumerate(strategies):
        got = {r["defense"]: r for r in rows if r["strategy"] == strategy and r["copy_performance"]["mean"] is not None}
        drawn = [x for x, d in enumerate(defenses) if d in got]  # a defense this strategy did not attack: no bar
        ax.bar([x + i * width for x in drawn], [100 * got[defenses[x]]["copy_performance"]["mean"] for x in drawn],
               width, yerr=[100 * got[defenses[x]]["copy_performance"]["std"] for x in drawn], capsize=3,
               label=f"copy performance, {strategy}")
    honest = {r["defense"]: 100 * r["honest_macro_f1"] / r["target_macro_f1"] for r in rows if r["target_macro_f1"]}
    ax.bar([x + len(strategies) * width for x in range(len(defenses))], [honest.get(d, 0) for d in defenses], width,
           color="0.6", label="honest users' macro F1 / bare model's")
    ax.set_xticks([x + width * len(strategies) / 2 for x in range(len(defenses))], defenses)
    ax.set_ylabel("% of the bare model")
    ax.set_ylim(0, 135)  # room above the 100% bars for the legend, which must not hide a short bar
    ax.legend(fontsize=8, loc="upper center", ncol=len(strategies) + 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


__all__ = ["DEFENSES", "figure", "flagged_at", "gather_defenses", "honest_macro_f1", "key_variable", "plan_defenses",
           "plan_file", "prepare_keys", "table"]
