"""The README's promises: short, its Python example runs as printed, and no link of the docs points nowhere."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 160  # issue 26: a README a researcher reads in minutes
# the pages whose links are checked: the README, every docs page, and the results file they all link into
LINKED_PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "RESULTS.md"]

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced blocks of ``text`` opened with ```language, in order."""
    blocks, current, inside = [], None, False
    for line in text.splitlines():
        if FENCE.match(line):
            if not inside:
                inside = True
                current = [] if line.strip().strip("`~").strip() == language else None
            else:
                inside = False
                if current is not None:
                    blocks.append("\n".join(current))
                current = None
        elif inside and current is not None:
            current.append(line)
    return blocks


def prose_lines(text: str) -> list[str]:
    """The lines of ``text`` outside fenced code blocks."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown page, with GitHub's -1, -2 suffixes for repeated headings."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(page.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_anchor(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join(README.read_text(encoding="utf-8").splitlines()[:25])
    assert "make demo" in first_screen and "make test" in first_screen


def test_readme_python_example_trains_one_step():
    blocks = code_blocks(README.read_text(encoding="utf-8"), "python")
    assert blocks, "README.md has no ```python block"
    recorded: dict[str, list[tuple[torch.nn.Parameter, torch.Tensor]]] = {}

    class RecordingAdam(torch.optim.Adam):
        """Adam that remembers its parameters as they were when it was built, i.e. before the first step."""

        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **kwargs)
            recorded["before"] = [(p, p.detach().clone()) for g in self.param_groups for p in g["params"]]

    namespace: dict = {"__name__": "readme_example"}
    with torch.random.fork_rng(), pytest.MonkeyPatch.context() as patch:  # the rest of the suite keeps its seeds
        torch.manual_seed(0)
        patch.setattr(torch.optim, "Adam", RecordingAdam)
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)

    c, r, generator, disc = namespace["c"], namespace["r"], namespace["generator"], namespace["disc"]
    for name, losses in (("C", c), ("R", r)):
        assert torch.isfinite(losses["loss"]).item(), f"{name}'s loss is not finite: {losses}"
    # the frozen autoencoder took no part in the update
    assert all(not p.requires_grad and p.grad is None for p in generator.autoencoder.parameters())
    # every parameter of C got a gradient, each one with a non-zero gradient moved, and so did R
    changed = {id(p) for p, before in recorded["before"] if not torch.equal(p.detach(), before)}
    assert all(p.grad is not None for p in disc.parameters()), "a parameter of C got no gradient"
    unmoved = [name for name, p in disc.named_parameters() if p.grad.any() and id(p) not in changed]
    assert not unmoved, f"parameters of C with a gradient did not move: {unmoved}"
    assert any(id(p) in changed for p in generator.repair.parameters()), "R's weights did not change"


def test_readme_python_names_exist():
    """Dotted ``spotart.`` names the README's prose tells a reader to use can be imported."""
    prose = "\n".join(prose_lines(README.read_text(encoding="utf-8")))
    names = set(re.findall(r"`(spotart(?:\.\w+)+)(?:\([^`]*\))?`", prose))
    assert names, "expected the README to name some spotart functions"
    for name in sorted(names):
        module_name, attribute = name.rsplit(".", 1)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module_name), attribute), f"README.md names {name}: no such thing"


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            destination = page if not path_part else (page.parent / path_part).resolve()
            if not destination.exists():
                broken.append(f"{target}: no such file")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{target}: no heading with anchor #{anchor} in {destination.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_anchor_rule_matches_github():
    assert github_anchor("What was tried to make C's features beat random init (CIFAR-10, 32 px)") == (
        "what-was-tried-to-make-cs-features-beat-random-init-cifar-10-32-px"
    )
    assert github_anchor("`spotart train-rotnet`: a yardstick on the same trunk") == (
        "spotart-train-rotnet-a-yardstick-on-the-same-trunk"
    )
    assert github_anchor("Probes (`official_bf16`, 64 px)") == "probes-official_bf16-64-px"
