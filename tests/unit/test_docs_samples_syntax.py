"""The docs' code blocks compile and their markers follow the rules; no broker needed.

``tests/integration/test_docs_samples.py`` runs them against a broker.
"""

from __future__ import annotations

import re

import pytest

import aiokafka_history
from tests.docs_samples import PAGES, ROOT, Sample, collect_samples, compile_sample

SAMPLES = collect_samples()


def test_the_pages_have_samples_and_few_are_skipped() -> None:
    assert len(SAMPLES) >= 15  # guards the extractor: it must find the pages' blocks
    skipped = [s.id for s in SAMPLES if s.skip]
    assert len(skipped) <= 3, f"skip is for exceptions, not the rule: {skipped}"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_sample_compiles(sample: Sample) -> None:
    # A top-level await or `async with` does not compile: a pasted script cannot run it.
    # Wrap it in `async def main()` and `asyncio.run(main())`.
    compile_sample(sample)


def test_the_reference_page_documents_every_public_name() -> None:
    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: aiokafka_history\.(\w+)$", reference, re.MULTILINE))
    assert documented == set(aiokafka_history.__all__)


def test_every_page_is_in_the_site_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r":\s*([\w.-]+\.md)\s*$", config, re.MULTILINE))
    pages = {p.name for p in PAGES if p.parent.name == "docs"}
    assert pages <= in_nav, f"pages missing from mkdocs.yml's nav: {pages - in_nav}"
