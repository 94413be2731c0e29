"""The card's folders map into one `twinarm` package, in editable installs and in a built wheel."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]


def _source_packages() -> set[str]:
    """Every folder with an __init__.py under the mapped folders, as a dotted package name."""
    found = set()
    for pkg, folder in PACKAGE_DIR.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((pkg, *rel)))
    return found


def test_every_source_package_is_listed() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert _source_packages() - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_import_twinarm_registers_ids_and_reaches_every_subpackage() -> None:
    code = (
        "import gymnasium as gym, twinarm\n"
        "assert 'twinarm/SO101-PickCube-v0' in gym.registry and 'twinarm/SO101-PickCube-Real-v0' in gym.registry\n"
        "for name in ('envs', 'real', 'datasets_io', 'agents', 'assets', 'cli'):\n"
        "    mod = getattr(twinarm, name)\n"
        "    assert mod.__name__ == 'twinarm.' + name\n"
        "import sys; assert 'torch' not in sys.modules, 'import twinarm must stay light'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel and what its build printed."""
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    (whl,) = out.glob("twinarm-*.whl")
    return whl, run.stdout + run.stderr


@pytest.fixture(scope="module")
def wheel(built: tuple[Path, str]) -> Path:
    return built[0]


def test_build_does_not_warn_about_the_asset_folders(built: tuple[Path, str]) -> None:
    """Every install builds the package; setuptools once printed ~450 lines saying each asset folder
    "would be ignored" (data folders look like namespace packages to it)."""
    assert "would be ignored" not in built[1] and "BuildBackendWarning" not in built[1], built[1][-2000:]


def test_wheel_holds_every_module_and_model_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    expected = set()
    for pkg, folder in PACKAGE_DIR.items():
        prefix = pkg.replace(".", "/")
        for f in tracked:
            if not f.startswith(folder + "/"):
                continue
            rel = f[len(folder) + 1 :]
            if f.endswith((".py", ".xml", ".stl", ".obj")) or rel.endswith("LICENSE"):
                expected.add(f"{prefix}/{rel}")
    missing = sorted(expected - names)
    assert not missing, f"wheel lacks {len(missing)} files, e.g. {missing[:5]}"
    assert "twinarm/envs/arm_env.py" in names and "twinarm/assets/so101/so101.xml" in names
