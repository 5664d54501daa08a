"""The runtime policy: from the device's state to the compression ratio k and the exit threshold.

The rules live in the bundle manifest (`manifest["policy"]`), never in code, and this file is the
reference that the Kotlin and Swift ports follow; `tests/vectors/policy.json` holds the cases all
three must pass. A policy table:

    {"battery_margin": 0.05,                       # hysteresis, see below
     "rules": [                                   # first match wins; the last rule has an empty "when"
        {"name": "critical", "when": {"thermal_at_least": "critical"}, "ratio": 8, "threshold": "drop_2"},
        {"name": "battery_low", "when": {"battery_below": 0.2, "charging": false}, "ratio": 4,
         "threshold": "drop_2"},
        {"name": "default", "when": {}, "ratio": 1, "threshold": "drop_1"}],
     "latency_ms": {"16": {"1": 2.1, "2": 2.4, ...},   # every layer at each ratio, per profiled
                    "256": {"1": 41.0, "2": 35.5, ...}}}  # padded length, on the target device; or null

A rule's conditions all hold or it does not match: `thermal_at_least` (state at or above this one
in nominal < fair < serious < critical), `battery_below`, `charging`, `low_power`. `threshold`
names one of the bundle's calibrated exit thresholds (`manifest["exits"]["thresholds"]`), or is
null: no early exit, every layer runs.

Hysteresis: a rule that matched last time keeps matching until the battery is at least
`battery_below + battery_margin`, so a battery hovering at 20% does not switch the ratio on every
call; a rule that is not active needs the battery strictly below `battery_below` to take over.

With `latency_ms`, the decision also knows the text's padded length (`decide(state, length)`; no
length: the longest profiled). It reads the row of the shortest profiled length at or above it (the
longest when it is past them all), and:
- length: a rule's ratio is lowered to the fastest ratio at that length of those no larger than it
  (ties to the less compressed), so compression is used only where it is faster than k = 1 there:
  on short texts the merge and restore cost more than the FFN they save;
- budget: a latency budget (ms) then raises the ratio to the least compressed one (at least that)
  whose latency fits, or the fastest of those when none fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

THERMAL_STATES = ("nominal", "fair", "serious", "critical")  # iOS ProcessInfo.ThermalState names
# Android PowerManager.THERMAL_STATUS_* (0..6) onto the four states: LIGHT and MODERATE throttle
# little (fair), SEVERE is where Android asks apps to cut work (serious), above that is critical.
ANDROID_THERMAL = {0: "nominal", 1: "fair", 2: "fair", 3: "serious",
                   4: "critical", 5: "critical", 6: "critical"}
ANDROID_THERMAL_NAMES = ("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN")
CONDITIONS = ("thermal_at_least", "battery_below", "charging", "low_power")
DEFAULT_BATTERY_MARGIN = 0.05


class PolicyError(ValueError):
    """A policy table that cannot be used with this bundle."""


class DeviceStateError(ValueError):
    """A call the policy cannot decide on: NaN or out-of-range battery, unknown thermal state, a
    text length below 1."""


@dataclass(frozen=True)
class DeviceState:
    battery: float  # 0..1
    charging: bool = False
    low_power: bool = False
    thermal: str = "nominal"
    budget_ms: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.battery, bool) or not isinstance(self.battery, int | float):
            raise DeviceStateError(f"battery must be a number from 0 to 1, not {self.battery!r}")
        if math.isnan(self.battery) or not 0.0 <= self.battery <= 1.0:
            raise DeviceStateError(f"battery must be from 0 to 1 (a fraction, not a percentage), "
                                   f"not {self.battery}")
        if self.thermal not in THERMAL_STATES:
            raise DeviceStateError(f"unknown thermal state {self.thermal!r}; use one of {THERMAL_STATES} "
                                   "(thermal_from_android maps Android's THERMAL_STATUS_* levels)")
        for flag in ("charging", "low_power"):
            if not isinstance(getattr(self, flag), bool):
                raise DeviceStateError(f"{flag} must be true or false, not {getattr(self, flag)!r}")
        if self.budget_ms is not None and (isinstance(self.budget_ms, bool) or not isinstance(
                self.budget_ms, int | float) or math.isnan(self.budget_ms) or self.budget_ms <= 0):
            raise DeviceStateError(f"budget_ms must be a positive number of milliseconds or None, "
                                   f"not {self.budget_ms!r}")


def thermal_from_android(status: int) -> str:
    """Android's PowerManager.getCurrentThermalStatus() (0..6) -> nominal/fair/serious/critical."""
    if isinstance(status, bool) or not isinstance(status, int) or status not in ANDROID_THERMAL:
        raise DeviceStateError(f"Android thermal status must be 0..6 (THERMAL_STATUS_NONE..SHUTDOWN), "
                               f"not {status!r}")
    return ANDROID_THERMAL[status]


