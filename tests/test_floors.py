"""The dependency floors: pyproject.toml's lowest versions and .ci/floors.txt agree,
and psycopg's floor is one whose notifies() does not lose notifications."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _floors() -> dict[str, str]:
    text = (ROOT / ".ci" / "floors.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$", text, flags=re.MULTILINE)
    return {name.lower(): version for name, version in pins}


def _requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)>=([0-9.]+)", requirement.replace(" ", ""))
        if match:
            found[match[1].lower()] = match[2]
    return found


def test_psycopg_floor_is_3_2_4_where_notifies_stopped_losing_notifications():
    # psycopg 3.2.4 news: "Don't lose notifies received whilst the notifies() iterator is
    # not running" (psycopg/psycopg#962); the live feed and `alerts --follow` use it.
    assert _requirements()["psycopg[binary]"] == "3.2.4"
    assert _floors()["psycopg[binary]"] == "3.2.4"


def test_every_floor_pinned_in_ci_is_the_floor_pyproject_allows():
    requirements = _requirements()
    for name, version in _floors().items():
        if name in requirements:
            assert requirements[name] == version, name
