"""Stack config and model catalog validation: every problem named, all at once, before anything is created."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import yaml

from planning import versions
from planning.catalog import CatalogError, load_catalog, parse_catalog
from planning.config import KEYS, ConfigError, StackConfig, parse_config
from planning.gpus import GPU_FAMILIES
from planning.instances import load_instances
from planning.keys import Secret, build, group, key, keys_of, one_of, parse_keys, readme_table, value_of, whole
from planning.models import CAPACITY_TYPES, FIELDS as MODEL_FIELDS, fit_models, k8s_name_for, parse_models
from tools import readme_config
from tests.conftest import BASE, CATALOG, ROOT, SECRETS, parse, plan_for, problems


def test_defaults():
    cfg = parse()
    assert cfg.cluster_name == "nim-on-eks-dev"
    assert cfg.eks_version == versions.DEFAULT_EKS_VERSION == "1.36"
    network = cfg.network
    assert (network.vpc_cidr, network.availability_zones, network.single_nat_gateway) == ("10.0.0.0/16", 3, True)
    assert (cfg.core.instance_type, cfg.core.node_count, cfg.core.node_max) == ("t4g.medium", 2, 4)
    assert (cfg.monitoring, cfg.open_webui, cfg.aiperf) == (True, True, False)
    [model] = cfg.models
    assert model.name == "meta/llama3-8b-instruct"
    assert model.k8s_name == "nim-llm-llama3-8b-instruct"
    assert (model.gpus, model.min_replicas, model.max_replicas) == (1, 1, 5)
    assert model.gpu_types == ("a10g", "l4", "l40s")
    assert model.capacity_types == ("spot", "on-demand")
    # scaling: always warm unless asked; NVIDIA's KV-cache target; no in-flight target unless set
    assert (model.idle_minutes, cfg.scale_to_zero_idle_minutes) == (20, 20)
    assert (model.target_kv_cache_percent, model.target_requests_running) == (50, None) and model.env == ()
    assert model.image_tag == CATALOG.models["meta/llama3-8b-instruct"].tag


def test_json_string_and_structured_config_give_the_same_models():
    structured = [{"name": "meta/llama-3.1-8b-instruct", "gpus": 2, "max_replicas": 3}, "meta/llama-3.2-1b-instruct"]
    from_json = parse(nim_models=json.dumps(structured))
    # `pulumi config set --path` stores numbers given on the command line as strings
    from_path = parse(nim_models=json.dumps([{"name": "meta/llama-3.1-8b-instruct", "gpus": "2", "max_replicas": "3"},
                                              "meta/llama-3.2-1b-instruct"]))
    assert from_json.models == from_path.models
    assert [m.gpus for m in from_json.models] == [2, 1]
    assert from_json.models[0].max_replicas == 3


def test_bare_names_are_accepted():
    cfg = parse(nim_models="meta/llama3-8b-instruct, meta/llama-3.2-1b-instruct")
    assert [m.name for m in cfg.models] == ["meta/llama3-8b-instruct", "meta/llama-3.2-1b-instruct"]


def test_overrides_and_tags():
    cfg = parse(cluster_name="team-a", eks_version="1.35", vpc_cidr="10.20.0.0/18", availability_zones="2",
                single_nat_gateway="false", tags='{"team": "ml", "cost-center": 42}', monitoring="False")
    assert (cfg.cluster_name, cfg.eks_version, cfg.network.vpc_cidr) == ("team-a", "1.35", "10.20.0.0/18")
    assert (cfg.network.availability_zones, cfg.network.single_nat_gateway, cfg.monitoring) == (2, False, False)
    assert cfg.aws_tags == {"project": "nim-on-eks", "stack": "dev", "nim-on-eks/cluster": "team-a",
                            "team": "ml", "cost-center": "42"}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"nim_models": '["meta/llama3-8b"]'},
         "nim_models[0].name: 'meta/llama3-8b' is not in the model catalog (did you mean 'meta/llama3-8b-instruct'?)"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "gpus": 0}]'},
         "nim_models[0].gpus: '0' is not valid; allowed: a whole number from 1 to 16"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "gpus": true}]'}, "nim_models[0].gpus"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "min_replicas": 4, "max_replicas": 2}]'},
         "nim_models[0]: min_replicas 4 is greater than max_replicas 2"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "image_tag": "latest"}]'},
         "nim_models[0].image_tag: 'latest' is not valid; allowed: a pinned image tag"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "replicas": 2}]'},
         "nim_models[0].replicas: unknown key (did you mean 'min_replicas'?); allowed: name, gpus, min_replicas"),
        ({"nim_models": '[{"gpus": 1}]'}, "nim_models[0].name: missing"),
        ({"nim_models": '["meta/llama3-8b-instruct", "meta/llama3-8b-instruct"]'},
         "nim_models[1].name: 'meta/llama3-8b-instruct' is listed twice (also nim_models[0]"),
        ({"nim_models": "[]"}, "nim_models: '[]' is not a non-empty list"),
        ({"nim_models": '[{"name": '}, "nim_models: '[{\"name\": ' is not valid JSON"),
        ({"nim_models": "[42]"}, "nim_models[0]: '42' is neither a model name nor an object"),
        ({"nim_models": None}, "nim_models: not set"),
        ({"ngc_api_key": None}, "ngc_api_key: not set; run `pulumi config set --secret ngc_api_key"),
        ({"vpc_cidr": "10.0.0.0/33"}, "vpc_cidr: '10.0.0.0/33' is not valid; not an IPv4 network in CIDR form"),
        ({"vpc_cidr": "10.0.0.1/16"}, "vpc_cidr: '10.0.0.1/16' is not valid; not an IPv4 network"),
        ({"vpc_cidr": "8.8.0.0/16"}, "vpc_cidr: '8.8.0.0/16' is not valid; allowed: a private (RFC 1918) range"),
        ({"vpc_cidr": "10.0.0.0/24"}, "allowed: a prefix from /16"),
        ({"availability_zones": "1"}, "availability_zones: '1' is not valid; allowed: a whole number from 2 to 6"),
        ({"availability_zones": "three"}, "availability_zones: 'three' is not valid"),
        ({"single_nat_gateway": "yes"}, "single_nat_gateway: 'yes' is not valid; allowed: true or false"),
        ({"eks_version": "1.29"}, "eks_version: '1.29' is not valid; allowed: one of 1.33, 1.34, 1.35, 1.36"),
        ({"cluster_name": "My_Cluster"}, "cluster_name: 'My_Cluster' is not valid; allowed: 2-32 lowercase"),
        ({"core_instance_type": "xlarge"}, "core_instance_type: 'xlarge' is not valid"),
        ({"core_node_count": "5", "core_node_max": "3"}, "core_node_count: 5 is greater than core_node_max 3"),
        ({"tags": '["a"]'}, "tags: '[\"a\"]' is not valid; allowed: a map of strings"),
        ({"tags": '{"aws:x": "1"}'}, "tag keys must be 1-128 characters and not start with aws:"),
        ({"tags": '{"kubernetes.io/cluster/x": "owned"}'}, "not start with aws:, kubernetes.io/cluster"),
        ({"tags": json.dumps({"team": "x" * 300})}, "values at most 256 characters"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "image_tag": 1.3}]'},
         "nim_models[0].image_tag: '1.3' is not valid; allowed: a pinned image tag"),
        ({"monitoring": "1"}, "monitoring: '1' is not valid; allowed: true or false"),
        ({"nim-on-eks:monitorng": "true"}, "nim-on-eks:monitorng: unknown key (did you mean 'monitoring'?)"),
        ({"cluster_admins": '["arn:aws:iam::12:role/x"]'}, "cluster_admins: '[\"arn:aws:iam::12:role/x\"]' is not valid"),
        ({"aws:region": None}, "aws:region: not set"),
        ({"aws:region": "mars-1"}, "aws:region: 'mars-1' is not an AWS region name"),
    ],
)
def test_each_bad_value_is_named_with_what_is_allowed(overrides, expected):
    found = problems(**overrides)
    assert any(expected in p for p in found), found


def test_all_problems_are_reported_together():
    found = problems(vpc_cidr="nope", monitoring="maybe", nim_models='["x/y", {"name": "meta/llama3-8b-instruct", "gpus": 9}]')
    assert len(found) == 4, found
    message = str(ConfigError(found))
    assert message.startswith("Invalid stack configuration (4 problems); nothing was created:")


def test_ngc_key_in_clear_text_is_refused():
    with pytest.raises(ConfigError) as info:
        parse_config(BASE, set(), "nim-on-eks", "dev", CATALOG)
    assert any("ngc_api_key: stored in clear text" in p for p in info.value.problems)


@pytest.mark.parametrize("length, ok", [(52, True), (53, False)])
def test_name_too_long_for_kubernetes(length, ok):
    """A StatefulSet's pods carry controller-revision-hash=<name>-<10 characters>: a label value of at most 63, so a
    name of at most 52 (Kubernetes API conventions, label values; StatefulSet controller)."""
    data = yaml.safe_load((ROOT / "models.yaml").read_text())
    short = "a" * (length - len("nim-llm-"))
    long_name = "acme/" + short
    data["models"][long_name] = dict(data["models"]["meta/llama3-8b-instruct"])
    catalog = parse_catalog(data)
    raw = {**BASE, "nim-on-eks:nim_models": json.dumps([long_name])}
    if ok:
        [model] = parse_config(raw, SECRETS, "nim-on-eks", "dev", catalog).models
        assert len(model.k8s_name) == length
        return
    with pytest.raises(ConfigError) as info:
        parse_config(raw, SECRETS, "nim-on-eks", "dev", catalog)
    assert "at most 52" in info.value.problems[0]


# Both sides of every documented range (README, configuration table): the last value allowed and the first refused.
@pytest.mark.parametrize(
    "key, allowed, refused",
    [
        ("availability_zones", "2", "1"),
        ("availability_zones", "6", "7"),
        ("core_node_count", "2", "1"),  # Karpenter's two replicas need two core nodes
        ("gpu_limit", "1", "0"),
        ("gpu_limit", "1024", "1025"),
        ("cpu_limit", "1", "0"),
        ("cpu_limit", "1024", "1025"),
        ("core_disk_gb", "20", "19"),  # the AL2023 AMI's root snapshot
        ("vpc_cidr", "10.0.0.0/16", "10.0.0.0/15"),  # /16 is the largest VPC AWS allows
        ("vpc_cidr", "10.0.0.0/20", "10.0.0.0/21"),
        ("alert_ttft_p90_seconds", "0.05", "0.04"),
        ("alert_ttft_p90_seconds", "600", "601"),
        ("efs_ia_after_days", "0", "2"),
        ("efs_ia_after_days", "365", "366"),
        ("scale_to_zero_idle_minutes", "5", "4"),  # below a cold start a model would thrash between 0 and 1
        ("scale_to_zero_idle_minutes", "1440", "1441"),
    ],
)
def test_range_boundaries(key, allowed, refused):
    value = value_of(parse(**{key: allowed}), key)
    assert value == type(value)(allowed)
    assert any(p.startswith(f"{key}: '{refused}' is not valid") for p in problems(**{key: refused}))


# ------------------------------------------------------------------------------- scaling: zero, idle, targets

MODEL = '[{"name": "meta/llama3-8b-instruct"%s}]'


def test_a_model_may_scale_to_zero_with_its_own_idle_time():
    cfg = parse(scale_to_zero_idle_minutes="45",
                nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 0, "idle_minutes": 10}, '
                           '{"name": "meta/llama-3.2-1b-instruct", "min_replicas": "0"}, "meta/llama-3.1-8b-instruct"]')
    assert [(m.min_replicas, m.idle_minutes) for m in cfg.models] == [(0, 10), (0, 45), (1, 45)]
    assert cfg.scale_to_zero_idle_minutes == 45


@pytest.mark.parametrize(
    "fields, expected",
    [
        (', "min_replicas": -1', "nim_models[0].min_replicas: '-1' is not valid; allowed: a whole number from 0 to 50"),
        (', "min_replicas": 0, "idle_minutes": 4',
         "nim_models[0].idle_minutes: '4' is not valid; allowed: a whole number from 5 to 1440"),
        (', "min_replicas": 0, "idle_minutes": 1441', "nim_models[0].idle_minutes: '1441' is not valid"),
        (', "min_replicas": 0, "idle_minutes": "soon"', "nim_models[0].idle_minutes: 'soon' is not valid"),
        (', "min_replicas": 0, "idle_minutes": true', "nim_models[0].idle_minutes: 'true' is not valid"),
        (', "idle_minutes": 30',
         "nim_models[0].idle_minutes: set, but min_replicas is 1, so the model never scales to zero"),
        (', "min_replicas": 2, "max_replicas": 3, "idle_minutes": 30', "but min_replicas is 2"),
        (', "min_replicas": 0, "max_replicas": 0', "nim_models[0].max_replicas: '0' is not valid"),
        (', "target_kv_cache_percent": 0',
         "nim_models[0].target_kv_cache_percent: '0' is not valid; allowed: a whole number from 5 to 95"),
        (', "target_kv_cache_percent": 100', "nim_models[0].target_kv_cache_percent: '100' is not valid"),
        (', "target_kv_cache_percent": "half"', "nim_models[0].target_kv_cache_percent: 'half' is not valid"),
        (', "target_requests_running": 0', "nim_models[0].target_requests_running: '0' is not valid"),
        (', "idle_time": 30', "nim_models[0].idle_time: unknown key (did you mean 'idle_minutes'?)"),
    ],
)
def test_bad_scaling_values_name_the_key(fields, expected):
    found = problems(nim_models=MODEL % fields)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("value", ["0", "abc", "1441", "true"])
def test_a_bad_stack_idle_time_names_the_key(value):
    [found] = problems(scale_to_zero_idle_minutes=value)
    assert found == f"scale_to_zero_idle_minutes: '{value}' is not valid; allowed: a whole number from 5 to 1440"


def test_targets_from_the_config():
    [model] = parse(nim_models=MODEL % ', "target_kv_cache_percent": "70", "target_requests_running": 8').models
    assert (model.target_kv_cache_percent, model.target_requests_running) == (70, 8)


def test_equal_counts_are_allowed():
    cfg = parse(core_node_count="3", core_node_max="3",
                nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 2, "max_replicas": 2}]')
    assert (cfg.core.node_count, cfg.core.node_max) == (3, 3)
    assert (cfg.models[0].min_replicas, cfg.models[0].max_replicas) == (2, 2)
    assert any("core_node_count: 4 is greater than core_node_max 3" in p
               for p in problems(core_node_count="4", core_node_max="3"))
    assert any("min_replicas 3 is greater than max_replicas 2" in p for p in problems(
        nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 3, "max_replicas": 2}]'))


@pytest.mark.parametrize("key, value", [("gpu_instance_families", '["g5", "g6", "g5"]'),
                                        ("gpu_capacity_types", '["spot", "spot"]'),
                                        ("gpu_instance_families", "g6,g6")])
def test_lists_must_be_distinct(key, value):
    assert any(p.startswith(f"{key}: ") and "a non-empty list of distinct" in p for p in problems(**{key: value}))


# Tag keys nobody may set: AWS reserves aws:, and Karpenter refuses or owns kubernetes.io/cluster, karpenter.sh,
# karpenter.k8s.aws (aws/karpenter-provider-aws @ 1d927085, website/content/en/v1.14/concepts/nodeclasses.md,
# spec.tags) and sets eks:eks-cluster-name itself (the getting-started policy's RequestTag conditions).
@pytest.mark.parametrize("key", ["aws:createdBy", "kubernetes.io/cluster/x", "karpenter.sh/nodepool",
                                 "karpenter.k8s.aws/ec2nodeclass", "eks:eks-cluster-name", "AWS:upper"])
def test_reserved_tag_keys_are_refused(key):
    assert any(p.startswith("tags: ") and "tag keys must be" in p for p in problems(tags=json.dumps({key: "x"})))


def test_ordinary_tags_are_accepted():
    assert parse(tags='{"team": "ml", "karpenter": "yes", "kubernetes.io/name": "x"}').tags == {
        "team": "ml", "karpenter": "yes", "kubernetes.io/name": "x"}


@pytest.mark.parametrize("name", ["NGC_API_KEY", "NIM_CACHE_PATH", "NIM_SERVER_PORT", "NIM_SERVED_MODEL_NAME"])
def test_env_that_nim_on_eks_sets_is_refused(name):
    """The StatefulSet sets these itself (key, cache mount, port the probes and Service use, the served name
    Open WebUI asks for): an override would be silently ignored or break the model."""
    found = problems(nim_models=json.dumps([{"name": "meta/llama3-8b-instruct", "env": {name: "x"}}]))
    assert any(f"nim_models[0].env: " in p and f"{name} is set by nim-on-eks" in p for p in found), found


@pytest.mark.parametrize(
    "name, expected",
    [("meta/llama3-8b-instruct", "nim-llm-llama3-8b-instruct"),
     ("meta/llama-3.1-8b-instruct", "nim-llm-llama-3-1-8b-instruct"),
     ("mistralai/mixtral-8x7b-instruct-v01", "nim-llm-mixtral-8x7b-instruct-v01")],
)
def test_kubernetes_names(name, expected):
    assert k8s_name_for(name) == expected


# ------------------------------------------------------------------------------- one declaration per key


def test_every_key_has_its_declared_row_in_the_readme():
    """README's tables are generated from the declarations: a key declared without its row, or a changed default or
    help text, fails here until `python -m tools.readme_config --write`."""
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `") for line in readme.splitlines() if line.startswith("| `")}
    missing = [name for name in [*KEYS, *MODEL_FIELDS] if name not in rows]
    assert not missing, f"README.md lacks rows for {missing}: run python -m tools.readme_config --write"
    assert readme_config.updated(readme) == readme, "README.md is out of date: python -m tools.readme_config --write"


@pytest.mark.parametrize("name", [name for name, k in KEYS.items() if not k.required and k.default is not None])
def test_an_unset_key_takes_its_declared_default(name):
    assert value_of(parse(), name) == KEYS[name].default


@dataclass(frozen=True)
class Depth:
    metres: int = key("demo_depth_m", whole(1, 3), 2, "How deep.")


@dataclass(frozen=True)
class Demo:
    colour: str = key("demo_colour", one_of(("red", "blue")), "red", "Which colour.")
    depth: Depth = group()
    label: str  # not a key


def test_one_declaration_gives_parsing_typed_access_messages_and_a_readme_row():
    """What adding a key takes: one field, like `Demo.colour`."""
    problems = []
    demo = build(Demo, parse_keys(keys_of(Demo), {"demo_depth_m": "3"}, set(), "", problems), label="x")
    assert (demo.colour, demo.depth.metres, demo.label, problems) == ("red", 3, "x", [])
    assert value_of(demo, "demo_depth_m") == 3
    parse_keys(keys_of(Demo), {"demo_colour": "green", "demo_depth_m": "9"}, set(), "", problems)
    assert problems == ["demo_colour: 'green' is not valid; allowed: one of red, blue",
                        "demo_depth_m: '9' is not valid; allowed: a whole number from 1 to 3"]
    assert readme_table(Demo, "key").splitlines()[2:] == ["| `demo_colour` | `red` | Which colour. |",
                                                          "| `demo_depth_m` | `2` | How deep. |"]


def test_grouped_settings_hold_every_key_once():
    cfg = parse()
    assert len(list(keys_of(StackConfig))) == len(KEYS)  # no key name declared twice
    assert (cfg.gpu.instance_families, cfg.gpu.capacity_types, cfg.gpu.limit, cfg.gpu.root_volume_gb) == (
        ("g5", "g6", "g6e"), ("spot", "on-demand"), 16, 40)
    assert cfg.gpu.ami_alias == versions.GPU_AMI_ALIAS
    assert (cfg.logs.types, cfg.logs.retention_days) == (("audit", "authenticator"), 30)
    assert (cfg.efs.backups, cfg.efs.ia_after_days, cfg.core.disk_gb) == (False, 0, 30)
    assert (cfg.cpu.instance_families, cfg.cpu.capacity_types, cfg.cpu.limit) == (
        ("m7g", "m8g", "c7g", "c8g", "m6g", "r7g", "m7i", "m6i", "c6i", "m5"), ("spot", "on-demand"), 16)
    assert (cfg.prometheus.retention, cfg.prometheus.volume_gb) == ("15d", 50)
    assert (cfg.alerts.ttft_p90_seconds, cfg.alerts.email) == (3.0, None)
    assert cfg.ngc_api_key == Secret("nvapi-test") and "nvapi" not in repr(cfg)


def test_a_secret_is_kept_exactly_as_given():
    """The NGC key goes into the pull secret as `pulumi config` holds it: no blanks dropped, nothing shown."""
    assert parse(ngc_api_key=" nvapi-test\n").ngc_api_key.value == " nvapi-test\n"
    assert repr(Secret("nvapi-test")) == "Secret('[secret]')"


# ---------------------------------------------------------------------------- models: parse, then fit


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("meta/llama3-8b-instruct", [("meta/llama3-8b-instruct", None, 1, 5, ("spot", "on-demand"))]),
        ("meta/llama3-8b-instruct, meta/llama-3.2-1b-instruct",
         [("meta/llama3-8b-instruct", None, 1, 5, ("spot", "on-demand")),
          ("meta/llama-3.2-1b-instruct", None, 1, 5, ("spot", "on-demand"))]),
        ('{"name": "meta/llama3-8b-instruct", "gpus": "2", "min_replicas": 3, "max_replicas": 3}',
         [("meta/llama3-8b-instruct", 2, 3, 3, ("spot", "on-demand"))]),
        ([{"name": "meta/llama3-8b-instruct", "capacity_types": ["on-demand"]}],
         [("meta/llama3-8b-instruct", None, 1, 5, ("on-demand",))]),
    ],
)
def test_parse_models_on_their_own(raw, expected):
    """Parsing needs the catalog and gpu_capacity_types, not GPU fitting: `gpus` stays unset until fitted."""
    specs, found = parse_models(raw, CATALOG, CAPACITY_TYPES)
    assert found == []
    assert [(s.name, s.gpus, s.min_replicas, s.max_replicas, s.capacity_types) for s in specs.values()] == expected
    assert list(specs) == [f"nim_models[{i}]" for i in range(len(expected))]
    assert all(s.image_tag == CATALOG.models[s.name].tag and s.k8s_name.startswith("nim-llm-") for s in specs.values())


@pytest.mark.parametrize(
    "raw, capacity_types, expected",
    [
        ("[]", CAPACITY_TYPES, ["nim_models: '[]' is not a non-empty list"]),
        ('[{"name": "meta/llama3-8b-instruct", "capacity_types": ["spot"]}]', ("on-demand",),
         ["nim_models[0].capacity_types: '[\"spot\"]' is not allowed by gpu_capacity_types '[\"on-demand\"]'"]),
        ('["x/y", {"name": "meta/llama3-8b-instruct", "gpus": 0, "colour": 1}]', CAPACITY_TYPES,
         ["nim_models[0].name: 'x/y' is not in the model catalog",
          "nim_models[1].colour: unknown key; allowed: name, gpus,",
          "nim_models[1].gpus: '0' is not valid; allowed: a whole number from 1 to 16"]),
    ],
)
def test_parse_models_problems(raw, capacity_types, expected):
    specs, found = parse_models(raw, CATALOG, capacity_types)
    assert specs == {} and len(found) == len(expected), found
    assert all(e in p for e, p in zip(expected, found)), found


GPU_INSTANCES = load_instances().in_families(GPU_FAMILIES)


@pytest.mark.parametrize(
    "entry, families, expected",
    [
        ({"name": "meta/llama3-8b-instruct"}, ("g5", "g6", "g6e"), (1, ("a10g", "l4", "l40s"), "g6.2xlarge")),
        ({"name": "meta/llama-3.1-70b-instruct", "gpus": 4}, ("g6e", "p5"), (4, ("l40s", "h100"), "g6e.12xlarge")),
        ({"name": "mistralai/mixtral-8x7b-instruct-v01"}, ("p5", "p5en"), (2, ("h100", "h200"), "p5.48xlarge")),
        ({"name": "meta/llama-3.1-70b-instruct", "gpus": 4}, ("g5", "g6"),
         "nim_models[0]: meta/llama-3.1-70b-instruct fits no instance with 4 GPUs in gpu_instance_families (g5, g6, "
         "at most 8 GPUs per node)"),
        ({"name": "meta/llama3-8b-instruct", "gpus": 9}, ("g5", "g6", "g6e"),
         "nim_models[0]: meta/llama3-8b-instruct asks for 9 GPUs per replica, more than any instance"),
    ],
)
def test_fit_models(entry, families, expected):
    specs, found = parse_models([entry], CATALOG, CAPACITY_TYPES)
    assert found == []
    models, problems = fit_models(specs, CATALOG, families, GPU_INSTANCES)
    if isinstance(expected, str):
        assert models == () and len(problems) == 1 and problems[0].startswith(expected), problems
        return
    [model] = models
    assert (model.gpus, model.gpu_types, model.instance_types[0]) == expected and problems == []
    spec = specs["nim_models[0]"]
    assert (model.name, model.k8s_name, model.image_tag, model.env) == (spec.name, spec.k8s_name, spec.image_tag,
                                                                        spec.env)


def test_a_fitting_problem_names_the_entry_where_it_is_listed():
    """Entries that did not parse are not fitted; the others keep their place in the list in messages."""
    specs, found = parse_models('["x/y", {"name": "meta/llama-3.1-70b-instruct", "gpus": 4}]', CATALOG,
                                CAPACITY_TYPES)
    assert list(specs) == ["nim_models[1]"] and found[0].startswith("nim_models[0].name: 'x/y'")
    _, problems = fit_models(specs, CATALOG, ("g5", "g6"), GPU_INSTANCES)
    assert [p.split(" fits ")[0] for p in problems] == ["nim_models[1]: meta/llama-3.1-70b-instruct"]


# ---------------------------------------------------------------------------------------------- catalog


# ------------------------------------------------------------------------ the benchmark switch and its old name


def test_aiperf_switch():
    assert (parse().aiperf, parse().warnings) == (False, ())
    assert parse(aiperf="true").aiperf is True and parse(aiperf="true").warnings == ()


@pytest.mark.parametrize("value", ["true", "false"])
def test_genai_perf_is_read_as_aiperf_with_a_warning(value):
    cfg = parse(genai_perf=value)
    assert cfg.aiperf is (value == "true")
    [warning] = cfg.warnings
    assert warning.startswith("genai_perf is deprecated: it is read as aiperf")
    assert f"`pulumi config set aiperf {value}` and `pulumi config rm genai_perf`" in warning


@pytest.mark.parametrize("old, new", [("true", "true"), ("true", "false"), ("false", "true")])
def test_genai_perf_and_aiperf_both_set_is_an_error(old, new):
    [problem] = problems(genai_perf=old, aiperf=new)
    assert problem == (f"genai_perf: set together with aiperf ('{old}' and '{new}'); genai_perf is the old name of "
                       "aiperf; allowed: aiperf alone (`pulumi config rm genai_perf`)")


def test_genai_perf_must_be_a_boolean():
    assert problems(genai_perf="yes") == ["genai_perf: 'yes' is not valid; allowed: true or false"]


def test_genai_perf_switches_on_what_aiperf_does():
    """The alias decides what aiperf decides: the pod's room in the CPU pool (here: no amd64 family for it)."""
    found = problems(genai_perf="true", cpu_instance_families='["m7g"]')
    assert any("but aiperf (aiperf) runs on amd64 only" in p for p in found)
    assert problems(aiperf="true", cpu_instance_families='["m7g"]') == found
    assert not any("aiperf" in p for p in problems(genai_perf="false", cpu_instance_families='["m7g"]'))