@dataclass(frozen=True)
class Decision:
    ratio: int
    threshold: float | None  # None: no early exit, every layer runs
    threshold_name: str | None
    rule: str  # the rule that matched
    budget_applied: bool  # the latency budget raised the ratio above the rule's
    length_applied: bool = False  # at this length a smaller ratio than the rule's is as fast or faster


def check_policy(table: Mapping, ratios: Sequence[int], thresholds: Mapping[str, float]) -> None:
    """Raise PolicyError unless every rule can be carried out by a bundle with these ratios and thresholds."""
    rules = table.get("rules") if isinstance(table, Mapping) else None
    if not rules or not isinstance(rules, list):
        raise PolicyError("the policy table needs a non-empty list of rules")
    margin = table.get("battery_margin", DEFAULT_BATTERY_MARGIN)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 1:
        raise PolicyError(f"battery_margin must be from 0 to 1, not {margin!r}")
    names = set()
    for rule in rules:
        if not isinstance(rule, Mapping) or not isinstance(rule.get("when", {}), Mapping):
            raise PolicyError(f"every rule is an object with a 'when' object, not {rule!r}")
        name = rule.get("name")
        if not isinstance(name, str) or name in names:
            raise PolicyError(f"every rule needs a unique name; {name!r} is missing or repeated")
        names.add(name)
        if isinstance(rule.get("ratio"), bool) or rule.get("ratio") not in ratios:  # True == 1 in Python
            raise PolicyError(f"rule {name!r} asks for ratio {rule.get('ratio')!r}, but the bundle has "
                              f"only {sorted(ratios)}")
        threshold = rule.get("threshold")
        if threshold is not None and threshold not in thresholds:
            raise PolicyError(f"rule {name!r} names exit threshold {threshold!r}, but the bundle has "
                              f"{sorted(thresholds) or 'none'}")
        when = rule.get("when", {})
        unknown = set(when) - set(CONDITIONS)
        if unknown:
            raise PolicyError(f"rule {name!r} has unknown conditions {sorted(unknown)}; known: {CONDITIONS}")
        if "thermal_at_least" in when and when["thermal_at_least"] not in THERMAL_STATES:
            raise PolicyError(f"rule {name!r}: thermal_at_least must be one of {THERMAL_STATES}")
        below = when.get("battery_below")
        if "battery_below" in when and (isinstance(below, bool) or not isinstance(below, int | float)
                                        or not 0 < below <= 1):
            raise PolicyError(f"rule {name!r}: battery_below must be a number in (0, 1]")
        for flag in ("charging", "low_power"):
            if flag in when and not isinstance(when[flag], bool):
                raise PolicyError(f"rule {name!r}: {flag} must be true or false, not {when[flag]!r}")
    if rules[-1].get("when"):
        raise PolicyError(f"the last rule ({rules[-1]['name']!r}) must have no conditions, so that "
                          "every state gets a decision")
    check_latency(table.get("latency_ms"), ratios)


