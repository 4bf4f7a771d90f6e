"""TableStates (worker/app.py): decoded table values reused only while the table holds the
very value object they were written as."""

from __future__ import annotations

from worker.stages.table_states import TableStates


def test_a_state_is_reused_only_while_the_table_holds_its_value() -> None:
    table: dict[str, dict] = {}
    decoded: list[object] = []

    def decode(stored):
        decoded.append(stored)
        return {"n": stored["n"] if stored else 0}

    states = TableStates(table, decode)
    state = states.get("k")  # no value yet: decoded from None
    assert state == {"n": 0} and decoded == [None]
    state["n"] = 3
    states.put("k", state, {"n": 3})
    assert table["k"] == {"n": 3}
    assert states.get("k") is state and len(decoded) == 1  # reused, not decoded again
    table["k"] = {"n": 3}  # a changelog recovery: an equal value, but another object
    again = states.get("k")
    assert again is not state and again == {"n": 3} and len(decoded) == 2
    states.put("k", again, table["k"])
    states.forget("k")
    assert states.get("k") is not again and len(decoded) == 3
    states.put("k", again, table["k"])
    states.forget()
    assert states.get("k") is not again and len(decoded) == 4
