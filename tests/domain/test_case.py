"""The case state machine as a picture: the docs' diagram is the transition table's."""

from __future__ import annotations


def test_the_state_diagram_in_the_docs_is_drawn_from_the_table() -> None:
    from pathlib import Path

    from refundry.domain.case import TRANSITIONS, state_diagram

    text = (Path(__file__).parents[2] / "docs" / "case-process.md").read_text(encoding="utf-8")
    drawn = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert drawn == state_diagram()
    assert len([line for line in drawn.splitlines() if ": " in line]) == len(TRANSITIONS)
