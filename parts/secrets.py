"""A value people read, kept in AWS Secrets Manager: the secret (named from a prefix, so a stack's re-creation never
collides) and its one version, both `<resource_name>` under `parent`."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def kept_secret(resource_name: str, *, name_prefix: str, description: str, value: pulumi.Input[str],
                parent: pulumi.Resource) -> aws.secretsmanager.Secret:
    secret = aws.secretsmanager.Secret(
        resource_name,
        name_prefix=name_prefix,
        description=description,
        recovery_window_in_days=0,  # destroy and re-create with the same name work at once
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # secret by itself, not only because its source may be marked so: the plan and state never show the value
    aws.secretsmanager.SecretVersion(resource_name, secret_id=secret.id, secret_string=pulumi.Output.secret(value),
                                     opts=pulumi.ResourceOptions(parent=parent))
    return secret
