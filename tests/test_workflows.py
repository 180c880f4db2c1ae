"""The GitHub workflows stay least-privilege: what held in the security review, kept so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return data


def test_pull_request_workflow_reads_only_and_never_sees_secrets() -> None:
    text = (WORKFLOWS / "pr.yml").read_text(encoding="utf-8")
    workflow = load("pr.yml")
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    assert "${{ secrets." not in text and "pull_request_target" not in text
    for job in workflow["jobs"].values():
        assert "permissions" not in job
        checkout = next(
            s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
        )
        assert checkout["with"]["persist-credentials"] is False


def test_pages_workflow_grants_pages_write_to_the_deploy_job_only() -> None:
    workflow = load("pages.yml")
    assert workflow["permissions"] == {"contents": "read"}
    granted = {name: job.get("permissions") for name, job in workflow["jobs"].items()}
    assert granted == {"build": None, "deploy": {"pages": "write", "id-token": "write"}}
