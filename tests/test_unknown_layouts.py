"""The unknown-layout fixtures (evals/letters/unknown/, evals/gold-unknown/): generated, unknown to the
parser, and labelled by their source letters' gold."""

from __future__ import annotations

import json

import pytest

from evals.gold import GoldLetter, load_gold
from evals.unknown_layouts import FIXTURES, UNKNOWN_GOLD_DIR, UNKNOWN_LETTERS_DIR, render
from llm_extract import extract, layouts, load
from llm_extract.llm import prompts
from llm_extract.normalize import fold_needle


@pytest.mark.parametrize(("stem", "kind"), FIXTURES)
def test_committed_fixture_is_what_the_generator_writes(stem: str, kind: str) -> None:
    name, text, gold = render(stem, kind)
    assert (UNKNOWN_LETTERS_DIR / f"{name}.txt").read_text(encoding="utf-8") == text
    assert json.loads((UNKNOWN_GOLD_DIR / f"{name}.json").read_text(encoding="utf-8")) == gold


def test_the_parser_does_not_know_these_layouts() -> None:
    golds = load_gold(UNKNOWN_GOLD_DIR)
    assert len(golds) == len(FIXTURES) and {g.letter.split("-")[-1] for g in golds} == {
        "numbered.txt",
        "table.txt",
        "summary.txt",
    }
    for gold in golds:
        text = load(UNKNOWN_LETTERS_DIR.parent / gold.letter).text
        assert layouts.parse(text).layout == "unknown", gold.letter
        assert extract(text).items == []  # the rules backend reads no item: only a model can


def test_every_gold_value_is_in_its_fixture_and_no_example_letter_is_used() -> None:
    examples = {e.letter for e in prompts.examples()}
    for gold in load_gold(UNKNOWN_GOLD_DIR):
        assert isinstance(gold, GoldLetter)
        folded = fold_needle(load(UNKNOWN_LETTERS_DIR.parent / gold.letter).text)
        source = json.loads((UNKNOWN_GOLD_DIR.parent / "gold" / f"{gold.letter[8:].rsplit('-', 1)[0]}.json").read_text())
        assert source["letter"] not in examples  # no leakage from the few-shot examples
        assert source["items"] == [i.model_dump(mode="json") for i in gold.items]
        for item in gold.items:
            assert fold_needle(item.item) in folded and fold_needle(item.decision) in folded
            assert item.conclusion and fold_needle(item.conclusion) in folded
        for state in gold.reviewer.licensure + gold.reviewer.specialties:
            assert fold_needle(state) in folded