def check_latency(latency: object, ratios: Sequence[int]) -> None:
    """Raise PolicyError unless `latency` is null or maps each profiled length to every ratio's ms."""
    if latency is None:
        return
    shape = 'map each padded length to every ratio\'s ms, {"256": {"1": 40.0, "2": 34.0}}'
    if not isinstance(latency, Mapping) or not latency:
        raise PolicyError(f"latency_ms must {shape}, not {latency!r}")
    for length, row in latency.items():
        if not isinstance(row, Mapping):
            raise PolicyError(f"latency_ms must {shape}; {length!r} maps to {row!r} (a table of an "
                              "older edge-variator, which had one length: calibrate again)")
        if not (isinstance(length, str) and length.isdigit() and int(length) > 0):
            raise PolicyError(f"latency_ms lengths must be positive whole numbers, not {length!r}")
        missing = [k for k in ratios if str(k) not in row]
        if missing:
            raise PolicyError(f"latency_ms at {length} tokens lacks ratios {missing}")
        for ratio, ms in row.items():
            if isinstance(ms, bool) or not isinstance(ms, int | float) or not ms >= 0 or math.isinf(ms):
                raise PolicyError(f"latency_ms at {length} tokens, ratio {ratio}: a number of ms, not {ms!r}")


def latency_row(latency: Mapping, length: int | None) -> dict[int, float]:
    """Ratio -> ms at the shortest profiled length at or above `length` (the longest past them all,
    or when no length is given)."""
    lengths = sorted(int(n) for n in latency)
    at = next((n for n in lengths if length is not None and n >= length), lengths[-1])
    return {int(k): float(ms) for k, ms in latency[str(at)].items()}


def _matches(when: Mapping, state: DeviceState, active: bool, margin: float) -> bool:
    if "thermal_at_least" in when and (
            THERMAL_STATES.index(state.thermal) < THERMAL_STATES.index(when["thermal_at_least"])):
        return False
    if "charging" in when and state.charging != when["charging"]:
        return False
    if "low_power" in when and state.low_power != when["low_power"]:
        return False
    if "battery_below" in when:
        limit = when["battery_below"] + (margin if active else 0.0)
        if not state.battery < limit:
            return False
    return True


def check_length(length: int | None) -> None:
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        raise DeviceStateError(f"the text's length must be a whole number of tokens from 1, not {length!r}")


def decide(table: Mapping, thresholds: Mapping[str, float], state: DeviceState,
           active_rule: str | None = None, length: int | None = None) -> Decision:
    """The decision for one state and a text of `length` padded tokens (None: not known);
    `active_rule` is the rule that matched the previous call (hysteresis)."""
    check_length(length)
    margin = table.get("battery_margin", DEFAULT_BATTERY_MARGIN)
    rule = next(r for r in table["rules"]
                if _matches(r.get("when", {}), state, r["name"] == active_rule, margin))
    ratio, budget_applied, length_applied = rule["ratio"], False, False
    if table.get("latency_ms"):
        row = latency_row(table["latency_ms"], length)

        def fastest(ratios: list[int]) -> int:
            return min(ratios, key=lambda k: (row[k], k))

        ratio = fastest([k for k in row if k <= rule["ratio"]])
        length_applied = ratio != rule["ratio"]
        if state.budget_ms is not None:
            larger = sorted(k for k in row if k >= ratio)
            raised = next((k for k in larger if row[k] <= state.budget_ms), fastest(larger))
            ratio, budget_applied = raised, raised != ratio
    name = rule.get("threshold")
    threshold = None if name is None else float(thresholds[name])
    return Decision(ratio, threshold, name, rule["name"], budget_applied, length_applied)


