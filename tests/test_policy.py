import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_variator.runtime.policy import (
    THERMAL_STATES,
    DeviceState,
    DeviceStateError,
    Policy,
    PolicyError,
    check_policy,
    default_policy,
    thermal_from_android,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "policy.json").read_text())


def number(value):
    return float(value) if isinstance(value, str) else value  # "NaN" / "Infinity": JSON has no such numbers


def state(fields: dict) -> DeviceState:
    return DeviceState(battery=number(fields["battery"]), charging=fields["charging"],
                       low_power=fields["low_power"], thermal=fields["thermal"],
                       budget_ms=number(fields.get("budget_ms")))


def test_the_vectors_cover_at_least_fifty_steps_with_hysteresis_sequences():
    assert sum(len(case["steps"]) for case in VECTORS["cases"]) >= 50
    assert sum(len(case["steps"]) > 2 for case in VECTORS["cases"]) >= 5


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["name"])
def test_shared_vector(case):
    policy = Policy(VECTORS["tables"][case["table"]], case.get("ratios", VECTORS["ratios"]),
                    case.get("thresholds", VECTORS["thresholds"]))
    for step in case["steps"]:
        expect = step["expect"]
        if "error" in expect:
            with pytest.raises(DeviceStateError):
                policy.decide(state(step["state"]), step.get("length"))
            continue
        decision = policy.decide(state(step["state"]), step.get("length"))
        got = {"ratio": decision.ratio, "rule": decision.rule, "threshold_name": decision.threshold_name,
               "threshold": decision.threshold}
        assert got == expect, step["state"]


@pytest.mark.parametrize("row", VECTORS["android_thermal"], ids=lambda row: str(row["status"]))
def test_android_thermal_mapping(row):
    if "error" in row:
        with pytest.raises(DeviceStateError, match="0..6"):
            thermal_from_android(row["status"])
    else:
        assert thermal_from_android(row["status"]) == row["thermal"]


@pytest.mark.parametrize("bad", VECTORS["bad_tables"], ids=lambda bad: bad["name"])
def test_bad_tables_are_refused(bad):
    with pytest.raises(PolicyError):
        check_policy(bad["table"], bad["ratios"], VECTORS["thresholds"])


def test_default_policy_is_the_vectors_full_table():
    spec = VECTORS["default_policy_of"]
    assert default_policy(spec["ratios"], spec["thresholds"]) == VECTORS["tables"][spec["table"]]


def test_default_policy_only_uses_ratios_the_bundle_has():
    table = default_policy([1, 4], {})
    assert {rule["ratio"] for rule in table["rules"]} == {1, 4}
    assert all(rule["threshold"] is None for rule in table["rules"])
    check_policy(table, [1, 4], {})


def test_a_manifest_without_a_table_is_refused_and_a_calibrated_table_replaces_the_manifests():
    manifest = {"ratios": {"1": [], "2": []}, "exits": {"thresholds": {"drop_1": 0.5}}, "policy": None}
    with pytest.raises(PolicyError, match="no policy table: export the bundle again"):
        Policy.from_manifest(manifest)
    manifest["policy"] = default_policy([1, 2], {"drop_1": 0.5})
    policy = Policy.from_manifest(manifest)
    assert policy.decide(DeviceState(battery=0.1)).ratio == 2
    assert policy.decide(DeviceState(battery=1.0, thermal="critical")).threshold == 0.5
    calibrated = {**manifest["policy"],
                  "rules": [{"name": "always", "when": {}, "ratio": 2, "threshold": None}]}
    assert Policy.from_manifest(manifest, calibrated).decide(DeviceState(battery=1.0)).rule == "always"


def test_a_length_aware_table_uses_a_ratio_only_where_it_is_faster_than_k1():
    table = {**default_policy([1, 2, 4], {"drop_1": 0.5}),
             "latency_ms": {"16": {"1": 2.0, "2": 2.5, "4": 2.7, "8": 3.0},
                            "256": {"1": 40.0, "2": 34.0, "4": 30.0, "8": 27.0}}}
    policy = Policy(table, [1, 2, 4], {"drop_1": 0.5})  # a profile of a bigger bundle: k=8 is dropped
    assert set(policy.table["latency_ms"]["16"]) == {"1", "2", "4"}
    short, long = (policy.decide(DeviceState(battery=0.1), n) for n in (16, 256))
    assert (short.ratio, short.length_applied, long.ratio, long.length_applied) == (1, True, 4, False)
    with pytest.raises(DeviceStateError, match="length"):
        policy.decide(DeviceState(battery=0.1), 0)
    with pytest.raises(DeviceStateError, match="length"):
        policy.decide(DeviceState(battery=0.1), 16.0)
    with pytest.raises(PolicyError, match="older edge-variator"):
        Policy({**table, "latency_ms": {"1": 40.0, "2": 34.0, "4": 30.0}}, [1, 2, 4], {"drop_1": 0.5})


def test_bad_device_states_name_the_problem():
    with pytest.raises(DeviceStateError, match="battery"):
        DeviceState(battery=math.nan)
    with pytest.raises(DeviceStateError, match="percentage"):
        DeviceState(battery=80)
    with pytest.raises(DeviceStateError, match="thermal"):
        DeviceState(battery=0.5, thermal="warm")
    with pytest.raises(DeviceStateError, match="charging"):
        DeviceState(battery=0.5, charging="yes")
    with pytest.raises(DeviceStateError, match="battery"):
        DeviceState(battery=None)


ratio_sets = st.sets(st.sampled_from([2, 4, 8])).map(lambda extra: sorted({1, *extra}))
threshold_sets = st.dictionaries(st.sampled_from(["drop_0.5", "drop_1", "drop_2"]),
                                 st.floats(0.01, 2.0), max_size=3)
states = st.builds(DeviceState, battery=st.floats(0.0, 1.0), charging=st.booleans(), low_power=st.booleans(),
                   thermal=st.sampled_from(THERMAL_STATES),
                   budget_ms=st.none() | st.floats(0.1, 200.0))
latencies = st.lists(st.floats(1.0, 100.0), min_size=4, max_size=4)


@settings(max_examples=300, deadline=None)
@given(ratio_sets, threshold_sets, st.lists(states, min_size=1, max_size=20), latencies, st.booleans())
def test_fuzzed_policy_never_returns_a_ratio_the_bundle_lacks(ratios, thresholds, sequence, latency,
                                                               profiled):
    table = default_policy(ratios, thresholds)
    if profiled:  # a profile of a bigger bundle: ratios this one lacks must still never come out
        short = {str(k): ms for k, ms in zip((1, 2, 4, 8), sorted(latency), strict=True)}
        long = {str(k): ms for k, ms in zip((1, 2, 4, 8), sorted(latency, reverse=True), strict=True)}
        table["latency_ms"] = {"16": short, "256": long}
    policy = Policy(table, ratios, thresholds)
    for index, device in enumerate(sequence):
        decision = policy.decide(device, [None, 16, 100, 300][index % 4])
        assert decision.ratio in ratios
        wanted = next(r["ratio"] for r in table["rules"] if r["name"] == decision.rule)
        if profiled and device.budget_ms is None:  # the length alone never compresses more than the rule
            assert decision.ratio <= wanted
        assert decision.threshold is None or decision.threshold in thresholds.values()
