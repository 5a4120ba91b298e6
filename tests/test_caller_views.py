"""A warm container reuses one caller's answers for the route table (cache.mode identity).

Reuse never skips the credential check, never outlives the token or VIEW_TTL, is keyed
on the decoded token (two spellings share one entry) and is off when rules read `now`.
"""

import pytest

from ruleauth.cel import evaluation
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.runtime.caller_views import VIEW_TTL
from ruleauth.tools.synthetic_events import build_event
from tests.jwt_support import AUDIENCE, ISSUER, NOW, default_jwks, token

RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
jwt:
  issuer: %s
  audience: [%s]
  algorithms: [RS256]
  jwks_file: jwks.json
principal: claims.sub
context:
  scope: "has(claims.scope) ? claims.scope : ''"
rules:
  - name: read
    route: GET /orders/{id}
    allow: "'read:orders' in scopes"
  - name: write
    route: POST /orders
    allow: "'write:orders' in scopes"
"""


@pytest.fixture
def authorizer(tmp_path):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "rules.yaml").write_text(RULES % (ISSUER, AUDIENCE))
    return Authorizer.load(tmp_path / "rules.yaml")


def ask(authorizer, bearer, method="GET", path="/orders/1", now=NOW + 1):
    event = build_event("rest-request", method, path, headers={"Authorization": f"Bearer {bearer}"})
    return authorizer.authorize(event, now=now)


@pytest.fixture
def evaluations(monkeypatch):
    calls = []
    real = evaluation.evaluate

    def counting(compiled, activation, budget=None):
        calls.append(compiled.source)
        return real(compiled, activation, budget)

    monkeypatch.setattr(evaluation, "evaluate", counting)
    return calls


def test_a_repeated_caller_is_answered_from_its_view_without_evaluating_again(authorizer, evaluations):
    first = ask(authorizer, token())
    count = len(evaluations)
    second = ask(authorizer, token(), method="POST", path="/orders")
    assert count > 0 and len(evaluations) == count  # nothing evaluated the second time
    assert first.decision.outcome == "allow" and second.decision.outcome == "deny"
    assert second.decision.principal == "user-1" and second.decision.context == {"scope": "read:orders"}
    assert len(authorizer.decider.views) == 1


def test_the_asked_rule_is_evaluated_once_per_request(authorizer, evaluations):
    ask(authorizer, token())
    assert evaluations.count("'read:orders' in scopes") == 1


def test_K10_different_callers_get_independent_answers(authorizer):
    reader, writer = token(), token(scope="write:orders", sub="user-2")
    for _ in range(2):
        assert ask(authorizer, reader).decision.outcome == "allow"
        assert ask(authorizer, writer).decision.outcome == "deny"
        assert ask(authorizer, writer, "POST", "/orders").decision.principal == "user-2"
    assert len(authorizer.decider.views) == 2


def test_J16_two_spellings_of_one_token_share_one_view(authorizer):
    plain = token()
    header, payload, signature = plain.split(".")
    padded = ".".join(part + "=" * (-len(part) % 4) for part in (header, payload, signature))
    assert padded != plain
    assert ask(authorizer, plain).decision.outcome == ask(authorizer, padded).decision.outcome == "allow"
    assert len(authorizer.decider.views) == 1


def test_a_view_never_outlives_the_token_or_its_ttl(authorizer, evaluations):
    short = token(exp=int(NOW) + 5)
    ask(authorizer, short)
    count = len(evaluations)
    assert ask(authorizer, short, now=NOW + 6).decision.outcome == "unauthorized"  # expired: checked first
    long = token(exp=int(NOW) + 10 * VIEW_TTL)
    ask(authorizer, long)
    count = len(evaluations)
    ask(authorizer, long, now=NOW + VIEW_TTL + 2)
    assert len(evaluations) > count  # recomputed after VIEW_TTL


def test_a_bad_token_is_refused_even_when_a_view_exists_for_its_claims(authorizer):
    good = token()
    ask(authorizer, good)
    header, payload, signature = good.split(".")
    tampered = ".".join((header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")))
    assert ask(authorizer, tampered).decision.outcome == "unauthorized"


def test_rules_that_read_now_are_never_answered_from_a_view(tmp_path, evaluations):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "rules.yaml").write_text(
        (RULES % (ISSUER, AUDIENCE)).replace(
            "allow: \"'read:orders' in scopes\"", "allow: \"'read:orders' in scopes && now_unix > 0\""
        )
    )
    authorizer = Authorizer.load(tmp_path / "rules.yaml")
    ask(authorizer, token())
    count = len(evaluations)
    ask(authorizer, token())
    assert len(evaluations) > count
    assert len(authorizer.decider.views) == 0


def test_views_stay_consistent_when_ruleauth_serve_decides_on_several_threads(tmp_path):
    import threading
    from pathlib import Path

    authorizer = Authorizer.load(Path(__file__).resolve().parents[1] / "rules")
    authorizer.decider.views._size = 8  # force constant eviction
    outcomes: list[tuple[int, str]] = []

    def work(n: int) -> None:
        for i in range(300):
            value = (n * 1000 + i) % 50
            event = build_event("rest-request", "GET", "/hello", headers={"Authorization": str(value)})
            outcomes.append((value, authorizer.authorize(event).decision.outcome))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 1800
    assert all(outcome == ("allow" if value % 2 else "deny") for value, outcome in outcomes)


def test_tokens_whose_read_claims_agree_share_the_table_answers_but_not_principal_or_context(authorizer, evaluations):
    first = ask(authorizer, token(sub="user-1", jti="a"))
    count = len(evaluations)
    second = ask(authorizer, token(sub="user-2", jti="b"))  # same scope: rules read only scopes
    table_evaluations = [e for e in evaluations[count:] if "in scopes" in e]
    assert table_evaluations == []
    assert (first.decision.outcome, second.decision.outcome) == ("allow", "allow")
    assert (first.decision.principal, second.decision.principal) == ("user-1", "user-2")
    other = ask(authorizer, token(sub="user-3", scope="write:orders"))
    assert other.decision.outcome == "deny" and len(authorizer.decider.views) == 2


def test_a_rule_that_reads_all_claims_shares_nothing_between_different_claims(tmp_path, evaluations):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "rules.yaml").write_text(
        (RULES % (ISSUER, AUDIENCE)).replace(
            "allow: \"'read:orders' in scopes\"", "allow: \"'read:orders' in scopes && size(claims) > 3\""
        )
    )
    authorizer = Authorizer.load(tmp_path / "rules.yaml")
    ask(authorizer, token(jti="a"))
    count = len(evaluations)
    ask(authorizer, token(jti="b"))
    assert any("size(claims)" in e for e in evaluations[count:])
    assert len(authorizer.decider.views) == 2


# -- each group of rules remembered under its own inputs (RuleMemo) ------------------------

GROUPED = """\
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: identity, sources: {headers: [Authorization, X-Tenant-Id]}}
jwt:
  issuer: %s
  audience: [%s]
  algorithms: [RS256]
  jwks_file: jwks.json
