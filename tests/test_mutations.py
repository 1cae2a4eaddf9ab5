"""No ok=True with a wrong item: every mutation of a few real letters (one per layout family) is
read right or carries an error flag (tests/mutations.py says what each mutation expects). The whole
corpus runs with ``python tests/mutations.py``."""

from __future__ import annotations

from collections import Counter

import mutations as harness
import pytest

#: One or two letters per family and per text tool: many items, a partial authorisation, prose citations.
LETTERS = [
    "imr-2016-2017/CM16-0248698.pdf",
    "imr-2016-2017/CM16-0230651.pdf",
    "imr-2016-2017/CM16-0234464.pdf",  # lower-cased, "necessary." finishes two pages: content, not a footer
    "imr-2016-2017/CM17-0012640.pdf",
    "variants/pdftotext/CM16-0230651.txt",
    "seeds/000_c56c88992780afee.txt",
    "fixtures/maximus-2015-multi.txt",
    "fixtures/maximus-decisions.txt",
    "fixtures/mpr-2013-upheld.txt",
    "fixtures/renamed-section.txt",
]


@pytest.mark.parametrize("job", harness.letter_texts(LETTERS), ids=lambda job: job[0])
def test_every_mutation_is_right_or_flagged(job: tuple[str, str]) -> None:
    outcomes = harness.letter_outcomes(job)
    kinds = Counter(o.mutation.kind for _, o in outcomes)
    assert kinds["lower-case"] == 1 and kinds["cut inside an item"] >= 1, kinds
    bad = [(o.mutation.kind, o.mutation.detail, o.verdict, o.got, o.flags) for _, o in outcomes
           if o.verdict in ("WRONG", "NOT RECOVERED")]
    assert not bad, bad