REQUIRED_MODELS = ["meta/llama3-8b-instruct", "meta/llama-3.1-8b-instruct", "meta/llama-3.1-70b-instruct",
                   "mistralai/mixtral-8x7b-instruct-v01", "meta/llama-3.2-1b-instruct", "meta/llama-3.2-3b-instruct"]


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_catalog_entries(name):
    model = CATALOG.models[name]
    assert model.image == f"nvcr.io/nim/{name}"
    assert model.tag and model.tag != "latest"
    # sizing rules from the issue: ~4 GB cache and ~2 GB + 10 GB host memory per billion parameters
    assert model.cache_gib >= 4 * model.parameters_b
    assert model.memory_gib >= 2 * model.parameters_b + 10
    assert model.metrics_path == "/v1/metrics"
    assert set(model.min_gpus) >= {"a10g", "l40s", "a100-80gb", "h100"}


def test_catalog_big_models_need_big_gpus():
    seventy = CATALOG.models["meta/llama-3.1-70b-instruct"].min_gpus
    assert seventy["h100"] == seventy["a100-80gb"] == 4 and "l4" not in seventy
    assert CATALOG.models["meta/llama3-8b-instruct"].min_gpus["a10g"] == 1


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda e: e.update(tag="latest"), "tag: 'latest' is not a pinned tag"),
        (lambda e: e.update(image="nvcr.io/nim/meta/x:1.0"), "is not an image repository"),
        (lambda e: e.update(min_gpus={"v100": 1}), "min_gpus.v100: unknown GPU type"),
        (lambda e: e.update(min_gpus={"a10g": 0}), "min_gpus.a10g: 0 must be a whole number from 1 to 8"),
        (lambda e: e.pop("cache_gib"), "cache_gib: missing"),
        (lambda e: e.update(colour="red"), "colour: unknown field"),
        (lambda e: e.update(cpu="4"), "cpu: '4' has the wrong type"),
        (lambda e: e.update(metrics_path="metrics"), "must start with '/'"),
        (lambda e: e.pop("tokenizer"), "tokenizer: missing"),
        (lambda e: e.update(tokenizer="llama"), "tokenizer: 'llama' is not a Hugging Face repository"),
    ],
)
def test_catalog_validation(mutate, expected):
    data = yaml.safe_load((ROOT / "models.yaml").read_text())
    mutate(data["models"]["meta/llama3-8b-instruct"])
    with pytest.raises(CatalogError) as info:
        parse_catalog(data)
    assert any(expected in p for p in info.value.problems), info.value.problems


