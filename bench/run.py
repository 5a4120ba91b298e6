"""ruleauth benchmark: cold init, warm decision time and peak RSS against a hand-written authorizer.

    python bench/run.py                 # the full run (about 2-3 minutes on 2 cores)
    python bench/run.py --quick         # a smoke run: fewer runs and requests (figures are rough)
    python bench/run.py --json out.json # also write every figure as JSON
    python bench/run.py --profile       # also cProfile the JWT + 500-route case, a new caller each time
    python bench/run.py --worst-arn     # only the longest legal ARN against the deepest table (seconds)
    python bench/run.py --cold-only --runs 15   # only the cold starts, both layouts (a bundle, a layer)

Run it from the repository root with the project venv's python. Every measurement runs
in a fresh child process of bench/.venv (created on first use: the same base interpreter,
`pip install -e .` plus requests and aws-lambda-powertools), so ruleauth and the
hand-written baseline (bench/baseline_authorizer.py) share one interpreter and one
site-packages. Fixtures (an RSA key, its JWK set, signed tokens, generated rules) go to a
temporary directory that is removed at the end. No network, except pip on first use.

This is a measurement, not a test: it never asserts and never fails on a figure.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
WORKER = BENCH / "worker.py"

ISSUER = "https://idp.bench.example"
AUDIENCE = "https://api.bench.example"
SERVICES_50, SERVICES_500 = 5, 50  # × 10 routes per service
ROUTES_PER_SERVICE = 10

# The performance goals README "Performance" reports against: (cold init, warm JWT+50 fresh
# token, 500/50 scale, peak RSS), per engine.
GOALS = {
    "cel-python": (1.0, 10.0, 3.0, 1.0),
    "cel-expr-python": (0.5, 2.0, 3.0, 1.0),
}
# The tenants case (issue 20): a new caller on 50 routes with one rule per route, identity
# caching, against the baseline in the same process; route caching, 500 routes against 50.
GOAL_TENANTS_50, GOAL_ROUTE_SCALE = 2.0, 1.0


# ---------------------------------------------------------------- environment


def ensure_venv() -> None:
    """bench/.venv: the same base interpreter, ruleauth (editable) + the baseline's dependencies."""
    if VENV_PYTHON.exists():
        probe = subprocess.run(
            [
                str(VENV_PYTHON),
                "-c",
                (
                    "import ruleauth, jwt, requests, aws_lambda_powertools, cel_expr_python\n"
                    "from ruleauth.cel import parser as cel_parser\n"
                    "assert all(cel_parser.cache_path(p).is_file() for p in (True, False))"
                ),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        print("bench/.venv is incomplete; installing into it", flush=True)
    else:
        print(f"creating bench/.venv with {sys.executable} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(VENV_PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{REPO}[fast]",
            "requests",
            "aws-lambda-powertools",
        ],
        check=True,
    )
    # As `sam build` does: the prebuilt CEL parser is part of a deployed cold start.
    subprocess.run([str(VENV_PYTHON), "-m", "ruleauth.cel.parser"], check=True, capture_output=True)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run(
        [
            str(VENV_PYTHON),
            "-c",
            (
                "import sys, platform; print(platform.python_version(), "
                "platform.python_implementation(), sys.executable)"
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    prebuilt = subprocess.run(
        [
            str(VENV_PYTHON),
            "-c",
            (
                "from ruleauth.cel import parser as cel_parser; "
                "print(all(cel_parser.cache_path(p).is_file() for p in (True, False)))"
            ),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    versions = subprocess.run(
        [
            str(VENV_PYTHON),
            "-c",
            (
                "import importlib.metadata as m; print(' '.join("
                "f'{p}={m.version(p)}' for p in ('cel-python','lark',"
                "'PyJWT','cryptography','requests','aws-lambda-powertools')))"
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "ruleauth"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": " ".join(version[:2]),
        "platform": platform.platform(),
        "packages": versions,
        "prebuilt_cel_parser": prebuilt == "True",
        "commit": commit + (" + uncommitted changes in ruleauth/" if dirty else ""),
    }


# ---------------------------------------------------------------- fixtures


def make_keys(work: Path):
    """An RSA-2048 key; its public half as the JWK set both authorizers read (kid k1)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    (work / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    return key


def caller_claims(now: int, i: int) -> dict:
    """A realistic power user: read everywhere, billing and admin on most services, ten groups.

    Under cache.mode identity the 500-route policy for this caller (50 service-wide Allows and
    a few dozen Denies) fits in API Gateway's 8 KB; most callers allowed almost nowhere fit too.
    """
    services = range(1, SERVICES_500 + 1)
    scopes = [f"svc{k}:read" for k in services]
    scopes += [f"svc{k}:billing" for k in services if k % 10]
    scopes += [f"svc{k}:admin" for k in services if k % 3]
    groups = [
        "staff",
        "eng",
        "oncall",
        "vpn-users",
        "reporting",
        "team-payments",
        "team-search",
        "svc3-owners",
        "github-org",
        "sso-users",
    ]
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-4711",
        "iat": now - 5,
        "exp": now + 6 * 3600,
        "jti": f"t{i}",
        "scope": " ".join(scopes),
        "groups": groups,
        "tenant": "acme",
    }


def make_tokens(key, count: int, path: Path, distinct_callers: bool = False) -> None:
    """Signed tokens. By default one user's tokens (only jti differs); with distinct_callers,
    each token also has its own sub and an extra group, so rules reading groups see a new caller."""
    import jwt

    now = int(time.time())
    with path.open("w") as handle:
        for i in range(count):
            claims = caller_claims(now, i)
            if distinct_callers:
                claims["sub"] = f"user-{i}"
                claims["groups"] = claims["groups"] + [f"user-{i}"]
            handle.write(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1", "typ": "JWT"}) + "\n")


# The tenants case: a new caller per request whose claims vary as real tenants' do.
TENANTS, TEAMS_PER_TENANT = 200, 6
ROLES = ("viewer", "editor", "owner", "billing")
TENANT_HEADER = "X-Tenant-Id"


def tenant_callers(count: int, services: int = SERVICES_500, seed: int = 20) -> list[tuple[dict, dict]]:
    """(claims, headers) of `count` callers, no two alike in what the rules read: each is a
    tenant (one of 200, sent again in the X-Tenant-Id header), a role (its scopes on the
    services the tenant subscribes to) and one to three of the tenant's six team groups
    (owners of every tenth tenant are also in `admin`). Values repeat across callers as
    they do in a real API (tenants, roles and teams are shared), combinations do not, so
    the whole-caller answer is always new and a rule's own inputs often are not."""
    import itertools
    import random

    rng = random.Random(seed)
    team_sets = [c for size in (1, 2, 3) for c in itertools.combinations(range(TEAMS_PER_TENANT), size)]
    combos = rng.sample(range(TENANTS * len(ROLES) * len(team_sets)), count)
    now = int(time.time())
    out = []
    for i, combo in enumerate(combos):
        combo, teams = divmod(combo, len(team_sets))
        tenant, role = divmod(combo, len(ROLES))
        subscribed = [k for k in range(1, services + 1) if (k * 7 + tenant) % 3]
        scopes = [f"svc{k}:read" for k in subscribed]
        if ROLES[role] in ("editor", "owner"):
            scopes += [f"svc{k}:write" for k in subscribed]
        if ROLES[role] == "owner":
            scopes += [f"svc{k}:admin" for k in subscribed if k % 4 == tenant % 4]
        if ROLES[role] == "billing":
            scopes += [f"svc{k}:billing" for k in subscribed]
        # A tenant's teams own a few resources of a few services, or read their reports.
        groups = [
            f"svc{(tenant * 5 + t) % services + 1}-" + ("reports" if t % 3 == 0 else f"res{(tenant + t) % 10}")
            for t in team_sets[teams]
        ]
        if ROLES[role] == "owner" and tenant % 10 == 0:
            groups.append("admin")
        claims = {
            **caller_claims(now, i),
            "sub": f"user-{i}",
            "scope": " ".join(scopes),
            "groups": groups,
            "tenant": f"tenant-{tenant}",
            "role": ROLES[role],
        }
        out.append((claims, {TENANT_HEADER: f"tenant-{tenant}"}))
    return out


def make_tenant_tokens(key, count: int, path: Path) -> None:
    """JSON lines {token, headers}: the tenants case's callers, signed."""
    import jwt

    with path.open("w") as handle:
        for claims, headers in tenant_callers(count):
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1", "typ": "JWT"})
            handle.write(json.dumps({"token": token, "headers": headers}) + "\n")


def tenant_expression(k: int, j: int) -> str:
    """One rule per route over claims, groups and the X-Tenant-Id header, each its own text."""
    header = f"request.headers['{TENANT_HEADER.lower()}']"
    return [
        f"'svc{k}:read' in scopes || 'svc{k}:res{j}:read' in scopes || is_admin",
        f"claims.tenant == {header} && ('svc{k}:write' in scopes || 'svc{k}:res{j}:write' in scopes)",
        f"has(claims.groups) && claims.groups.exists(g, g == 'svc{k}-res{j}' || g.startsWith('svc{k}-rep'))",
        f"claims.role in ['editor', 'owner'] && claims.tenant != 'tenant-{(k * 10 + j) % TENANTS}'",
        f"{header}.startsWith('tenant-') && 'svc{k}:read' in scopes && !('svc{k}:res{j}:deny' in scopes)",
    ][j % 5]


def tenant_rules_yaml(services: int, mode: str, engine: str | None) -> str:
    """The tenants case: `services` × 10 routes, one rule per route (tenant_expression),
    under `cache.mode` `mode` (identity or route), keyed on the token and the tenant header."""
    lines = [
        "version: 1",
        *([f"engine: {engine}"] if engine else []),
        "token: {header: Authorization, scheme: Bearer}",
        "cache:",
        f"  mode: {mode}",
        f"  sources: {{headers: [Authorization, {TENANT_HEADER}]}}",
        *provider_lines(),
        "context:",
        "  tenant: " + _q("has(claims.tenant) ? claims.tenant : 'none'"),
        "  role: " + _q("has(claims.role) ? claims.role : 'none'"),
        "rules:",
    ]
    for k in range(1, services + 1):
        for j in range(ROUTES_PER_SERVICE):
            lines += [
                f"  - name: svc{k} res{j}",
                f"    route: {route_of(k, j, 'nested')}",
                f"    allow: {_q(tenant_expression(k, j))}",
            ]
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def route_of(k: int, j: int, layout: str) -> str:
    """Route j (0-based) of service k. nested: GET /svcK/{id} and GET /svcK/{id}/resJ;
    flat: GET /svcK/resJ/{id}."""
    if layout == "flat":
        return f"GET /svc{k}/res{j}/{{id}}"
    return f"GET /svc{k}/{{id}}" if j == 0 else f"GET /svc{k}/{{id}}/res{j}"


def distinct_expression(k: int, j: int) -> str:
    """One rule per route, each with its own expression over scopes, claims and groups."""
    return [
        f"'svc{k}:read' in scopes || 'svc{k}:res{j}:read' in scopes || is_admin",
        f"('svc{k}:read' in scopes || 'svc{k}:res{j}:read' in scopes) && has(claims.tenant)",
        f"has(claims.groups) && claims.groups.exists(g, g == 'svc{k}-res{j}' || g.startsWith('svc{k}-rep'))",
        f"(has(claims.tenant) && claims.tenant in ['acme', 'tenant-{k}-{j}'] && 'svc{k}:read' in scopes) || is_admin",
        f"auth.provider == 'corp' && 'svc{k}:read' in scopes && !('svc{k}:res{j}:deny' in scopes)",
    ][j % 5]


# grouped rules: per service, (name, route indexes, expression template)
GROUPS = [
    ("read", range(4), "'svc{k}:read' in scopes || is_admin"),
    (
        "reports",
        range(4, 7),
        ("has(claims.groups) && claims.groups.exists(g, g == 'reporting' || g == 'svc{k}-reports')"),
    ),
    (
        "billing",
        range(7, 9),
        ("has(claims.tenant) && claims.tenant in ['acme', 'tenant-{k}'] && 'svc{k}:billing' in scopes"),
    ),
    ("admin", range(9, 10), "is_admin || ('svc{k}:admin' in scopes && auth.provider == 'corp')"),
]


def provider_lines() -> list[str]:
    """The warm rules files' one RS256 provider (the bench's jwks.json) and `is_admin`."""
    return [
        "jwt:",
        "  - name: corp",
        f"    issuer: {ISSUER}",
        f"    audience: [{AUDIENCE}]",
        "    algorithms: [RS256]",
        "    jwks_file: jwks.json",
        "define:",
        "  is_admin: " + _q("has(claims.groups) && 'admin' in claims.groups"),
    ]


def rules_yaml(services: int, style: str, layout: str, engine: str | None) -> str:
    """A JWT API: `services` × 10 routes, cache.mode identity, one RS256 provider with a jwks_file.

    style "distinct": one rule per route, each expression distinct (services × 10 rules);
    style "grouped": four rules per service (read / reports / billing / admin) over its routes.
    """
    lines = [
        "version: 1",
        *([f"engine: {engine}"] if engine else []),
        "token: {header: Authorization, scheme: Bearer}",
        "cache:",
        "  mode: identity",
        "  sources: {headers: [Authorization]}",
        *provider_lines(),
        "context:",
        "  tenant: " + _q("has(claims.tenant) ? claims.tenant : 'none'"),
        "  provider: auth.provider",
        "rules:",
    ]
    for k in range(1, services + 1):
        if style == "distinct":
            for j in range(ROUTES_PER_SERVICE):
                lines += [
                    f"  - name: svc{k} res{j}",
                    f"    route: {route_of(k, j, layout)}",
                    f"    allow: {_q(distinct_expression(k, j))}",
                ]
        else:
            for name, indexes, template in GROUPS:
                lines += [f"  - name: svc{k} {name}", "    route:"]
                lines += [f"      - {route_of(k, j, layout)}" for j in indexes]
                lines += [f"    allow: {_q(template.format(k=k))}"]
    lines.append("tests:")
    for k in range(1, services + 1):
        path = route_of(k, 1, layout).split(" ", 1)[1].replace("{id}", "42")
        lines += [
            f"  - name: svc{k} readers read",
            f"    request: {{method: GET, path: {path}, headers: {{Authorization: Bearer x}}}}",
            f"    claims: {{iss: {_q(ISSUER)}, sub: u1, scope: {_q(f'svc{k}:read')}, tenant: acme}}",
            "    expect: allow",
        ]
    return "\n".join(lines) + "\n"


def write_rules(work: Path, name: str, services: int, style: str, layout: str, engine: str | None) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(rules_yaml(services, style, layout, engine))
    return path


def request_paths(services: int) -> list[str]:
    """The asked routes cycle over every route of the table (all GET, nested layout)."""
    return [
        route_of(k, j, "nested").split(" ", 1)[1].replace("{id}", str(40 + j))
        for k in range(1, services + 1)
        for j in range(ROUTES_PER_SERVICE)
    ]


# ---------------------------------------------------------------- children


def child_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULEAUTH_", "BASELINE_", "PYTHON"))}
    env.update(extra or {})
    return env


def snapshot_rules(path: Path) -> None:
    """`ruleauth snapshot PATH`, as the Makefile runs it at `sam build`."""
    proc = subprocess.run(
        [str(VENV_PYTHON), "-m", "ruleauth", "snapshot", str(path)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ruleauth snapshot {path} failed:\n{proc.stderr}")


def layer_layout(work: Path, rules_file: Path) -> dict[str, dict]:
    """The layer layout of a deployed function (README "Your own stack"), as directories:
    `opt/python` holds ruleauth and its dependencies as the layer does (/opt/python), the task
    root holds only the rules (`rules/`), and the interpreter runs with -S, so nothing else is
    on sys.path. Its packages are bench/.venv's (with their bytecode), ruleauth a copy of this
    tree's. Returns the cold targets: from the snapshot made beside the rules by the layer's
    own ruleauth, and without it."""
    layer = work / "layer" / "opt" / "python"
    site = next(Path(p) for p in VENV.glob("lib/python*/site-packages"))
    skipped = ("pip", "setuptools", "_distutils_hack", "__editable__", "ruleauth", "distutils-precedence")
    layer.mkdir(parents=True)
    for entry in site.iterdir():
        if entry.name.startswith(skipped) or entry.suffix == ".pth":
            continue
        if entry.is_dir():
            shutil.copytree(entry, layer / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, layer / entry.name)
    shutil.copytree(REPO / "ruleauth", layer / "ruleauth")
    subprocess.run([str(VENV_PYTHON), "-m", "compileall", "-q", str(layer / "ruleauth")], check=True)
    task = work / "layer" / "task"
    rules = task / "rules"
    rules.mkdir(parents=True)
    shutil.copy2(rules_file, rules / rules_file.name)
    shutil.copy2(rules_file.parent / "jwks.json", rules / "jwks.json")
    env = child_env({"PYTHONPATH": f"{task}{os.pathsep}{layer}", "LAMBDA_TASK_ROOT": str(task)})
    proc = subprocess.run(
        [str(VENV_PYTHON), "-S", "-m", "ruleauth", "snapshot", str(rules)],
        capture_output=True,
        text=True,
        env=env,
        cwd=task,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ruleauth snapshot {rules} (layer layout) failed:\n{proc.stderr}")
    flags = ("-S",)
    return {
        "layer N=100": {"target": "ruleauth", "env": env, "flags": flags},
        "layer N=100 full load": {"target": "ruleauth", "env": {**env, "RULEAUTH_SNAPSHOT": "0"}, "flags": flags},
    }


def run_child(
    args: list[str], env: dict, timeout: float = 600, python: Path = VENV_PYTHON, flags: tuple[str, ...] = ()
) -> tuple[dict, float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(python), *flags, str(WORKER), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        return {"error": "\n".join(tail)}, wall
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def cold_runs(targets: dict[str, dict], runs: int) -> dict[str, dict]:
    """Round-robin over targets (a discarded first round warms the bytecode and page caches)."""
    samples: dict[str, list[tuple[dict, float]]] = {name: [] for name in targets}
    for round_ in range(runs + 1):
        for name, spec in targets.items():
            python = spec.get("python", VENV_PYTHON)
            result, wall = run_child(["cold", spec["target"]], spec["env"], python=python, flags=spec.get("flags", ()))
            if "error" in result:
                return {name: {"error": result["error"]}}
            if round_:
                samples[name].append((result, wall))
    out = {}
    empty_wall = statistics.median(w for _, w in samples["empty"])
    for name, pairs in samples.items():
        out[name] = {
            "runs": len(pairs),
            "import_ms": statistics.median(r["import_s"] for r, _ in pairs) * 1000,
            "import_ms_min": min(r["import_s"] for r, _ in pairs) * 1000,
            "cpu_ms": statistics.median(r["cpu_s"] for r, _ in pairs) * 1000,
            "process_ms": (statistics.median(w for _, w in pairs) - empty_wall) * 1000,
            "rss_mb": statistics.median(r["rss_kb"] for r, _ in pairs) / 1024,
            "modules": pairs[0][0]["modules"],
        }
    return out


def warm_case(work: Path, name: str, spec: dict) -> dict:
    path = work / f"warm-{name}.json"
    path.write_text(json.dumps(spec))
    result, _ = run_child(["warm", str(path)], child_env(baseline_env(work)), timeout=900)
    return result


def baseline_env(work: Path) -> dict:
    return {"BASELINE_JWKS_FILE": str(work / "jwks.json"), "BASELINE_ISSUER": ISSUER, "BASELINE_AUDIENCE": AUDIENCE}


# ---------------------------------------------------------------- report


def fmt_ms(value: float) -> str:
    return f"{value:8.1f} ms"


def fmt_us(value: float) -> str:
    if math.isnan(value):
        return "       n/a"
    return f"{value / 1000:8.2f} ms" if value >= 10_000 else f"{value:8.1f} µs"


def verdict(ratio: float | None, goal: float) -> str:
    if ratio is None:
        return "n/a"
    return "PASS" if ratio <= goal else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 cold runs, 300 requests per case")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--runs", type=int, help="cold-start runs per target (default 7; quick 3)")
    parser.add_argument("--requests", type=int, help="timed requests per warm case (default 2000; quick 300)")
    parser.add_argument(
        "--budget", type=float, help="seconds per warm variant before it stops early (default 50; quick 5; 0: none)"
    )
    parser.add_argument(
        "--budget-500",
        type=float,
        dest="budget_500",
        help="the same for the 500-route variants (default 15; quick 5; 0: none)",
    )
    parser.add_argument(
        "--style",
        choices=("grouped", "distinct"),
        default="grouped",
        help="warm JWT rules: 4 rules per 10-route service (grouped, default) or one distinct rule per route",
    )
    parser.add_argument("--engine", help="write `engine: NAME` into the generated rules files")
    parser.add_argument(
        "--cold-only",
        action="store_true",
        dest="cold_only",
        help="only measure cold starts (both layouts; use --runs for more repetitions)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile the JWT + 500-route case, a new caller per request"
    )
    parser.add_argument(
        "--tenants",
        action="store_true",
        help="only the tenants case (2b: the baseline and ruleauth in turn), and its profile with --profile",
    )
    parser.add_argument(
        "--worst-arn",
        action="store_true",
        dest="worst_arn",
        help="only measure the longest legal ARN against the deepest legal table, with this "
        "interpreter (no bench/.venv needed)",
    )
    args = parser.parse_args()
    if args.worst_arn:
        work = Path(tempfile.mkdtemp(prefix="ruleauth-bench-"))
        try:
            worst_arn(work, 50 if args.quick else 500, Path(sys.executable))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    runs = args.runs or (3 if args.quick else 7)
    requests = args.requests or (300 if args.quick else 2000)
    warmup = 30 if args.quick else 200
    budget = args.budget if args.budget is not None else (5.0 if args.quick else 50.0)
    budget_500 = args.budget_500 if args.budget_500 is not None else (5.0 if args.quick else 15.0)

    ensure_venv()
    if Path(sys.executable).absolute() != VENV_PYTHON.absolute():
        # The parent makes keys and tokens with PyJWT too: continue inside bench/.venv.
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
    started = time.perf_counter()
    info = machine()
    print("ruleauth benchmark" + (" (--quick: rough figures)" if args.quick else ""))
    print(f"machine : {info['cpu']}, {info['cores']} cores; Python {info['python']}; {info['platform']}")
    print(f"packages: {info['packages']}")
    print(
        f"ruleauth: {info['commit']}; prebuilt CEL parser "
        f"{'present' if info['prebuilt_cel_parser'] else 'ABSENT (cold init builds the lark parser)'}"
    )
    print("interpreter for every measurement: bench/.venv/bin/python (same site-packages for both sides)")
    print()

    work = Path(tempfile.mkdtemp(prefix="ruleauth-bench-"))
    try:
        results = bench(work, info, args, runs, requests, warmup, budget, budget_500)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    print(f"\n(total {results['elapsed_s']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")
    return 0


def bench(
    work: Path, info: dict, args, runs: int, requests: int, warmup: int, budget: float, budget_500: float
) -> dict:
    key = make_keys(work)
    make_tokens(key, requests + warmup, work / "tokens.txt")
    make_tokens(key, requests + warmup, work / "callers.txt", distinct_callers=True)
    # The tenants case's warm-up asks every route of the 500-route table once.
    make_tenant_tokens(key, requests + max(warmup, SERVICES_500 * ROUTES_PER_SERVICE), work / "tenants.txt")
    engine = args.engine
    if args.tenants:
        tenants = tenants_cases(work, engine, requests, warmup, budget, budget_500)
        results = {"machine": info, "tenants": tenants}
        report_tenants(tenants)
        ratios = {
            "identity 50 routes / hand-written": tenants_ratio(results, "identity50"),
            "route caching 500 routes / 50 routes": route_scale(results),
        }
        for label, ratio in ratios.items():
            print(f"   {label}: {'n/a' if ratio is None else f'{ratio:.2f}×'}")
        if args.profile:
            profile_tenants(work, engine, requests, results)
        return results
    cold10 = write_rules(work, "cold10", 1, "distinct", "nested", engine)
    cold100 = write_rules(work, "cold100", 10, "distinct", "nested", engine)
    # As `sam build` does: a deployed cold start reads the rules snapshot the build saved.
    for path in (cold10, cold100):
        snapshot_rules(path)
    warm50 = write_rules(work, "warm50", SERVICES_50, args.style, "nested", engine)
    warm500 = write_rules(work, "warm500", SERVICES_500, args.style, "nested", engine)
    flat500 = write_rules(work, "flat500", SERVICES_500, args.style, "flat", engine)
    flat100 = write_rules(work, "flat100", 10, "distinct", "flat", engine)
    results: dict = {
        "machine": info,
        "settings": {
            "cold_runs": runs,
            "requests": requests,
            "warmup": warmup,
            "budget_s": budget,
            "budget_500_s": budget_500,
            "style": args.style,
            "engine": engine or "default",
        },
    }

    # 1 + 3: cold init and peak RSS, fresh processes, round-robin.
    print(f"measuring cold init: {runs} runs per target (+1 discarded), fresh processes ...", flush=True)
    targets = {
        "empty": {"target": "empty", "env": child_env()},
        "baseline": {"target": "baseline", "env": child_env(baseline_env(work))},
        "ruleauth N=10": {"target": "ruleauth", "env": child_env({"RULEAUTH_RULES": str(cold10)})},
        "ruleauth N=100": {"target": "ruleauth", "env": child_env({"RULEAUTH_RULES": str(cold100)})},
        "ruleauth N=100 full load": {
            "target": "ruleauth",
            "env": child_env({"RULEAUTH_RULES": str(cold100), "RULEAUTH_SNAPSHOT": "0"}),
        },
    }
    targets.update(layer_layout(work, cold100))
    cold = cold_runs(targets, runs)
    results["cold"] = cold
    if args.cold_only:
        report_cold(results)
        return results

    # Does each table load? (the flat 500-route table is expected to exceed the 8 KB policy budget)
    loads = {}
    for name, path in (
        ("500 routes nested, GET /svcK/{id}/resJ (case c)", warm500),
        ("500 routes flat, GET /svcK/resJ/{id}", flat500),
        ("100 routes flat, one rule per route", flat100),
    ):
        loads[name], _ = run_child(["load", str(path)], child_env())
    results["loads"] = loads

    # 2: warm per-request decision time, one process per case.
    print(
        f"measuring warm decisions: {requests} requests per case after {warmup} warm-up "
        f"(time cap per variant: {budget:g} s, 500 routes {budget_500:g} s) ...",
        flush=True,
    )
    tokens_file = str(work / "tokens.txt")
    common = {
        "n": requests,
        "warmup": warmup,
        "budget_s": budget,
        "tokens_file": tokens_file,
        "callers_file": str(work / "callers.txt"),
    }
    warm = {}
    warm["baseline"] = warm_case(
        work,
        "baseline",
        {**common, "side": "baseline", "variants": ["same", "fresh"], "paths": request_paths(SERVICES_50)},
    )
    warm["demo"] = warm_case(
        work,
        "demo",
        {
            **common,
            "side": "ruleauth",
            "rules": str(REPO / "rules"),
            "variants": ["same"],
            "paths": ["/hello"],
            "header_values": ["17"],
            "tokens_file": None,
        },
    )
    warm["jwt50"] = warm_case(
        work,
        "jwt50",
        {
            **common,
            "side": "ruleauth",
            "rules": str(warm50),
            "variants": ["same", "fresh", "callers"],
            "paths": request_paths(SERVICES_50),
        },
    )
    warm["jwt500"] = warm_case(
        work,
        "jwt500",
        {
            **common,
            "budget_s": budget_500,
            "side": "ruleauth",
            "rules": str(warm500),
            "variants": ["same", "fresh", "callers"],
            "paths": request_paths(SERVICES_500),
        },
    )
    results["warm"] = warm

    results["tenants"] = tenants_cases(work, engine, requests, warmup, budget, budget_500)

    report(results, work)
    results["worst_arn"] = worst_arn(work, min(requests, 500), VENV_PYTHON)

    if args.profile:
        profile_tenants(work, engine, requests, results)
        spec = {
            **common,
            "n": min(requests, 300),
            "side": "ruleauth",
            "rules": str(warm500),
            "variants": ["callers"],
            "paths": request_paths(SERVICES_500),
            "top": 25,
        }
        path = work / "profile.json"
        path.write_text(json.dumps(spec))
        prof, _ = run_child(["profile", str(path)], child_env())
        print("\ncProfile, JWT + 500 routes, a new caller per request, sorted by cumulative time:")
        print(prof.get("cumulative") or prof.get("error"))
        print("sorted by own time:")
        print(prof.get("tottime") or "")
        results["profile"] = prof
    return results


def tenants_spec(
    work: Path, name: str, mode: str, services: int, engine: str | None, n: int, warmup: int, budget: float
) -> dict:
    rules = work / f"{name}.yaml"
    rules.write_text(tenant_rules_yaml(services, mode, engine))
    return {
        "n": n,
        "warmup": warmup,
        "budget_s": budget,
        "side": "ruleauth",
        "rules": str(rules),
        "tenants_file": str(work / "tenants.txt"),
        "paths": request_paths(services),
        # As API Gateway sends it: the API route of each asked path (cache.mode route reads it).
        "resources": [route_of(k, j, "nested").split(" ", 1)[1] for k in range(1, services + 1) for j in range(10)],
    }


def tenants_cases(work: Path, engine: str | None, requests: int, warmup: int, budget: float, budget_500: float) -> dict:
    """2b. The tenants case: identity caching (50 and 500 routes) in one process and route
    caching (50 and 500) in another, each with the baseline, all in turn (worker.py interleaved)."""
    print("measuring the tenants case: the baseline and ruleauth in turn, one process per mode ...", flush=True)
    out: dict = {}
    for mode in ("identity", "route"):
        cases = []
        for services in (SERVICES_50, SERVICES_500):
            name = f"{mode}{services * ROUTES_PER_SERVICE}"
            spec = tenants_spec(work, f"tenants-{name}", mode, services, engine, requests, warmup, budget)
            cases.append({"name": name, **{k: spec[k] for k in ("rules", "paths", "resources")}})
        spec = {**spec, "budget_s": budget_500 + budget, "cases": cases}
        path = work / f"tenants-{mode}.json"
        path.write_text(json.dumps(spec))
        result, _ = run_child(["interleaved", str(path)], child_env(baseline_env(work)), timeout=900)
        if "error" in result:
            out.update({case["name"]: result for case in cases})
        else:
            out.update(result["cases"])
    out["load"] = os.getloadavg()
    return out


def report_tenants(tenants: dict) -> None:
    print("\n2b. The tenants case: one distinct rule per route over claims, groups and the X-Tenant-Id header;")
    print("   a new caller per request (tenant of 200, role of 4, 1-3 of the tenant's 6 teams: values repeat,")
    print("   combinations never); per caching mode one process decides each caller with the baseline, the")
    print("   50-route and the 500-route table in turn (the warm-up asks every route once).")
    print(f"   {'case':<50}{'n':>6}{'baseline p50':>14}{'ruleauth p50':>14}{'p99':>12}{'× baseline':>12}")
    labels = {
        "identity50": "identity caching, 50 routes, new caller",
        "identity500": "identity caching, 500 routes, new caller",
        "route50": "route caching, 50 routes, new caller",
        "route500": "route caching, 500 routes, new caller",
    }
    for name, label in labels.items():
        row = tenants.get(name, {})
        if "error" in row:
            print(f"   {label:<50} FAILED: {row['error'].splitlines()[-1][:120]}")
            continue
        rule, base = row["ruleauth"], row["baseline"]
        n = f"{rule['n']}{'*' if rule['capped'] else ''}"
        print(
            f"   {label:<50}{n:>6}{fmt_us(base['p50_us']):>14}{fmt_us(rule['p50_us']):>14}"
            f"{fmt_us(rule['p99_us']):>12}{row['ratio_p50']:11.2f}×"
        )
    for name in labels:
        row = tenants.get(name, {})
        if "error" in row:
            continue
        sample, outcomes = row["ruleauth"]["sample"], row["ruleauth"]["outcomes"]
        warn = f"; warnings {sample['warnings']}" if sample.get("warnings") else ""
        print(
            f"   {name}: outcomes [{', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}]; "
            f"response {sample['response_bytes']} bytes, {sample['resources']} resources{warn}"
        )
    load = tenants.get("load")
    if load:
        print(f"   load average after the case: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def div_or_none(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def profile_tenants(work: Path, engine: str | None, requests: int, results: dict) -> None:
    """cProfile of the tenants case, a new caller each time: identity caching with 50 and 500
    routes, route caching with 500."""
    for name, mode, services in (
        ("tenants50", "identity", SERVICES_50),
        ("tenants500", "identity", SERVICES_500),
        ("route500", "route", SERVICES_500),
    ):
        spec = {**tenants_spec(work, name, mode, services, engine, min(requests, 300), 0, 0), "top": 25}
        path = work / f"profile-{name}.json"
        path.write_text(json.dumps(spec))
        prof, _ = run_child(["profile", str(path)], child_env())
        print(
            f"\ncProfile, tenants case, {services * ROUTES_PER_SERVICE} routes, {mode} caching, "
            "a new caller per request, "
            "sorted by cumulative time:"
        )
        print(prof.get("cumulative") or prof.get("error"))
        print("sorted by own time:")
        print(prof.get("tottime") or "")
        results[f"profile_{name}"] = prof


def worst_arn(work: Path, n: int, python: Path) -> dict:
    """4. The longest legal ARN (1,600 bytes) against the deepest legal table: bounded time,
    as a ratio against a short ARN on the same table in the same child."""
    spec = work / "worst.json"
    spec.write_text(json.dumps({"work": str(work), "n": n}))
    result, _ = run_child(["worst", str(spec)], child_env(), python=python)
    print(
        "\n4. The longest legal method ARN against the deepest legal route table (median of "
        f"{n} decisions, one process)"
    )
    if "error" in result:
        print("   FAILED:", result["error"])
        return result
    short, longest = result["cases"]["short"], result["cases"]["longest"]
    print(
        f"   table: GET /{{p0}}/.../{{p{result['depth'] - 1}}}/export ({result['depth']} parameters, the "
        f"deepest the 512-character resource limit allows) and GET /static/{{path+}}; loads in "
        f"{result['load_s'] * 1000:.0f} ms"
    )
    for name, row in (("short ARN (baseline)", short), ("longest ARN", longest)):
        print(
            f"   {name:<22}{row['arn_bytes']:>6} bytes  p50 {fmt_us(row['p50_us'])}  "
            f"max {fmt_us(row['max_us'])}  status {row['status']}"
        )
    ratio = longest["p50_us"] / short["p50_us"] if short["p50_us"] else float("nan")
    print(f"   ratio longest / short: {ratio:.2f}×")
    result["ratio"] = ratio
    return result


def tenants_ratio(results: dict, name: str) -> float | None:
    """The tenants case's ruleauth p50 over the baseline p50 of the same process."""
    row = (results.get("tenants") or {}).get(name) or {}
    ratio = row.get("ratio_p50")
    return float(ratio) if ratio is not None else None


def route_scale(results: dict) -> float | None:
    """Route caching, 500 routes over 50: measured in one process, in turn, on the same callers."""
    return div_or_none(tenants_ratio(results, "route500"), tenants_ratio(results, "route50"))


def report_cold(results: dict) -> bool:
    """Section 1, the cold starts, with their ratios to the goals; False if one failed."""
    cold = results["cold"]
    print()
    if any("error" in v for v in cold.values()):
        print("COLD INIT FAILED:", next(v["error"] for v in cold.values() if "error" in v))
        return False
    base = cold["baseline"]
    print(
        "1. Cold init (fresh process; median of "
        f"{base['runs']} runs). 'import' = perf_counter around the import inside the child;"
    )
    print("   'process' = whole child wall time (start to exit) minus an empty `python worker.py cold empty`.")
    print(f"   {'target':<36}{'import':>12}{'process':>12}{'peak RSS':>11}{'modules':>9}{'× baseline':>12}")
    for name, row in cold.items():
        if name == "empty":
            label = "empty interpreter (reference)"
        elif name == "baseline":
            label = "hand-written (import the module)"
        elif name.endswith("full load"):
            label = "  the same without the snapshot"
        elif name.startswith("layer"):
            label = name.replace("layer N=", "layer layout, ") + " rules"
        else:
            label = name.replace("ruleauth N=", "import ruleauth.handler, ") + " rules"
        ratio = "" if name in ("empty", "baseline") else f"{row['import_ms'] / base['import_ms']:10.2f}×"
        print(
            f"   {label:<36}{fmt_ms(row['import_ms']):>12}{fmt_ms(row['process_ms']) if name != 'empty' else '':>12}"
            f"{row['rss_mb']:8.1f} MB{row['modules']:>9}{ratio:>12}"
        )
    print("   rules: N distinct rules, one route each (GET /svcK/{id}[/resJ]), JWT scopes/claims/groups,")
    print("   cache.mode identity, one RS256 provider with a jwks_file (loaded at import), one test per service.")
    print("   As deployed by `sam build`, the cold start reads the rules snapshot made beside the rules file;")
    print("   'without the snapshot' (RULEAUTH_SNAPSHOT=0) parses and checks the rules file at import.")
    print("   'layer layout': ruleauth and its dependencies in opt/python, the rules in the task root's rules/,")
    print("   python -S with only those two on sys.path, as a function with the ruleauth layer runs.")
    goals = [
        (f"cold init, {name.replace(' full load', ' without the snapshot')} / hand-written import", name, goal)
        for name, goal in (
            ("ruleauth N=100", 0.7),
            ("ruleauth N=100 full load", 1.0),
            ("layer N=100", 0.7),
            ("layer N=100 full load", 1.0),
        )
    ]
    print("\n   Cold-start ratios against issue 16's goals (same run, same baseline; wall time, then the")
    print("   child's own CPU time, which time spent waiting for a core on a busy machine does not inflate):")
    for label, name, goal in goals:
        ratio = cold[name]["import_ms"] / base["import_ms"]
        cpu = cold[name]["cpu_ms"] / base["cpu_ms"]
        print(f"   {label:<70}{ratio:6.2f}×{cpu:7.2f}×  ≤ {goal:g}×  {verdict(ratio, goal)}")
    results["cold_ratios"] = {
        name: {"wall": cold[name]["import_ms"] / base["import_ms"], "cpu": cold[name]["cpu_ms"] / base["cpu_ms"]}
        for _, name, _ in goals
    }
    return True


def report(results: dict, work: Path) -> None:
    cold, warm, loads = results["cold"], results["warm"], results["loads"]
    if not report_cold(results):
        return
    base = cold["baseline"]

    print("\n   Does the table load? (cache.mode identity must fit every caller's policy in 8 KB)")
    for name, row in loads.items():
        if row.get("ok"):
            note = f"loads ({row['load_s'] * 1000:.0f} ms)"
            big = [w for w in row.get("warnings", []) if "bytes" in w]
            if big:
                note += "; warning: " + big[0].split(";")[0]
        elif "error" in row and "ok" in row:
            first = [line for line in row["error"].splitlines() if line.strip()]
            size = [line for line in first if "bytes" in line]
            line = size[0] if size else first[0]
            note = "REFUSED: " + line.split("error: ", 1)[-1].split(": use ")[0]
        else:
            note = "worker failed: " + str(row.get("error"))[:200]
        print(f"   - {name}: {note}")

    print("\n2. Warm decision time per request (one process; perf_counter_ns around the decision,")
    print("   no logging on either side; ruleauth: Authorizer.authorize(event) with a REST REQUEST event).")
    print(f"   {'case':<58}{'n':>6}{'p50':>12}{'p99':>12}{'mean':>12}{'× baseline p50':>16}")
    base_w = warm["baseline"].get("variants", {}).get("fresh")
    rows = [
        ("hand-written: PyJWT RS256 decode, 1-statement policy", "baseline", "fresh"),
        ("hand-written, same token repeated", "baseline", "same"),
        ("(a) odd-number demo, Authorization: 17", "demo", "same"),
        ("(b) JWT + 50 routes, same token repeated", "jwt50", "same"),
        ("(b) JWT + 50 routes, fresh token per request", "jwt50", "fresh"),
        ("(b) JWT + 50 routes, a new caller per request", "jwt50", "callers"),
        ("(c) JWT + 500 routes, same token repeated", "jwt500", "same"),
        ("(c) JWT + 500 routes, fresh token per request", "jwt500", "fresh"),
        ("(c) JWT + 500 routes, a new caller per request", "jwt500", "callers"),
    ]
    for label, case, variant in rows:
        data = warm.get(case, {})
        if "error" in data:
            print(f"   {label:<58} FAILED: {data['error'].splitlines()[-1][:120]}")
            continue
        row = data["variants"][variant]
        ratio = f"{row['p50_us'] / base_w['p50_us']:14.1f}×" if base_w and case != "baseline" else ""
        n = f"{row['n']}{'*' if row['capped'] else ''}"
        print(
            f"   {label:<58}{n:>6}{fmt_us(row['p50_us']):>12}{fmt_us(row['p99_us']):>12}"
            f"{fmt_us(row['mean_us']):>12}{ratio:>16}"
        )
    if any(warm.get(c, {}).get("variants", {}).get(v, {}).get("capped") for _, c, v in rows):
        print("   * stopped early by the per-variant time cap (--budget 0 --budget-500 0 run every request)")
    for case in ("demo", "jwt50", "jwt500"):
        data = warm.get(case, {})
        if "error" in data:
            continue
        for variant, row in data["variants"].items():
            sample = row["sample"]
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
            warn = f"; warnings {sample['warnings']}" if sample.get("warnings") else ""
            if case != "demo" or variant == "same":
                print(
                    f"   {case}/{variant}: outcomes [{outcomes}]; response {sample['response_bytes']} bytes, "
                    f"{sample.get('statements')} statements, {sample['resources']} resources{warn}"
                )
    style = results["settings"]["style"]
    n_rules = {"grouped": "4 rules per service", "distinct": "one rule per route"}[style]
    print(
        f"   (b)/(c): {SERVICES_50} / {SERVICES_500} services × {ROUTES_PER_SERVICE} routes "
        f"(GET /svcK/{{id}} and GET /svcK/{{id}}/resJ), {n_rules} ({style}),"
    )
    print("   cache.mode identity (full per-resource policy each time), RS256 tokens signed by the jwks_file key;")
    print("   the caller is allowed on most routes and denied on some; asked routes cycle over the table.")

    if results.get("tenants"):
        report_tenants(results["tenants"])

    print("\n3. Peak RSS after cold start (median; the child's VmHWM, which is ru_maxrss without the share")
    print(
        "   Linux folds in from the launching process at exec): "
        f"ruleauth N=100 {cold['ruleauth N=100']['rss_mb']:.1f} MB, N=10 {cold['ruleauth N=10']['rss_mb']:.1f} MB, "
        f"hand-written {base['rss_mb']:.1f} MB, empty interpreter {cold['empty']['rss_mb']:.1f} MB"
    )

    # ratios against the goals
    def p50(case, variant):
        try:
            return warm[case]["variants"][variant]["p50_us"]
        except KeyError:
            return None

    def div(a, b):
        return a / b if a is not None and b else None

    engine = results.get("settings", {}).get("engine", "default")
    engine = "cel-python" if engine in (None, "default") else engine
    GOAL_COLD, GOAL_WARM, GOAL_SCALE, GOAL_RSS = GOALS.get(engine, GOALS["cel-python"])
    goals = [
        ("cold init, 10 rules / hand-written import", div(cold["ruleauth N=10"]["import_ms"], base["import_ms"]), None),
        (
            "cold init, 100 rules / hand-written import",
            div(cold["ruleauth N=100"]["import_ms"], base["import_ms"]),
            GOAL_COLD,
        ),
        (
            "cold init, 100 rules without the snapshot / hand-written",
            div(cold["ruleauth N=100 full load"]["import_ms"], base["import_ms"]),
            None,
        ),
        (
            "warm p50, JWT+50 routes new caller / hand-written",
            div(p50("jwt50", "callers"), p50("baseline", "fresh")),
            GOAL_WARM,
        ),
        (
            "warm p50, JWT+50 routes fresh token / hand-written",
            div(p50("jwt50", "fresh"), p50("baseline", "fresh")),
            None,
        ),
        (
            "warm p50, JWT+50 routes same token / hand-written",
            div(p50("jwt50", "same"), p50("baseline", "fresh")),
            None,
        ),
        (
            "warm p50, 500 routes / 50 routes (new caller)",
            div(p50("jwt500", "callers"), p50("jwt50", "callers")),
            GOAL_SCALE,
        ),
        ("warm p50, 500 routes / 50 routes (fresh token)", div(p50("jwt500", "fresh"), p50("jwt50", "fresh")), None),
        ("warm p50, 500 routes / 50 routes (same token)", div(p50("jwt500", "same"), p50("jwt50", "same")), None),
        (
            "tenants, identity, 50 routes new caller / hand-written",
            tenants_ratio(results, "identity50"),
            GOAL_TENANTS_50,
        ),
        ("tenants, identity, 500 routes new caller / hand-written", tenants_ratio(results, "identity500"), None),
        (
            "tenants, route caching, 500 routes / 50 routes",
            route_scale(results),
            GOAL_ROUTE_SCALE,
        ),
        ("peak RSS, ruleauth N=100 / hand-written", div(cold["ruleauth N=100"]["rss_mb"], base["rss_mb"]), GOAL_RSS),
        (
            "peak RSS, N=100 without the snapshot / hand-written",
            div(cold["ruleauth N=100 full load"]["rss_mb"], base["rss_mb"]),
            None,
        ),
    ]
    print(f"\nRatios against the performance goals ({engine} engine):")
    print(f"   {'ratio':<56}{'measured':>10}{'goal':>9}{'':>3}{'result':<6}")
    for label, ratio, goal in goals:
        shown = f"{ratio:9.2f}×" if ratio is not None else "       n/a"
        goal_text = f"≤ {goal:g}×" if goal is not None else "   (info)"
        print(f"   {label:<56}{shown:>10}{goal_text:>9}   {verdict(ratio, goal) if goal is not None else ''}")
    results["ratios"] = {
        label: {"ratio": ratio, "goal": goal, "result": verdict(ratio, goal) if goal is not None else None}
        for label, ratio, goal in goals
    }


if __name__ == "__main__":
    sys.exit(main())
