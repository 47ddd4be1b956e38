"""Alert delivery: Alertmanager routes alerts to an Amazon SNS topic that emails `alert_email`.

Alertmanager (v0.34.0, the image kube-prometheus-stack 88.5.3 pins) publishes with its SNS notifier
(prometheus/alertmanager v0.34.0 docs/configuration.md `<sns_config>`, notify/sns/sns.go). It takes AWS credentials
from the AWS SDK for Go v2's default chain (awsconfig.LoadDefaultConfig with no keys, profile or role_arn set), whose
container credentials provider reads what the EKS Pod Identity agent injects (AWS_CONTAINER_CREDENTIALS_FULL_URI,
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE): supported since aws-sdk-go-v2 config v1.25.0 (2023-11-14, "EKS container
host in absolute/relative URIs in the HTTP credential provider"; EKS user guide pod-id-minimum-sdk: Go v2
release-2023-11-14); Alertmanager v0.34.0's go.mod has config v1.32.33. So an EKS Pod Identity association for
Alertmanager's service account is all it needs: no keys, no IRSA annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from planning import iam

# The AWS managed key of SNS. Its key policy (AWS-maintained, "Allow access through SNS for all principals in the
# account that are authorized to use SNS") lets every principal of this account use the key when the call comes
# through SNS in this region (kms:CallerAccount + kms:ViaService), so a same-account publisher needs no KMS
# permission of its own: the role below gets sns:Publish only. A customer managed key would be needed only for
# AWS service publishers (CloudWatch alarms, EventBridge), whose service principals that policy does not cover;
# SNS only publishes from Alertmanager here.
SNS_MANAGED_KEY = "alias/aws/sns"
RECEIVER = "sns-email"
NULL_RECEIVER = "null"
# Alerts that must never page anyone: Watchdog always fires (it proves the pipeline works: route it to a
# dead-man's switch, not to email), InfoInhibitor only exists to mute info alerts (the chart's rule says to route
# it to a null receiver).
SILENT_ALERTS = ("Watchdog", "InfoInhibitor")
# The chart's own inhibit rules (kube-prometheus-stack 88.5.3 values.yaml, alertmanager.config.inhibit_rules),
# restated: Helm replaces lists in values, and the config below is whole, so nothing of the chart's default stays
# implicit.
INHIBIT_RULES = [
    {"source_matchers": ["severity = critical"], "target_matchers": ["severity =~ warning|info"],
     "equal": ["namespace", "alertname"]},
    {"source_matchers": ["severity = warning"], "target_matchers": ["severity = info"],
     "equal": ["namespace", "alertname"]},
    {"source_matchers": ["alertname = InfoInhibitor"], "target_matchers": ["severity = info"], "equal": ["namespace"]},
    {"target_matchers": ["alertname = InfoInhibitor"]},
]
# SNS refuses a subject of 100 characters or more, or with a line break (Publish API, Subject: "UTF-8 text with no
# line breaks or control characters, and less than 100 characters long"); Alertmanager's default subject can be
# longer, so ours is cut at 99 characters (templates have no truncate function; reReplaceAll is Alertmanager's).
SUBJECT_LIMIT = 99


def topic_name(cluster_name: str) -> str:
    return f"{cluster_name}-alerts"


def subject_template(cluster_name: str) -> str:
    """`[<cluster>] FIRING:2 NimRequestsWaiting in nim`, at most SUBJECT_LIMIT characters, on one line."""
    return (
        '{{- $status := .Status | toUpper -}}'
        '{{- if eq .Status "firing" }}{{ $status = printf "%s:%d" $status (len .Alerts.Firing) }}{{ end -}}'
        '{{- $where := "" -}}{{- with .GroupLabels.namespace }}{{ $where = printf " in %s" . }}{{ end -}}'
        f'{{{{- reReplaceAll "(?s)^(.{{0,{SUBJECT_LIMIT}}}).*$" "$1" '
        f'(printf "[%s] %s %s%s" "{cluster_name}" $status .GroupLabels.alertname $where) -}}}}'
    )


def message_template(cluster_name: str, namespace: str, alertmanager_service: str) -> str:
    """Plain-text email body: each alert's summary, description, since when, its labels and runbook."""
    return (
        f'{{{{ len .Alerts.Firing }}}} firing, {{{{ len .Alerts.Resolved }}}} resolved in EKS cluster {cluster_name}.\n'
        '{{ range .Alerts }}\n'
        '[{{ .Status | toUpper }}] {{ .Labels.alertname }}{{ with .Labels.severity }} ({{ . }}){{ end }}\n'
        '{{ with .Annotations.summary }}{{ . }}\n{{ end }}'
        '{{ with .Annotations.description }}{{ . }}\n{{ end }}'
        'Since: {{ .StartsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}'
        '{{ if eq .Status "resolved" }}, resolved {{ .EndsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}{{ end }}\n'
        'Labels:{{ range .Labels.SortedPairs }} {{ .Name }}={{ .Value }}{{ end }}\n'
        '{{ with .Annotations.runbook_url }}Runbook: {{ . }}\n{{ end }}'
        '{{ end }}\n'
        f'Alertmanager: kubectl -n {namespace} port-forward svc/{alertmanager_service} 9093, '
        'then http://localhost:9093\n'
    )


