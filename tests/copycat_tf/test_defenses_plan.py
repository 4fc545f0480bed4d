"""The defenses experiment as a plan (no training), its key set-up, and its readers of the server's outputs."""

import os

import pytest

from copycat_tf.defenses_plan import flagged_at, honest_macro_f1, key_variable, prepare_keys
from copycat_tf.errors import CopycatError
from copycat_tf.experiment import load_config, plan
from copycat_tf.plan import StageCall, execute
from tests.conftest import labeled_record
from tfrecords_schema import LABELED_IMAGE, Manifest, write_manifest, write_shards

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "digits_defenses.json")


def _steals_of(result, defense):
    return [c for c in result.calls if c.stage == "steal-labels" and f"served-{defense}/" in c.done]


def test_each_defense_is_served_and_attacked_the_same_way():
    result = plan(load_config(CONFIG, small=False), "/x")
    servers = [c for c in result.calls if c.stage == "serve"]
    assert [c.background for c in servers] == [True] * 6
    assert [c.done for c in servers] == [f"/x/defenses/{d}/ready" for d in
                                        ("none", "watermark", "misinformation", "prada", "top1", "round1")]
    assert [dict(a.split("=", 1) for a in c.args if "=" in a)["--port"] for c in servers] == [str(18600 + i) for i in range(6)]
    calls = list(result.calls)
    attacks = {}
    for server in servers:
        defense = server.done.split("/")[-2]
        url = f"http://127.0.0.1:{server.args[1].split('=')[1]}/v1/models/model:predict"
        steals = _steals_of(result, defense)
        assert all(c.flag("oracle") == url and calls.index(c) > calls.index(server) for c in steals)
        benign, *attack = steals
        assert benign.flag("images") == "/x/lake/problems/digits/tdd" and benign.flag("max_queries") is None
        assert benign.flag("oracle_api_key_env") == key_variable("benign") == "COPYCAT_KEY_BENIGN"
        attacks[defense] = sorted((c.flag("strategy"), c.flag("seed"), c.flag("max_queries"), c.flag("num_classes"),
                                   c.flag("oracle_api_key_env")) for c in attack)
    # the same attack against every defense: strategies x seeds, equal budget, one key each; the controls (their hard
    # labels are the bare model's) by the random attacker only
    assert all(attacks[d] == attacks["none"] for d in ("watermark", "misinformation", "prada")) and len(attacks["none"]) == 6
    assert attacks["top1"] == attacks["round1"] == [a for a in attacks["none"] if a[0] == "random"] != []
    assert {a[2] for a in attacks["none"]} == {"2000"} and len({a[4] for a in attacks["none"]}) == 6
    watermark = next(c for c in servers if "/watermark/" in c.done)
    assert watermark.flag("watermark_key") == "/x/defenses/watermark.key"
    assert all(c.flag("watermark_key") is None for c in servers if c is not watermark)
    checks = [c for c in result.calls if c.stage == "verify-ownership"]
    assert len(checks) == 6 and {c.flag("controls") for c in checks} == {"/x/runs/BL-VGG-PDD-OL/export"}
    assert all("--missing_evidence_ok" in c.args and c.flag("num_classes") == "10" for c in checks)
    assert {c.flag("evidence").rsplit("/", 1)[1] for c in checks} == {f"attacker-{h}-s{s}" for h in ("random", "adaptive")
                                                                       for s in (0, 1, 2)}
    runs = [c.flag("output") for c in result.calls if c.stage == "train" and "served-" in c.flag("output")]
    assert len(runs) == 4 * 6 + 2 * 3 and all("--class_balance=sqrt" in c.args for c in result.calls
                                   if c.stage == "train" and "served-" in str(c.flag("output")))
    assert len(result.defenses) == 6 and set(result.api_keys) == {"benign", *(f"attacker-{h}-s{s}" for h in
                                                                             ("random", "adaptive") for s in (0, 1, 2))}


@pytest.mark.parametrize("served", [{"top1": {"options": ["--top1"], "strategies": ["boundary"]}},
                                    {"top1": {"options": ["--top1"], "strategies": []}},
                                    {"top1": {"flags": ["--top1"]}}, {"top1": "--top1"}])
def test_a_defense_attacked_by_strategies_the_experiment_does_not_have_is_refused(served):
    config = load_config(CONFIG, small=False)
    config["defenses"] = {**config["defenses"], "served": served}
    with pytest.raises(CopycatError, match="served.top1"):
        plan(config, "/x")


def test_adaptive_attacks_need_the_class_count():
    config = load_config(CONFIG, small=False)
    config["defenses"] = {**config["defenses"], "num_classes": None}
    with pytest.raises(CopycatError, match="num_classes"):
        plan(config, "/x")


