"""The ```python blocks of README.md and docs/*.md, and the markers that say how they run.

Used by ``tests/integration/test_docs_samples.py`` (which runs them against a broker; its
docstring lists the markers) and ``tests/unit/test_docs_samples_syntax.py``.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"^\s*<!--\s*sample:(?P<options>.*?)-->\s*$")
BROKERS = ("default", "cluster", "secure")


class MarkerError(ValueError):
    """A ``<!-- sample: ... -->`` marker that does not follow the rules."""


@dataclass
class Sample:
    """One ```python block: where it is, its code, and how it runs."""

    path: Path
    line: int  # 1-based line of the block's first code line
    source: str
    skip: str | None = None  # the reason, when not run
    continues: bool = False
    broker: str = "default"
    check: str | None = None
    chain: list[Sample] = field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def _options(sample: Sample, text: str) -> None:
    for option in filter(None, (part.strip() for part in text.split(";"))):
        name, _, value = option.partition("=")
        if option == "continue":
            sample.continues = True
        elif option.startswith("skip"):
            reason = option[len("skip") :].strip()
            if not reason:
                raise MarkerError(f"{sample.id}: 'skip' needs a reason")
            sample.skip = reason
        elif name.strip() == "broker" and value.strip() in BROKERS:
            sample.broker = value.strip()
        elif name.strip() == "check" and value.strip():
            sample.check = value.strip()
        else:
            raise MarkerError(f"{sample.id}: unknown sample option {option!r}")


def page_samples(path: Path) -> list[Sample]:
    """The ```python blocks of one page, in order, with their markers applied."""
    lines = path.read_text(encoding="utf-8").splitlines()
    samples: list[Sample] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        indent, start = fence["indent"], index
        index += 1
        while index < len(lines) and not re.match(rf"^{indent}```\s*$", lines[index]):
            index += 1
        if fence["lang"] in ("python", "py"):
            source = textwrap.dedent("\n".join(lines[start + 1 : index])) + "\n"
            sample = Sample(path, start + 2, source)
            marker = _MARKER.match(lines[start - 1]) if start else None
            if marker:
                _options(sample, marker["options"])
            samples.append(sample)
        index += 1
    for sample in samples:
        if sample.continues:
            if not samples or sample is samples[0]:
                raise MarkerError(f"{sample.id}: 'continue' on a page's first block")
            head = samples[samples.index(sample) - 1]
            while head.continues:
                head = samples[samples.index(head) - 1]
            if head.skip or sample.skip:
                raise MarkerError(f"{sample.id}: a skipped block cannot be continued or continue")
            if sample.broker != "default":
                raise MarkerError(f"{sample.id}: a continued block runs on its first's broker")
            head.chain.append(sample)
        else:
            sample.chain = [sample]
    return samples


def collect_samples() -> list[Sample]:
    """Every ```python block of README.md and docs/*.md."""
    return [sample for page in PAGES for sample in page_samples(page)]


def compile_sample(sample: Sample, source: str | None = None) -> CodeType:
    """Compile a block so that tracebacks name the page and its line numbers."""
    padded = "\n" * (sample.line - 1) + (sample.source if source is None else source)
    return compile(padded, str(sample.path), "exec")