# --------------------------------------------------------------------------------- through the real program


def test_bad_config_stops_the_program_before_anything_is_created():
    plan = plan_for('nim_models=["meta/llama3-8b-instruct", {"name": "nope/nope", "gpus": 0}]')
    assert plan.error and plan.error.startswith("Invalid stack configuration (2 problems)")
    assert "nim_models[1].name: 'nope/nope'" in plan.error and "nim_models[1].gpus" in plan.error
    assert [r for r in plan.resources if r.custom] == []


def test_more_zones_than_the_region_has():
    plan = plan_for("availability_zones=6")
    assert "availability_zones: 6 requested, but this region has only 4 zones" in plan.error


def test_config_as_the_pulumi_engine_passes_it(monkeypatch):
    """Under `pulumi up` config arrives in PULUMI_CONFIG (JSON) and secret key names in PULUMI_CONFIG_SECRET_KEYS."""
    from planning import config as config_module

    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({**BASE, "nim-on-eks:monitoring": "false"}))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["nim-on-eks:ngc_api_key"]))
    raw, secrets = config_module._raw_runtime_config()
    assert raw["nim-on-eks:monitoring"] == "false" and "nim-on-eks:ngc_api_key" in secrets
    cfg = parse_config(raw, secrets, "nim-on-eks", "prod", CATALOG)
    assert cfg.monitoring is False and cfg.cluster_name == "nim-on-eks-prod"
