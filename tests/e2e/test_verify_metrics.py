"""Verification-query metrics on real node processes (docs/operations.md,
"Metrics"): a PERMIT, a DENY and a refusal before logging move the
provider's govchain_verification_queries_total and
govchain_verification_query_seconds; a node without [[sources]] has no
series. The cluster is tests/e2e/test_verify.py's, started by its helpers."""
from __future__ import annotations

import grpc
import pytest

from node.adapters import sample
from node.tools.verify_cli import check_reply

from .test_metrics import scrape
from .test_verify import OTHER, PROVIDER, ask, consent, make_cluster, refused, verify_stub

pytestmark = pytest.mark.e2e
PERMIT = (("decision", "permit"), ("reason", ""))
DENY_TAG = (("decision", "deny"), ("reason", "the_tag_does_not_match_the_id_number"))
UNAUTHENTICATED = (("decision", "refused"), ("reason", "unauthenticated"))


def test_a_permit_a_deny_and_a_refusal_move_the_provider_verification_metrics(tmp_path):
    net = make_cluster(tmp_path, [consent("consent-metrics")])
    try:
        url = net.specs[PROVIDER].metrics
        before = scrape(url)
        assert before["govchain_verification_queries_total"][PERMIT] == 0  # there from the start
        assert before["govchain_verification_queries_total"][DENY_TAG] == 0
        assert UNAUTHENTICATED not in before["govchain_verification_queries_total"]

        signed, digest, reply_key, provider = ask(net, consent="consent-metrics")
        reply = verify_stub(net).Verify(signed, timeout=30)
        assert check_reply(reply, digest=digest, provider_key=provider, reply_private=reply_key) == \
            {"found": True, "fields": {"status": "married"}}
        denied, _, _, _ = ask(net, tag_of=sample.SAMPLE_ID_NUMBERS[2], consent="consent-metrics-deny")
        code, message = refused(net, denied)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "logged as DENY" in message
        forged, _, _, _ = ask(net, consent="consent-metrics-forged")
        forged.signature = bytes(64)
        assert refused(net, forged)[0] == grpc.StatusCode.UNAUTHENTICATED

        after = scrape(url)
        queries = after["govchain_verification_queries_total"]
        assert queries[PERMIT] == before["govchain_verification_queries_total"][PERMIT] + 1
        assert queries[DENY_TAG] == before["govchain_verification_queries_total"][DENY_TAG] + 1
        assert queries[UNAUTHENTICATED] == 1
        assert sum(queries.values()) == sum(before["govchain_verification_queries_total"].values()) + 3
        for decision in ("permit", "deny", "refused"):
            labels = (("decision", decision),)
            count = after["govchain_verification_query_seconds_count"][labels]
            assert count == before["govchain_verification_query_seconds_count"][labels] + 1, decision
            assert after["govchain_verification_query_seconds_bucket"][labels + (("le", "+Inf"),)] == count
            assert after["govchain_verification_query_seconds_sum"][labels] > \
                before["govchain_verification_query_seconds_sum"][labels]

        other = scrape(net.specs[OTHER].metrics)  # answers no queries: the families, no series
        assert "govchain_verification_queries_total" not in other
        assert "govchain_verification_query_seconds_count" not in other
    finally:
        net.kill_all()