def alertmanager_config(topic_arn: pulumi.Input[str], region: str, cluster_name: str, namespace: str,
                        alertmanager_service: str) -> dict[str, Any]:
    """The whole Alertmanager configuration (kube-prometheus-stack's `alertmanager.config`).

    Every field is in Alertmanager v0.34.0's docs/configuration.md: route (receiver, group_by, group_wait,
    group_interval, repeat_interval, routes, matchers), inhibit_rules, receivers with sns_configs (topic_arn,
    sigv4.region, subject, message, send_resolved), templates.
    """
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": RECEIVER,
            # one email per alert name and namespace; what fires together within a minute arrives together
            "group_by": ["alertname", "namespace"],
            "group_wait": "1m",
            "group_interval": "10m",  # new alerts of a group already notified: at most every 10 minutes
            "repeat_interval": "12h",  # still firing: remind twice a day, not every few minutes
            "routes": [{"receiver": NULL_RECEIVER, "matchers": [f'alertname = "{name}"']} for name in SILENT_ALERTS],
        },
        "inhibit_rules": INHIBIT_RULES,
        "receivers": [
            {"name": NULL_RECEIVER},
            {"name": RECEIVER, "sns_configs": [{
                "topic_arn": topic_arn,
                "sigv4": {"region": region},  # credentials: the SDK's default chain, i.e. EKS Pod Identity
                "subject": subject_template(cluster_name),
                "message": message_template(cluster_name, namespace, alertmanager_service),
                "send_resolved": True,
            }]},
        ],
        "templates": ["/etc/alertmanager/config/*.tmpl"],  # the chart's default
    }


def publish_policy(topic_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Alertmanager's role: publish to this one topic, nothing else (the SNS managed key needs no grant)."""
    return iam.document({"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn})


def topic_policy(topic_arn: pulumi.Input[str], publisher_role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Replaces SNS's default topic policy (every principal of the account may manage, subscribe and publish):
    Alertmanager's role may publish; nothing may publish without TLS."""
    return iam.document(
        {"Sid": "AlertmanagerPublishes", "Effect": "Allow", "Principal": {"AWS": publisher_role_arn},
         "Action": "sns:Publish", "Resource": topic_arn},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish",
         "Resource": topic_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    )


def receiver_warning(monitoring: bool, alert_email: str | None) -> str | None:
    """What `pulumi up` and the offline plan warn when alerts would reach nobody (None: they reach someone)."""
    if monitoring and not alert_email:
        return ("Alertmanager has no receiver: the NIM and cluster alerts fire but notify nobody. Set one with "
                "`pulumi config set alert_email you@example.com` (an SNS topic emails it; accept AWS's "
                "confirmation email once).")
    if alert_email and not monitoring:
        return (f"alert_email ({alert_email}) is set but monitoring is false: there is no Alertmanager, so no SNS "
                "topic is created and no alert is sent. Set monitoring to true to get alerts by email.")
    return None


@dataclass
class AlertsArgs:
    cluster_name: str  # names the topic and the role
    eks_cluster_name: pulumi.Input[str]  # the same name as an Output of the cluster: the association waits for it
    email: str
    namespace: str  # Alertmanager's namespace and service account, as the chart renders them
    service_account: str


class Alerts(pulumi.ComponentResource):
    """SNS topic (encrypted) with an email subscription, and Alertmanager's publish-only identity."""

    topic: aws.sns.Topic
    role: aws.iam.Role
    ready: list[pulumi.Resource]  # what must exist before Alertmanager starts

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.topic = aws.sns.Topic(
            f"{name}-topic",
            name=topic_name(args.cluster_name),
            display_name=f"{args.cluster_name} alerts",  # the sender name of the emails
            kms_master_key_id=SNS_MANAGED_KEY,
            opts=child,
        )
        # SNS emails the address a confirmation link; nothing is delivered until it is accepted. An unconfirmed
        # subscription cannot be deleted through the API (SNS drops it after 48 hours) and goes with the topic.
        self.subscription = aws.sns.TopicSubscription(
            f"{name}-email", topic=self.topic.arn, protocol="email", endpoint=args.email, opts=child,
        )

        self.role = aws.iam.Role(
            f"{name}-alertmanager",
            assume_role_policy=iam.to_json(iam.pod_identity_trust()),
            description=f"Alertmanager of {args.cluster_name}: publishes alerts to SNS",
            opts=child,
        )
        publish = aws.iam.RolePolicy(
            f"{name}-alertmanager-publish", role=self.role.name,
            policy=iam.to_json_output(publish_policy(self.topic.arn)), opts=child,
        )
        self.topic_policy = aws.sns.TopicPolicy(
            f"{name}-topic",
            arn=self.topic.arn,
            policy=iam.to_json_output(topic_policy(self.topic.arn, self.role.arn)),
            opts=child,
        )
        # Pods get the role's credentials only if the association exists when they start: Alertmanager waits for it.
        self.association = aws.eks.PodIdentityAssociation(
            f"{name}-alertmanager",
            cluster_name=args.eks_cluster_name,
            namespace=args.namespace,
            service_account=args.service_account,
            role_arn=self.role.arn,
            opts=child,
        )

        self.ready = [self.association, publish, self.topic_policy, self.subscription]
        self.topic_arn = self.topic.arn
        self.register_outputs({"topic_arn": self.topic.arn, "role_arn": self.role.arn})
