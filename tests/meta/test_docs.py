"""Every hook is documented with its exact signature."""

import inspect
import re
from pathlib import Path

from certctl_sdk import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def _hookspecs() -> dict[str, object]:
    return {
        name: obj
        for name, obj in vars(hookspecs).items()
        if callable(obj) and hasattr(obj, "certctl_spec")
    }


def test_every_hook_has_a_reference_section_with_its_signature():
    text = (ROOT / "docs/plugins/hooks.md").read_text()
    sections = set(re.findall(r"^## (\w+)$", text, re.M))
    specs = _hookspecs()
    assert specs, "no hookspecs found"
    assert sections == set(specs)
    for name, fn in specs.items():
        signature = str(inspect.signature(fn)).replace("'", "")
        assert f"def {name}{signature}" in text, name


def test_readme_quick_start_has_exactly_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in ci
