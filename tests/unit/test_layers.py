"""The layering contracts (``[tool.importlinter]`` in pyproject.toml, run by ``make lint``):
they hold on the real tree, they name every package, and each fails on a deliberate violation.

A violation is shown on a throwaway tree in ``tmp_path`` whose packages carry the real names
(first on the path, so they stand in for the installed ones) and is checked with the real
configuration, so what fails here is what would fail in ``make lint``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SERVICES = sorted(p.name for p in ROOT.glob("services/*/src/routeiq_*") if p.is_dir())


def _config() -> dict[str, Any]:
    return dict(tomllib.loads(CONFIG.read_text())["tool"]["importlinter"])


def _contract(contract_id: str) -> dict[str, Any]:
    return next(c for c in _config()["contracts"] if c["id"] == contract_id)


def _lint(cwd: Path, *path: Path) -> tuple[int, str]:
    if not LINT_IMPORTS.is_file():
        pytest.fail("lint-imports not installed: `uv sync --frozen` installs import-linter")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path), "NO_COLOR": "1"}
    done = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(CONFIG), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, ANSI.sub("", done.stdout + done.stderr)


def _status(output: str, contract_id: str) -> str:
    match = re.search(
        rf"^{re.escape(_contract(contract_id)['name'])}\s+(KEPT|BROKEN)\s*$", output, re.M
    )
    assert match, f"{contract_id} is not in the report:\n{output}"
    return match.group(1)


# A lawful tree: every package uses the library; the CLI uses the trainer's wiring and
# settings, and the wiring builds on the trainer's core (an indirect path the CLI may take).
LAWFUL = {
    "routeiq/__init__.py": "",
    "routeiq/settings.py": "import routeiq\n",
    "routeiq/routing/__init__.py": "import routeiq.settings\n",
    "routeiq_cli/__init__.py": "",
    "routeiq_cli/models.py": (
        "import routeiq.settings\n"
        "from routeiq_trainer import wiring\n"
        "from routeiq_trainer.config import Settings\n"
    ),
    **{f"{s}/__init__.py": "" for s in SERVICES},
    **{f"{s}/core/__init__.py": "import routeiq.settings\n" for s in SERVICES},
    "routeiq_trainer/config.py": "import routeiq.settings\nSettings = object\n",
    "routeiq_trainer/wiring.py": "from routeiq_trainer.core import steps\n",
    "routeiq_trainer/core/steps.py": "import routeiq.settings\n",
    "routeiq_gateway/core/serving.py": "import routeiq.settings\n",
}


def _tree(root: Path, extra: dict[str, str]) -> Path:
    for name, text in {**LAWFUL, **extra}.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "src"


def test_contracts_name_every_package() -> None:
    # A new service must join the contracts, or it would be free to break the layers.
    assert SERVICES, "no service packages found"
    roots = set(_config()["root_packages"])
    assert roots == {"routeiq", "routeiq_cli", *SERVICES}
    assert set(_contract("services")["modules"]) == set(SERVICES)
    assert set(_contract("libs")["forbidden_modules"]) == {"routeiq_cli", *SERVICES}
    assert set(_contract("cli")["forbidden_modules"]) == {f"{s}.core" for s in SERVICES}


def test_real_tree_keeps_every_contract() -> None:
    code, output = _lint(ROOT)
    assert code == 0, output
    for contract in _config()["contracts"]:
        assert _status(output, contract["id"]) == "KEPT"


def test_lawful_throwaway_tree_keeps_every_contract(tmp_path: Path) -> None:
    src = _tree(tmp_path, {})
    code, output = _lint(src, src)
    assert code == 0, output
    assert "Analyzed" in output


@pytest.mark.parametrize(
    ("broken", "module", "text"),
    [
        ("cli", "routeiq_cli/evaluate.py", "from routeiq_trainer.core import steps\n"),
        ("cli", "routeiq_cli/backfill.py", "import routeiq_labeler.core\n"),
        ("cli", "routeiq_cli/demo.py", "from routeiq_gateway.core import serving\n"),
        ("services", "routeiq_gateway/publish.py", "from routeiq_labeler import core\n"),
        ("services", "routeiq_analytics/core/prices.py", "import routeiq_trainer.config\n"),
        ("libs", "routeiq/shards.py", "import routeiq_labeler\n"),
        ("libs", "routeiq/routing/plots.py", "from routeiq_cli import models\n"),
    ],
    ids=[
        "cli-imports-trainer-core",
        "cli-imports-labeler-core",
        "cli-imports-gateway-core",
        "service-imports-service",
        "service-core-imports-service",
        "libs-import-a-service",
        "libs-import-the-cli",
    ],
)
def test_each_contract_fails_on_a_violation(
    tmp_path: Path, broken: str, module: str, text: str
) -> None:
    src = _tree(tmp_path, {module: text})
    code, output = _lint(src, src)
    assert code != 0, output
    assert _status(output, broken) == "BROKEN"
    for contract in _config()["contracts"]:
        if contract["id"] != broken:
            assert _status(output, contract["id"]) == "KEPT", contract["id"]
    # The report names the offending import.
    assert module.removesuffix(".py").replace("/", ".") in output
