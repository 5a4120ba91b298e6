"""CloudWatch Embedded Metric Format lines (RULEAUTH_METRICS): metrics without an AWS SDK call.

Lambda ships every stdout line to CloudWatch Logs, which extracts EMF lines into
metrics. Each dimension value is a separately billed custom metric, so the
per-rule dimension is opt-in (`RULEAUTH_METRICS=rule`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ruleauth.rules.settings import METRICS_OFF as OFF
from ruleauth.rules.settings import METRICS_PER_RULE as PER_RULE
from ruleauth.runtime.decision import Decision

NAMESPACE = "ruleauth"
# The empty dimension set also publishes each metric with no dimension, and decisions are also
# counted by outcome alone: the totals the stack's alarms and dashboard read (docs/logging.md
# "Embedded Metric Format"), without one alarm per reason or provider. Keep template.yaml's
# alarms and dashboard in step (tests/test_alarms.py).
TOTAL: list[str] = []


@dataclass
class Metrics:
    mode: str = OFF
    stream: TextIO | None = None
    _fetches: dict[str, tuple[int, int]] = field(default_factory=dict)
    _introspections: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.mode != OFF

    def decision(self, decision: Decision, latency_ms: float) -> None:
        if not self.enabled:
            return
        dimensions = [["Outcome", "Reason"], ["Outcome"], TOTAL]
        values: dict[str, Any] = {"Outcome": decision.outcome, "Reason": decision.reason}
        if self.mode == PER_RULE:
            dimensions.append(["Rule", "Outcome"])
            values["Rule"] = decision.rule or "(none)"
        self._emit(
            dimensions, [("Decisions", "Count", 1), ("DecisionLatency", "Milliseconds", round(latency_ms, 3))], values
        )
        for shadow in decision.shadows:
            shadow_dims = [["ShadowOutcome", "AgreesWithEnforced"]]
            shadow_values: dict[str, Any] = {
                "ShadowOutcome": shadow.decision,
                "AgreesWithEnforced": str(shadow.decision == decision.outcome).lower(),
            }
            if self.mode == PER_RULE:
                shadow_dims.append(["ShadowRule", "ShadowOutcome"])
                shadow_values["ShadowRule"] = shadow.rule
            self._emit(shadow_dims, [("ShadowDecisions", "Count", 1)], shadow_values)

    def cold_start(self, load_ms: float) -> None:
        """One cold start, and how long settings and rules took to load."""
        if self.enabled:
            self._emit(
                [TOTAL], [("ColdStarts", "Count", 1), ("ColdStartLoadTime", "Milliseconds", round(load_ms, 1))], {}
            )

    def key_fetches(self, stats: Mapping[str, tuple[int, int]]) -> None:
        """Counts JWKS fetches and failures since the last call, per provider."""
        if not self.enabled:
            return
        for provider, (attempts, failures) in stats.items():
            seen_attempts, seen_failures = self._fetches.get(provider, (0, 0))
            new_attempts, new_failures = attempts - seen_attempts, failures - seen_failures
            if new_attempts or new_failures:
                self._emit(
                    [["Provider"], TOTAL],
                    [("JwksFetches", "Count", new_attempts), ("JwksFetchFailures", "Count", new_failures)],
                    {"Provider": provider},
                )
            self._fetches[provider] = (attempts, failures)

    def introspections(self, stats: Mapping[str, tuple[int, int, int, int]]) -> None:
        """Counts introspection requests, their failures and the answer cache's hits and misses
        since the last call, per provider."""
        if not self.enabled:
            return
        names = ("IntrospectionRequests", "IntrospectionFailures", "IntrospectionCacheHits", "IntrospectionCacheMisses")
        for provider, counts in stats.items():
            seen = self._introspections.get(provider, (0, 0, 0, 0))
            new = [now - before for now, before in zip(counts, seen, strict=True)]
            if any(new):
                self._emit(
                    [["Provider"]], [(n, "Count", v) for n, v in zip(names, new, strict=True)], {"Provider": provider}
                )
            self._introspections[provider] = counts

    def _emit(
        self, dimensions: list[list[str]], metrics: list[tuple[str, str, float]], values: Mapping[str, Any]
    ) -> None:
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": dimensions,
                        "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
                    }
                ],
            },
            **values,
            **{name: value for name, _, value in metrics},
        }
        out = self.stream or sys.stdout
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()
