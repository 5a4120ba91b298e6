"""The measuring child of bench/run.py: one fresh interpreter per measurement.

    worker.py cold {empty|baseline|ruleauth}   import time and peak RSS of a cold start
    worker.py warm SPEC.json                   per-request decision times in one process
    worker.py load RULES                       does this rules file load? (and how long)
    worker.py interleaved SPEC.json            the baseline and ruleauth cases in turn, request by request
    worker.py profile SPEC.json                cProfile of a warm case, top functions
    worker.py worst SPEC.json                  the longest legal ARN against the deepest legal table

Every mode prints one JSON object on stdout. Nothing here asserts: run.py reports.
Configuration comes from the environment run.py sets (RULEAUTH_RULES, BASELINE_*).
"""

# Cold mode imports nothing heavy before the measured import: only what the
# interpreter has loaded anyway (sys, os, time) and `resource`.
import os
import sys
import time


def cold(target: str) -> None:
    import resource

    started, cpu_started = time.perf_counter(), time.process_time()
    if target == "baseline":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import baseline_authorizer  # noqa: F401
    elif target == "ruleauth":
        import ruleauth.handler  # noqa: F401  (loads and compiles RULEAUTH_RULES at import)
    elif target != "empty":
        raise SystemExit(f"unknown cold target {target!r}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rss_kb = peak_rss_kb()
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import json

    # cpu_s: the process's own CPU time, which waiting for a core on a shared machine leaves out.
    print(
        json.dumps(
            {
                "import_s": elapsed,
                "cpu_s": cpu,
                "rss_kb": rss_kb,
                "ru_maxrss_kb": maxrss_kb,
                "modules": len(sys.modules),
            }
        )
    )


def peak_rss_kb() -> int:
    """This process image's peak RSS: VmHWM, else ru_maxrss.

    On Linux ru_maxrss also holds the peak of the image exec replaced (the kernel folds the
    launching process's high-water mark into it at exec), so a child smaller than its
    launcher would report the launcher's size; VmHWM belongs to the new image alone.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------- warm


def _percentile(sorted_values, fraction):
    import math

    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _summary(samples_ns, capped):
    import statistics

    values = sorted(samples_ns)
    return {
        "n": len(values),
        "capped": capped,
        "p50_us": statistics.median(values) / 1000 if values else float("nan"),
        "p99_us": _percentile(values, 0.99) / 1000,
        "mean_us": statistics.fmean(values) / 1000 if values else float("nan"),
        "min_us": values[0] / 1000 if values else float("nan"),
    }


def _events(spec, tokens):
    """REST REQUEST events, one per token, cycling over the spec's request paths."""
    from ruleauth.model import REST_REQUEST
    from ruleauth.tools.synthetic_events import build_event

    paths = spec["paths"]
    if spec.get("header_values"):
        values = spec["header_values"]
        return [
            build_event(REST_REQUEST, "GET", paths[i % len(paths)], headers={"Authorization": values[i % len(values)]})
            for i in range(len(tokens) if tokens else 1)
        ]
    return [
        build_event(REST_REQUEST, "GET", paths[i % len(paths)], headers={"Authorization": f"Bearer {token}"})
        for i, token in enumerate(tokens)
    ]


def _decider(spec):
    """(decide(event) -> response or raises, describe(event) -> dict) for the spec's side."""
    if spec["side"] == "baseline":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import baseline_authorizer as baseline

        def describe(event):
            import json

            response = baseline.authorize(event)
            return {
                "outcome": "allow",
                "response_bytes": len(json.dumps(response, separators=(",", ":"))),
                "resources": 1,
                "warnings": [],
            }

        return baseline.authorize, describe

    from ruleauth.runtime.authorizer import Authorizer

    authorizer = Authorizer.load(spec["rules"], environ={})

    def decide(event):
        return authorizer.authorize(event)

    def describe(event):
        import json

        result = authorizer.authorize(event)
        response = result.response or {}
        resources = 0
        for statement in (response.get("policyDocument") or {}).get("Statement", []):
            resource = statement.get("Resource")
            resources += len(resource) if isinstance(resource, list) else 1
        return {
            "outcome": result.decision.outcome,
            "reason": result.decision.reason,
            "gateway": result.gateway_outcome,
            "response_bytes": len(json.dumps(response, separators=(",", ":"))) if response else 0,
            "statements": len((response.get("policyDocument") or {}).get("Statement", [])),
            "resources": resources,
            "warnings": list(result.decision.warnings),
            "internal_error": result.internal_error,
        }

    return decide, describe


def _lines(path):
    """The non-empty lines of a tokens file, or [] without one."""
    if not path:
        return []
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def _outcome_of(spec, result):
    if spec["side"] == "baseline":
        return "allow"
    return result.decision.outcome


def _pool(spec: dict, variant: str, count: int) -> list:
    """The credentials for `count` requests. "same": one token repeated (or no credential);
    "fresh": a new token of the same user each time; "callers": a new caller each time (own
    sub and groups, so the rules' inputs differ)."""
    tokens = _lines(spec.get("tokens_file"))
    if variant == "same":
        return tokens[:1] * count if tokens else [None] * count
    pool = (tokens if variant == "fresh" else _lines(spec.get("callers_file")))[:count]
    if len(pool) < count:
        raise SystemExit(f"need {count} tokens, have {len(pool)}")
    return pool


def warm(spec_path: str) -> None:
    import json

    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    decide, describe = _decider(spec)
    out: dict = {"variants": {}}
    for variant in spec["variants"]:
        n, warmup, budget = spec["n"], spec["warmup"], spec["budget_s"]
        events = _events(spec, _pool(spec, variant, n + warmup))
        sample = describe(events[0])
        outcomes: dict[str, int] = {}
        # Warm-up: `warmup` requests, but at most a twentieth of the time budget (at least 3).
        warm_until = time.perf_counter() + budget / 20 if budget else None
        for i, event in enumerate(events[:warmup]):
            decide(event)
            if warm_until is not None and i >= 2 and time.perf_counter() > warm_until:
                break
        samples = []
        deadline = time.perf_counter() + budget if budget else None
        capped = False
        clock = time.perf_counter_ns
        for i, event in enumerate(events[warmup:]):
            started = clock()
            result = decide(event)
            samples.append(clock() - started)
            outcome = _outcome_of(spec, result)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if deadline is not None and i >= 50 and i % 10 == 0 and time.perf_counter() > deadline:
                capped = len(samples) < n
                break
        out["variants"][variant] = {**_summary(samples, capped), "outcomes": outcomes, "sample": sample}
    out["rss_kb"] = peak_rss_kb()
    print(json.dumps(out))


def _tenant_events(spec, count):
    """REST REQUEST events for the first `count` callers of the spec's tenants file (JSON
    lines {token, headers}), cycling over its paths; with `resources`, each carries its API
    route as `resource`, as API Gateway sends it (cache.mode route reads it)."""
    import json

    from ruleauth.tools.synthetic_events import build_event

    with open(spec["tenants_file"], encoding="utf-8") as handle:
        callers = [json.loads(line) for line in handle if line.strip()]
    if len(callers) < count:
        raise SystemExit(f"need {count} callers, have {len(callers)}")
    paths, resources = spec["paths"], spec.get("resources")
    events = []
    for i, caller in enumerate(callers[:count]):
        headers = {"Authorization": f"Bearer {caller['token']}", **caller["headers"]}
        event = build_event("rest-request", "GET", paths[i % len(paths)], headers=headers)
        if resources:
            event["resource"] = resources[i % len(resources)]
        events.append(event)
    return events


def interleaved(spec_path: str) -> None:
    """The baseline and one or more ruleauth cases in one process, request by request in
    turn (which goes first rotates): a busy machine slows them alike, so the ratios of their
    medians hold where absolute figures move. Request i of every case is the same caller
    (events: _tenant_events, each case over its own table's paths); the baseline decides
    the first case's events."""
    import json

    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    n, budget, cases = spec["n"], spec["budget_s"], spec["cases"]
    # A warm container has seen each of its API routes: the warm-up asks every route once.
    warmup = max([spec["warmup"], *(len(case["paths"]) for case in cases)])
    events = [_tenant_events({**spec, **case}, n + warmup) for case in cases]
    deciders = [_decider({**spec, "side": "baseline"})[0]]
    samples: list[list[int]] = [[]]
    describe = []
    for case in cases:
        decide, described = _decider({**spec, **case, "side": "ruleauth"})
        deciders.append(decide)
        describe.append(described(events[len(describe)][0]))
        samples.append([])
    streams = [events[0], *events]
    for i in range(warmup):
        for decide, stream in zip(deciders, streams, strict=True):
            decide(stream[i])
    clock = time.perf_counter_ns
    outcomes: list[dict[str, int]] = [{} for _ in cases]
    deadline = time.perf_counter() + budget if budget else None
    capped = False
    sides = len(deciders)
    for i in range(warmup, warmup + n):
        for turn in range(sides):
            side = (i + turn) % sides
            decide, event = deciders[side], streams[side][i]
            started = clock()
            result = decide(event)
            samples[side].append(clock() - started)
            if side:
                seen = outcomes[side - 1]
                seen[result.decision.outcome] = seen.get(result.decision.outcome, 0) + 1
        if deadline is not None and i - warmup >= 50 and i % 10 == 0 and time.perf_counter() > deadline:
            capped = len(samples[0]) < n
            break
    base = _summary(samples[0], capped)
    out: dict = {"baseline": base, "cases": {}}
    for k, case in enumerate(cases):
        rule = _summary(samples[k + 1], capped)
        out["cases"][case["name"]] = {
            "baseline": base,
            "ruleauth": {**rule, "outcomes": outcomes[k], "sample": describe[k]},
            "ratio_p50": rule["p50_us"] / base["p50_us"],
        }
    print(json.dumps(out))


def load(rules: str) -> None:
    import json

    from ruleauth.errors import RulesError
    from ruleauth.runtime.authorizer import Authorizer

    started = time.perf_counter()
    try:
        authorizer = Authorizer.load(rules, environ={})
    except RulesError as exc:
        print(json.dumps({"ok": False, "load_s": time.perf_counter() - started, "error": str(exc)}))
        return
    print(
        json.dumps(
            {
                "ok": True,
                "load_s": time.perf_counter() - started,
                "warnings": [getattr(w, "message", str(w)) for w in authorizer.ruleset.warnings],
            }
        )
    )


def profile(spec_path: str) -> None:
    import cProfile
    import io
    import json
    import pstats

    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    decide, _ = _decider(spec)
    if spec.get("tenants_file"):
        # As in `interleaved`: the warm-up asks every route once, then new callers are profiled.
        warm = max(5, len(spec["paths"]))
        events = _tenant_events(spec, spec["n"] + warm)
        warmup, events = events[:warm], events[warm:]
    else:
        events = _events(spec, _pool(spec, spec["variants"][0], spec["n"]))
        warmup = events[:5]
    for event in warmup:
        decide(event)
    profiler = cProfile.Profile()
    profiler.enable()
    for event in events:
        decide(event)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(spec.get("top", 25))
    stream2 = io.StringIO()
    pstats.Stats(profiler, stream=stream2).sort_stats("tottime").print_stats(spec.get("top", 25))
    print(json.dumps({"requests": len(events), "cumulative": stream.getvalue(), "tottime": stream2.getvalue()}))


def worst(spec_path: str) -> None:
    """Decision time for the longest method ARN API Gateway sends (1,600 bytes) against the
    deepest route table the loader accepts, and for a short ARN on the same table and caller
    (the baseline of the ratio). IAM wildcards were once matched by a backtracking regex:
    `GET/*/*/*/*/export` against `GET/static/a/a/.../b` took seconds to minutes."""
    import json
    import statistics

    from ruleauth.policy import synthesis as ps
    from ruleauth.policy.arn import MAX_ARN_BYTES
    from ruleauth.policy.response_check import MAX_RESOURCE_CHARS
    from ruleauth.rules.routes import parse_route
    from ruleauth.runtime.authorizer import Authorizer
    from ruleauth.tools.synthetic_events import build_event

    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    depth = 1
    while (
        ps.PREFIX_ESTIMATE + len(ps.route_pattern("OPTIONS", parse_route(_deep_route(depth + 1)))) <= MAX_RESOURCE_CHARS
    ):
        depth += 1
    rules = os.path.join(spec["work"], "deepest.yaml")
    with open(rules, "w", encoding="utf-8") as handle:
        handle.write(
            "version: 1\ntoken: {header: Authorization}\n"
            "cache: {mode: identity, sources: {headers: [Authorization]}}\nrules:\n"
            f"  - name: export\n    route: '{_deep_route(depth)}'\n    auth: token\n    allow: token == 'admin'\n"
            "  - name: static\n    route: GET /static/{path+}\n    auth: token\n    allow: 'true'\n"
        )
    started = time.perf_counter()
    authorizer = Authorizer.load(rules, environ={})
    load_s = time.perf_counter() - started
    prefix = len(build_event("rest-request", "GET", "/static/", headers={})["methodArn"])
    pairs = (MAX_ARN_BYTES - prefix - 1) // 2
    longest = "/static/" + "a/" * pairs + "b" * (MAX_ARN_BYTES - prefix - 2 * pairs)
    out = {"depth": depth, "load_s": load_s, "cases": {}}
    for name, path in (("short", "/static/a/b"), ("longest", longest)):
        event = build_event("rest-request", "GET", path, headers={"Authorization": "admin"})
        samples = []
        for _ in range(spec["n"]):
            t0 = time.perf_counter_ns()
            result = authorizer.authorize(event)
            samples.append(time.perf_counter_ns() - t0)
        out["cases"][name] = {
            "arn_bytes": len(event["methodArn"].encode()),
            "status": result.status,
            "p50_us": statistics.median(samples) / 1000,
            "max_us": max(samples) / 1000,
        }
    print(json.dumps(out))


def _deep_route(depth: int) -> str:
    return "GET /" + "/".join(f"{{p{i}}}" for i in range(depth)) + "/export"


if __name__ == "__main__":
    mode, arg = sys.argv[1], sys.argv[2]
    {
        "cold": cold,
        "warm": warm,
        "interleaved": interleaved,
        "load": load,
        "profile": profile,
        "worst": worst,
    }[mode](arg)