rules:
  - name: by scope
    route: GET /orders/{id}
    allow: "'read:orders' in scopes"
  - name: by scope too
    route: GET /orders/{id}/items
    allow: "'read:items' in scopes || 'read:orders' in scopes"
  - name: by team
    route: GET /teams/{id}
    allow: "has(claims.groups) && claims.groups.exists(g, g.startsWith('team-'))"
  - name: by tenant header
    route: GET /tenants/{id}
    allow: "has(claims.tenant) && claims.tenant == request.headers['x-tenant-id']"
"""


@pytest.fixture
def grouped(tmp_path):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "rules.yaml").write_text(GROUPED % (ISSUER, AUDIENCE))
    return Authorizer.load(tmp_path / "rules.yaml")


def ask_tenant(authorizer, bearer, tenant, path="/orders/1", now=NOW + 1):
    headers = {"Authorization": f"Bearer {bearer}", "X-Tenant-Id": tenant}
    return authorizer.authorize(build_event("rest-request", "GET", path, headers=headers), now=now)


def table_of(result):
    return list(result.decision.table_allowed)


def test_a_new_caller_evaluates_only_the_rules_whose_own_inputs_are_new(grouped, evaluations):
    ask_tenant(grouped, token(scope="read:orders", groups=["team-a"], tenant="t1"), "t1")
    count = len(evaluations)
    # New groups, same scopes and tenant: only the groups rule runs again.
    second = ask_tenant(grouped, token(sub="user-2", scope="read:orders", groups=["ops"], tenant="t1"), "t1")
    assert evaluations[count:] == ["has(claims.groups) && claims.groups.exists(g, g.startsWith('team-'))"]
    assert table_of(second) == [True, True, False, True]
    assert len(grouped.decider.views) == 2  # a new caller to the whole table all the same


def test_remembered_rule_answers_equal_a_fresh_evaluation_for_every_mix_of_inputs(tmp_path, grouped):
    """Callers drawn from every combination of scopes, groups, tenant claim and header: the
    table answers of an authorizer that has seen all the others (answers remembered per group
    of rules) equal those of one that sees the caller first."""
    import itertools

    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "fresh" / "rules.yaml").write_text(GROUPED % (ISSUER, AUDIENCE))
    combos = itertools.product(
        ("read:orders", "read:items", ""), (["team-a"], ["ops"], []), ("t1", "t2", None), ("t1", "t2")
    )
    for i, (scope, groups, tenant, header) in enumerate(combos):
        claims = {"sub": f"user-{i}", "scope": scope, "groups": groups}
        if tenant is not None:
            claims["tenant"] = tenant
        bearer = token(**claims)
        warm = ask_tenant(grouped, bearer, header)
        cold = ask_tenant(Authorizer.load(tmp_path / "fresh" / "rules.yaml"), bearer, header)
        assert table_of(warm) == table_of(cold), claims
        assert warm.response == cold.response


def test_a_remembered_rule_answer_never_outlives_the_token_that_computed_it(grouped, evaluations):
    ask_tenant(grouped, token(scope="read:orders", groups=["team-a"], exp=int(NOW) + 5), "t1")
    count = len(evaluations)
    # Another caller with the same scopes after the first token's exp: evaluated again.
    later = token(sub="user-2", scope="read:orders", groups=["ops"], exp=int(NOW) + 3600)
    ask_tenant(grouped, later, "t1", now=NOW + 6)
    assert "'read:orders' in scopes" in evaluations[count:]


def test_a_rule_that_reads_a_header_is_keyed_on_it(grouped):
    bearer = token(scope="", groups=[], tenant="t1")
    assert table_of(ask_tenant(grouped, bearer, "t1"))[3] is True
    other = token(sub="user-2", scope="", groups=["x"], tenant="t1")
    assert table_of(ask_tenant(grouped, other, "t2"))[3] is False


def test_rules_that_read_now_remember_no_rule_answers_either(tmp_path, evaluations):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "rules.yaml").write_text(
        (GROUPED % (ISSUER, AUDIENCE)).replace(
            "allow: \"'read:orders' in scopes\"", "allow: \"'read:orders' in scopes && now_unix > 0\""
        )
    )
    authorizer = Authorizer.load(tmp_path / "rules.yaml")
    ask_tenant(authorizer, token(scope="read:orders", groups=["a"]), "t1")
    count = len(evaluations)
    ask_tenant(authorizer, token(sub="user-2", scope="read:orders", groups=["b"]), "t1")
    assert "'read:items' in scopes || 'read:orders' in scopes" in evaluations[count:]


def test_callers_of_one_tenant_share_their_context_but_each_keeps_its_default_principal(tmp_path, evaluations):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    text = (GROUPED % (ISSUER, AUDIENCE)).replace("rules:", "context:\n  tenant: claims.tenant\nrules:", 1)
    (tmp_path / "rules.yaml").write_text(text)
    authorizer = Authorizer.load(tmp_path / "rules.yaml")
    first = ask_tenant(authorizer, token(sub="user-1", scope="read:orders", groups=["a"], tenant="t1"), "t1")
    count = len(evaluations)
    second = ask_tenant(authorizer, token(sub="user-2", scope="read:orders", groups=["b"], tenant="t1"), "t1")
    assert "claims.tenant" not in evaluations[count:]
    assert (first.decision.principal, second.decision.principal) == ("user-1", "user-2")
    assert first.response["principalId"] == "user-1" and second.response["principalId"] == "user-2"
    assert second.decision.context == {"tenant": "t1"}
    # A token whose sub cannot name the caller is denied, though its context is remembered.
    nameless = ask_tenant(authorizer, token(sub="", scope="read:orders", groups=["c"], tenant="t1"), "t1")
    assert nameless.decision.outcome == "deny" and nameless.decision.reason == "principal_error"


def test_remembered_rule_answers_stay_right_when_ruleauth_serve_decides_on_several_threads(tmp_path, grouped):
    import itertools
    import threading

    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "fresh" / "rules.yaml").write_text(GROUPED % (ISSUER, AUDIENCE))
    fresh = Authorizer.load(tmp_path / "fresh" / "rules.yaml")
    callers = [
        (token(sub=f"user-{i}", scope=scope, groups=groups, tenant="t1"), header)
        for i, (scope, groups, header) in enumerate(
            itertools.product(("read:orders", "read:items", ""), (["team-a"], ["ops"]), ("t1", "t2"))
        )
    ]
    paths = ("/orders/1", "/orders/1/items", "/teams/1", "/tenants/1")
    expected = {
        (c, p): ask_tenant(fresh, *callers[c], path=p).decision.outcome for c in range(len(callers)) for p in paths
    }
    seen: list[tuple[tuple[int, str], str]] = []

    def work(n: int) -> None:
        for i in range(60):
            c, p = (n * 7 + i) % len(callers), paths[(n + i) % len(paths)]
            seen.append(((c, p), ask_tenant(grouped, *callers[c], path=p).decision.outcome))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 360
    assert all(outcome == expected[key] for key, outcome in seen)
