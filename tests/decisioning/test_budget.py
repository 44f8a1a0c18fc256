"""Campaign budgets: the allocation keeps the most value per unit of spend within every limit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.budget import BUDGET, Budget, allocate, within_budget
from decisioning.decision import Decision, RankedOffer
from decisioning.reasons import Reason


def test_sends_go_by_value_per_unit_of_spend_until_the_budget_is_spent():
    value = np.array([1.0, 5.0, 3.0, 0.5, -1.0])
    spend = np.array([1.0, 10.0, 1.0, 0.0, 0.0])
    offer = np.zeros(5, dtype=int)
    # ratios 1, 0.5, 3, inf (free), never (no value)
    assert allocate(value, spend, offer, Budget(amount=2.0)).tolist() == [
        True, False, True, True, False]
    assert allocate(value, spend, offer, Budget(amount=100.0)).tolist() == [
        True, True, True, True, False]
    assert allocate(value, spend, offer, Budget(max_contacts=2)).tolist() == [
        False, False, True, True, False]


def test_an_offer_quota_caps_its_sends():
    value = np.array([3.0, 2.0, 1.0, 0.5])
    offer = np.array([0, 0, 0, 1])
    chosen = allocate(value, np.ones(4), offer, Budget(), quotas={0: 2})
    assert chosen.tolist() == [True, True, False, True]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.floats(-5, 20), st.floats(0, 5), st.integers(0, 3)),
                     max_size=60),
       amount=st.floats(0, 50), sends=st.integers(0, 30), quota=st.integers(0, 10))
def test_the_allocation_never_exceeds_a_limit_nor_sends_what_is_worth_nothing(rows, amount,
                                                                              sends, quota):
    value = np.array([r[0] for r in rows], dtype=float)
    spend = np.array([r[1] for r in rows], dtype=float)
    offer = np.array([r[2] for r in rows], dtype=int)
    chosen = allocate(value, spend, offer, Budget(amount, sends), quotas={0: quota})
    assert spend[chosen].sum() <= amount + 1e-9
    assert chosen.sum() <= sends
    assert (offer[chosen] == 0).sum() <= quota
    assert (value[chosen] > 0).all()


def test_a_decision_keeps_only_the_allocated_sends_reranked():
    def offer(offer_id: str, rank: int) -> RankedOffer:
        return RankedOffer(offer_id, rank, 1.0, 0.1, 0.2, (Reason("incremental_value", ""),))

    decision = Decision((offer("a", 1), offer("b", 2), offer("c", 3)), ())
    kept = within_budget(decision, {"b", "c"}, Budget(amount=10.0))
    assert [(o.offer_id, o.rank) for o in kept.offers] == [("b", 1), ("c", 2)]
    assert kept.chosen_offer == "b"
    assert [(s.offer_id, s.reason) for s in kept.suppressed] == [("a", BUDGET)]
    assert within_budget(decision, {"a", "b", "c"}, Budget()) is decision
