"""Each first-party plugin installs with pip next to the SDK alone and passes its own tests.

This is what a third-party plugin author does: no server, no workspace, no uv.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(
    str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/*") if (p / "pyproject.toml").exists()
)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_installs_and_passes_its_tests_without_the_server(
    plugin: str, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{ROOT / 'sdk'}[testing]",
            f"{ROOT / plugin}[test]",  # the plugin's own test dependencies
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([str(python), "-c", "import certctl"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'certctl'" in probe.stderr, (
        "the server must not be installed"
    )
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT / plugin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout


def test_python_is_the_supported_version() -> None:
    assert sys.version_info >= (3, 11)