def test_keys_are_made_once_and_handed_to_the_clients_environment(tmp_path):
    result = plan(load_config(CONFIG, small=True), str(tmp_path))
    environ = {}
    prepare_keys(result, environ)
    lines = (tmp_path / "defenses" / "api_keys.txt").read_text().split()
    assert sorted(line.split(":")[0] for line in lines) == sorted(result.api_keys)
    assert {environ[v] for v in result.api_keys.values()} == {line.split(":")[1] for line in lines}
    key = (tmp_path / "defenses" / "watermark.key").read_text()
    again = {}
    prepare_keys(result, again)  # a resumed experiment keeps its keys
    assert again == environ and (tmp_path / "defenses" / "watermark.key").read_text() == key
    for secret in ("api_keys.txt", "watermark.key"):
        assert (tmp_path / "defenses" / secret).stat().st_mode & 0o077 == 0  # readable by the owner only


def test_a_background_step_runs_until_the_plan_ends(tmp_path):
    started, stopped, ran = [], [], []

    def start(call):
        started.append(call.done)
        return lambda: stopped.append(call.done)

    calls = [StageCall("serve", ("--model=m",), str(tmp_path / "ready"), background=True),
             StageCall("balance", ("--input=a",), str(tmp_path / "b"))]
    (tmp_path / "ready").write_text("stale")  # a background step runs even when its marker exists
    execute(calls, run=lambda call: ran.append(call.done) or "", start=start)
    assert started == [str(tmp_path / "ready")] and ran == [str(tmp_path / "b")] and stopped == started
    with pytest.raises(RuntimeError):
        execute(calls, run=lambda call: (_ for _ in ()).throw(RuntimeError("boom")), start=start)
    assert len(stopped) == 2  # stopped when a later step fails too


def test_the_detection_is_read_per_key_from_the_query_log():
    log = [{"key": "a", "defenses": []}, {"key": "b", "defenses": []}, {"key": "a", "defenses": ["prada:flagged"]},
           {"key": "a", "defenses": ["watermark", "prada:flagged"]}, {"key": "b", "defenses": ["watermark"]}]
    assert flagged_at(log) == {"a": {"queries": 3, "flagged_at": 2}, "b": {"queries": 2, "flagged_at": None}}
    # the detector's own count, whatever order concurrent requests reached the log in
    log = [{"key": "a", "defenses": []}, {"key": "a", "defenses": ["prada:flagged@4"]},
           {"key": "a", "defenses": ["prada:flagged@3"]}, {"key": "a", "defenses": []}]
    assert flagged_at(log) == {"a": {"queries": 4, "flagged_at": 3}}


def test_the_honest_users_macro_f1_matches_sklearn(tmp_path):
    from sklearn.metrics import f1_score

    truth, served = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    for folder, labels in (("tdd", truth), ("answers", served)):
        records = [labeled_record(i, label, kind="OL") for i, label in enumerate(labels)]
        write_shards(str(tmp_path / folder), LABELED_IMAGE, records, num_shards=1)
        write_manifest(str(tmp_path / folder), Manifest(stage="prepare_problem", record_kind="labeled_image",
                                                        counts={"kept": len(records)}))
    assert honest_macro_f1(str(tmp_path / "tdd"), str(tmp_path / "answers")) == pytest.approx(
        f1_score(truth, served, average="macro"))


def _row(defense, strategy, options, performance, flagged_at=(None, None)):
    return {"defense": defense, "options": options, "strategy": strategy, "seeds": [0, 1],
            "copy_performance": {"mean": performance, "std": 0.02, "values": [performance] * 2},
            "agreement": {"mean": 0.5, "std": 0.0, "values": [0.5, 0.5]}, "honest_macro_f1": 0.97,
            "target_macro_f1": 0.98, "detector": "--prada_delta=0.9" in options, "benign_flagged_at": None,
            "benign_queries": 540, "attackers_flagged": sum(f is not None for f in flagged_at),
            "flagged_at": list(flagged_at)}


def test_the_table_reports_detection_only_where_a_detector_runs_and_the_figure_skips_missing_attacks(tmp_path):
    from copycat_tf.defenses_plan import figure, table

    rows = [_row("none", "random", [], 0.5), _row("none", "adaptive", [], 0.6),
            _row("prada", "random", ["--prada_delta=0.9"], 0.5, (None, 120)),
            _row("top1", "random", ["--top1"], 0.5)]  # a control attacked by random only
    lines = table(rows)
    assert lines[0][5:7] == ["attackers flagged (at query)", "benign client flagged"]
    assert [line[5:7] for line in lines[1:]] == [["–", "–"], ["–", "–"], ["1 of 2 (120)", "no"], ["–", "–"]]
    assert lines[3][2] == "50.0 ± 2.0" and lines[1][4] == "0.970 (bare 0.980)"
    assert figure(rows, str(tmp_path / "defenses.png")) and (tmp_path / "defenses.png").stat().st_size > 0
    assert not figure([], str(tmp_path / "none.png"))
