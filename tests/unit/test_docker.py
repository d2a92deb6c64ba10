"""docker/ is checked statically: no Docker engine runs on the development machines."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"


def test_compose_file_has_an_atlas_local_store_with_a_health_check() -> None:
    compose = yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text())
    mongodb = compose["services"]["mongodb"]
    assert mongodb["image"].startswith("mongodb/mongodb-atlas-local:")
    assert "27017:27017" in mongodb["ports"]
    assert mongodb["healthcheck"]["test"][0] == "CMD"


def test_no_secret_is_committed_in_docker_files() -> None:
    for path in DOCKER_DIR.iterdir():
        text = path.read_text()
        for match in re.finditer(r"(PASSWORD|SECRET|TOKEN)[A-Z_]*\s*[:=]\s*(\S+)", text):
            value = match.group(2)
            assert value.startswith("${") and value.endswith(":-}"), (
                f"{path.name}: {match.group(0)}"
            )
