"""The offline plan: what `make plan` prints and what `--json` writes."""

from __future__ import annotations

import json
import re
import shutil


from tools import mockrun, plan as plan_cli
from tests.conftest import ROOT


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = plan_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_prints_the_tree_counts_and_outputs(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0
    for text in ["nim-on-eks:index:Network", "aws:ec2/vpc:Vpc", "aws:ec2/natGateway:NatGateway",
                 "eks:index:Cluster", "aws:eks/nodeGroup:NodeGroup", "pulumi:providers:kubernetes",
                 "nim-on-eks-dev-private-2", "configure_kubectl"]:
        assert text in out, text
    assert re.search(r"^  kubeconfig +\[secret\]$", out, re.M)
    assert "     6  aws:ec2/subnet:Subnet" in out
    assert "ngc_api_key is not set; the offline plan uses a placeholder secret" in out


def test_plan_json(tmp_path, capsys):
    target = tmp_path / "plan.json"
    code, _, _ = run_cli(capsys, "--json", str(target))
    assert code == 0
    doc = json.loads(target.read_text())
    assert doc["stack"] == "dev"
    assert set(doc["resources"][0]) >= {"type", "name", "urn", "parent", "dependencies", "inputs"}
    urns = {r["urn"] for r in doc["resources"]}
    by_name = {(r["type"], r["name"]): r for r in doc["resources"]}
    ng = by_name[("aws:eks/nodeGroup:NodeGroup", "nim-on-eks-dev-core")]
    assert ng["parent"] in urns
    cluster = by_name[("eks:index:Cluster", "nim-on-eks-dev-eks")]
    assert cluster["urn"] in ng["dependencies"]  # explicit depends_on
    subnet = by_name[("aws:ec2/subnet:Subnet", "nim-on-eks-dev-private-0")]
    assert by_name[("aws:ec2/vpc:Vpc", "nim-on-eks-dev-vpc")]["urn"] in subnet["dependencies"]  # via inputs
    assert doc["outputs"]["kubeconfig"] == "[secret]"
    assert mockrun.PLACEHOLDER_KEY not in target.read_text()


def test_bad_config_exits_non_zero_with_the_message(capsys):
    code, out, err = run_cli(capsys, "--set", 'nim_models=["meta/llama3-8b"]')
    assert code == 1 and out == ""
    assert err.startswith("error: Invalid stack configuration (1 problem); nothing was created:\n"
                          "  - nim_models[0].name: 'meta/llama3-8b' is not in the model catalog")
    assert "Traceback" not in err


def test_unknown_stack_and_bad_set(capsys):
    code, _, err = run_cli(capsys, "--stack", "nope")
    assert code == 2 and "no stack file Pulumi.nope.yaml" in err
    code, _, err = run_cli(capsys, "--set", "monitoring")
    assert code == 2 and "expected KEY=VALUE" in err


def test_encrypted_values_become_placeholder_secrets(tmp_path):
    for name in ("__main__.py", "models.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for package in ("components", "parts", "planning"):
        shutil.copytree(ROOT / package, tmp_path / package)
    (tmp_path / "Pulumi.enc.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  nim-on-eks:ngc_api_key:\n    secure: v1:AAAA\n"
        "  nim-on-eks:nim_models: '[\"meta/llama-3.2-1b-instruct\"]'\n")
    plan = mockrun.run("enc", root=tmp_path)
    assert plan.error is None, plan.error
    assert plan.notes == ["nim-on-eks:ngc_api_key is encrypted in Pulumi.enc.yaml; "
                          "the offline plan uses a placeholder secret"]
    assert plan.outputs["configure_kubectl"].startswith("aws eks --region eu-west-1 ")
