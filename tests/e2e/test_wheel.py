"""The wheel works outside a checkout: suites, templates and the DAG factory ship in it.

The wheel is built from a copy of the project's packaging files, installed
into a fresh virtualenv (its dependencies are lent by this environment's
site-packages through a path file, so nothing is downloaded, while the
checkout's editable install is not seen), and used from a folder outside
the repository: `rag-ingest validate` on a configuration there, and Airflow
parsing a DAG folder whose files only call the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build_wheel(work: Path) -> Path:
    source = work / "source"
    shutil.copytree(
        PROJECT_ROOT / "plugins",
        source / "plugins",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(source)],
        work,
        dict(os.environ),
    )  # fmt: skip
    (wheel,) = dist.glob("rag_ingest-*.whl")
    return wheel


def _fresh_venv(work: Path, wheel: Path) -> Path:
    target = work / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                work, {"PATH": os.environ["PATH"]}).strip()  # fmt: skip
    # The dependencies, from this environment (a path, so its .pth files, such as
    # the checkout's editable install, are not run).
    (Path(site) / "lent_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
         work, {"PATH": os.environ["PATH"]})  # fmt: skip
    return target


def test_the_installed_wheel_validates_a_config_and_builds_the_dags_outside_the_repo(
    tmp_path: Path,
) -> None:
    wheel = _build_wheel(tmp_path)
    target = _fresh_venv(tmp_path, wheel)
    site = tmp_path / "elsewhere"
    (site / "docs").mkdir(parents=True)
    (site / "docs" / "guide.md").write_text("# Guide\n\nWords.\n")
    config = site / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: handbook\n    location: docs\n")
    env = {
        "PATH": f"{target / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "RAG_INGEST_CONFIG": str(config),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "JAVA_HOME": os.environ.get("JAVA_HOME", ""),
    }
    python = str(target / "bin" / "python")

    where = _run([python, "-c", "import rag_ingest; print(rag_ingest.__file__)"], site, env)
    assert Path(where.strip()).is_relative_to(target), f"not the installed package: {where}"
    assert not Path(where.strip()).is_relative_to(PROJECT_ROOT)

    validated = _run([str(target / "bin" / "rag-ingest"), "validate"], site, env)
    assert "configuration OK: 1 source(s): handbook" in validated
    assert str(target) in validated  # the suites the wheel carries

    dags = site / "dags"
    dags.mkdir()
    for dag_file in (PROJECT_ROOT / "dags").glob("*.py"):
        shutil.copy(dag_file, dags / dag_file.name)
    parsed = _run(
        [
            python,
            "-c",
            "import sys; from airflow.dag_processing.dagbag import DagBag; "
            "bag = DagBag(dag_folder=sys.argv[1]); "
            "print(bag.import_errors or 'no errors'); print(sorted(bag.dag_ids)); "
            "import importlib.resources as r; "
            "print(r.files('rag_ingest').joinpath('templates/run_report.html').is_file())",
            str(dags),
        ],
        site,
        env,
    )
    assert "no errors" in parsed
    assert "['rag_freshness', 'rag_ingest__handbook']" in parsed
    assert parsed.strip().endswith("True")
