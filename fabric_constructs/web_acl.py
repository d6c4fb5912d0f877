"""AWS WAF in front of the REST API: per-IP rate limit and AWS managed rule sets."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from fabric_constructs.encryption import encrypted_log_group


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _managed(
    name: str, priority: int, count_rules: tuple[str, ...] = ()
) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in count_rules
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )


class ApiWebAcl(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        stage_arn: str,
        rate_limit: int,
        log_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.acl = wafv2.CfnWebACL(
            self,
            "Acl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(name),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=_visibility("RateLimitPerIp"),
                ),
                # Event payloads are up to 1 MiB: the 8 KiB body rule only counts.
                _managed("AWSManagedRulesCommonRuleSet", 1, ("SizeRestrictions_BODY",)),
                _managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage_arn, web_acl_arn=self.acl.attr_arn
        )
        log_group_name = f"aws-waf-logs-{name}"  # WAF requires this prefix
        log_group = encrypted_log_group(
            self,
            "Logs",
            key=log_key,
            retention_days=log_retention_days,
            retain=retain,
            log_group_name=log_group_name,
        )
        logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.acl.attr_arn,
            log_destination_configs=[
                cdk.Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=log_group_name,
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            # Bearer tokens never reach the logs.
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(
                    single_header={"Name": "authorization"}
                )
            ],
        )
        logging.node.add_dependency(log_group)
