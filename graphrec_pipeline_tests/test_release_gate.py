"""The release gate: a run whose model is worse than popularity or than the live release
does not go live, says why, and a deliberate override goes through and is recorded."""

import json
import shutil

import pytest

from graphrec_pipeline.cli import main
from graphrec_pipeline.release_gate import GateSettings, gate_problems
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline_tests.conftest import materialize, tiny_run_config

SERVED = {"served_place_ndcg20": 0.06, "served_people_recall10": 0.5}
POPULARITY = {"served_place_ndcg20": 0.02, "served_people_recall10": 0.1}


def test_a_model_above_popularity_and_the_live_release_passes():
    live = {"served_place_ndcg20": 0.062, "served_people_recall10": 0.5}
    assert gate_problems(SERVED, POPULARITY, live, GateSettings()) == []


@pytest.mark.parametrize("settings, live, names", [
    (GateSettings(min_lift_over_popularity=4.0), None, ["served_place_ndcg20"]),  # 0.06 < 4 x 0.02
    (GateSettings(), {"served_place_ndcg20": 0.08, "served_people_recall10": 0.5}, ["served_place_ndcg20"]),
    (GateSettings(max_drop_vs_live=0.3), {"served_place_ndcg20": 0.08, "served_people_recall10": 0.9},
     ["served_people_recall10"]),
])
def test_each_broken_rule_names_the_metric_both_values_and_the_setting(settings, live, names):
    problems = gate_problems(SERVED, POPULARITY, live, settings)
    assert [p.split(" ")[0] for p in problems] == names
    assert all("setting" in p for p in problems)
    assert "0.0600" in problems[0] or "0.5000" in problems[0]


def test_a_metric_the_evaluation_lacks_is_not_judged():
    """A log without social data has no people metrics: only the place one is judged."""
    assert gate_problems({"served_place_ndcg20": 0.06}, POPULARITY, None, GateSettings()) == []


def _gate(min_lift: float, override: bool = False) -> dict:
    run = tiny_run_config(42)
    run["ops"] = {**run["ops"], "eval_metrics_release_gate": {
        "config": {"min_lift_over_popularity": min_lift, "max_drop_vs_live": 1.0, "override": override}}}
    return run


@pytest.mark.slow  # two more pipeline runs
def test_a_refused_run_keeps_the_live_release_and_is_listed_with_its_reasons(tiny_release, tmp_path, capsys):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_release, data_dir, symlinks=True)
    data = DataDir(data_dir)
    live = data.live_id()

    refused = materialize(data_dir, _gate(1000.0), raise_on_error=False)
    assert not refused.success
    gate = [e for e in refused.get_asset_check_evaluations() if e.check_name == "release_gate"]
    assert len(gate) == 1 and not gate[0].passed
    assert data.live_id() == live
    assert main(["releases", "--json", "--data-dir", str(data_dir)]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["release"] == refused.run_id]
    assert len(mine) == 1 and not mine[0]["live"]
    assert "min_lift_over_popularity" in mine[0]["refused"][0]

    passed = materialize(data_dir, _gate(1000.0, override=True))
    assert passed.success and data.live_id() == passed.run_id
    manifest = data.manifest(passed.run_id)
    assert manifest["gate_overridden"] and "min_lift_over_popularity" in manifest["gate_problems"][0]