class Policy:
    """The stateful policy an app holds: remembers the active rule so the ratio does not flap."""

    def __init__(self, table: Mapping, ratios: Sequence[int], thresholds: Mapping[str, float]):
        check_policy(table, ratios, thresholds)
        if table.get("latency_ms"):  # only the bundle's ratios take part
            latency = {n: {k: ms for k, ms in row.items() if int(k) in ratios}
                       for n, row in table["latency_ms"].items()}
            table = {**table, "latency_ms": latency}
        self.table, self.thresholds, self.active_rule = table, dict(thresholds), None

    @classmethod
    def from_manifest(cls, manifest: Mapping, table: Mapping | None = None) -> Policy:
        """The manifest's table (written at export), or `table` (a calibrated policy's) in its place."""
        table = table or manifest.get("policy")
        if not table:
            raise PolicyError("the manifest has no policy table: export the bundle again")
        return cls(table, sorted(int(k) for k in manifest["ratios"]), manifest["exits"]["thresholds"])

    def decide(self, state: DeviceState, length: int | None = None) -> Decision:
        decision = decide(self.table, self.thresholds, state, self.active_rule, length)
        self.active_rule = decision.rule
        return decision


def default_policy(ratios: Sequence[int], thresholds: Mapping[str, float]) -> dict:
    """The table export writes into every manifest (the one copy of this rule: the apps read it
    from there and have none of their own): the hotter the phone and the emptier the battery, the
    stronger the compression and the earlier the exit. Each level asks for k = 1, 2, 4, 8 and gets
    the largest ratio the bundle has that is no larger."""
    def ratio(wanted: int) -> int:
        return max(k for k in ratios if k <= wanted)

    by_value = sorted(thresholds, key=lambda name: (thresholds[name], name))
    careful = by_value[0] if by_value else None  # the lowest threshold: the smallest accuracy drop
    eager = by_value[-1] if by_value else None
    rules = [
        ("critical", {"thermal_at_least": "critical"}, 8, eager),
        ("low_power", {"low_power": True}, 8, eager),
        ("serious", {"thermal_at_least": "serious"}, 4, eager),
        ("battery_low", {"battery_below": 0.2, "charging": False}, 4, eager),
        ("fair", {"thermal_at_least": "fair"}, 2, careful),
        ("battery_half", {"battery_below": 0.5, "charging": False}, 2, careful),
        ("default", {}, 1, careful),
    ]
    return {"battery_margin": DEFAULT_BATTERY_MARGIN, "latency_ms": None,
            "rules": [{"name": name, "when": when, "ratio": ratio(k), "threshold": threshold}
                      for name, when, k, threshold in rules]}


def calibrate(table: Mapping, latency_ms: Mapping[str, Mapping[str, float]], budgets: Mapping[str, float],
              length: int) -> dict:
    """The table with each budgeted rule's ratio set from a device's latency at `length` tokens: the
    least compressed ratio whose every-layer run fits the rule's budget (ms), the fastest when none does.

    `latency_ms` (padded length -> ratio -> ms, from profile.latency_table) is kept in the table, so
    that at run time the ratio follows the text's length and an app's budget is checked against the
    same device's numbers.
    """
    names = [rule["name"] for rule in table["rules"]]
    unknown = sorted(set(budgets) - set(names))
    if unknown:
        raise PolicyError(f"budgets name rules the table lacks: {unknown}; its rules: {names}")
    for name, budget in budgets.items():
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
            raise PolicyError(f"the budget of {name!r} must be a positive number of ms, not {budget!r}")
    if str(length) not in latency_ms:
        raise PolicyError(f"no latency at {length} tokens; profiled: {sorted(map(int, latency_ms))}")
    row = {int(k): float(ms) for k, ms in latency_ms[str(length)].items()}

    def fitting(budget: float) -> int:
        return next((k for k in sorted(row) if row[k] <= budget), min(row, key=lambda k: (row[k], k)))

    rules = [{**rule, "ratio": fitting(budgets[rule["name"]])} if rule["name"] in budgets else dict(rule)
             for rule in table["rules"]]
    latency = {n: {k: float(ms) for k, ms in per_ratio.items()} for n, per_ratio in latency_ms.items()}
    return {**table, "rules": rules, "latency_ms": latency}
