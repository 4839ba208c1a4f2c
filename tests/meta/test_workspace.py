"""Every plugin package is well formed and registered like a third-party plugin."""

import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import certctl_sdk

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIRS = sorted(p for p in ROOT.glob("plugins/*/*") if p.is_dir())


def test_plugin_directories_are_well_formed():
    assert PLUGIN_DIRS
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = root["tool"]["uv"]["sources"]
    for directory in PLUGIN_DIRS:
        family = directory.parent.name.rstrip("s")
        project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
        dist = project["name"]
        module = dist.replace("-", "_")
        assert dist == f"certctl-{family}-{directory.name}", directory
        assert (directory / "README.md").read_text().strip().count("\n") > 5, (
            f"{dist}: README too thin"
        )
        assert (directory / "src" / module / "plugin.py").exists(), dist
        assert (directory / "src" / module / "py.typed").exists(), dist
        assert list((directory / "tests").glob("test_*.py")), dist
        assert project["entry-points"]["certctl"] == {dist: f"{module}.plugin"}, dist
        assert dist in sources, f"{dist} missing from [tool.uv.sources]"
        assert not any(
            d == "certctl" or d.startswith(("certctl ", "certctl>", "certctl="))
            for d in project["dependencies"]
        ), f"{dist} must depend on certctl-sdk, never on the server"


def test_installed_entry_points_match_the_workspace():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="certctl")}
    for directory in PLUGIN_DIRS:
        dist = tomllib.loads((directory / "pyproject.toml").read_text())["project"]["name"]
        assert dist in eps, dist
        importlib.import_module(eps[dist].value)


def test_sdk_all_is_sorted_and_complete():
    exported = certctl_sdk.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)) or exported == sorted(
        exported
    )
    for name in exported:
        assert hasattr(certctl_sdk, name), name
    public = {n for n in vars(certctl_sdk) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(exported) | {"ConfigT"}
