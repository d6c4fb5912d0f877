"""The fabric's REST API: a greedy Lambda proxy behind a Globus token authorizer.

Shape (fixed, so later routes plug in without changing the stack):
- ``GET /v1/health``, ``GET /v1/openapi.json``, ``GET /v1/docs``: no auth;
- ``ANY /v1/{proxy+}`` and ``ANY /api/{proxy+}`` (Octopus v3/v2 compatibility):
  the token authorizer;
- CORS preflight (``OPTIONS``) answered by API Gateway for the configured origins.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from fabric_constructs.encryption import encrypted_log_group

PUBLIC_PATHS = ("health", "openapi.json", "docs")
PROXY_ROOTS = ("v1", "api")
# A bearer token: rejected by API Gateway before the authorizer runs when malformed.
BEARER_TOKEN_PATTERN = r"^Bearer [-0-9a-zA-Z._~+/=]{8,4096}$"  # noqa: S105 (a regex)
AUTHORIZER_DENIALS_METRIC = "AuthorizerDenials"


class FabricRestApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        stage_name: str,
        handler: lambda_.IFunction,
        authorizer_handler: lambda_.IFunction,
        authorizer_cache_seconds: int,
        cors_origins: tuple[str, ...],
        throttling_rate_limit: float,
        throttling_burst_limit: int,
        log_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
        metrics_namespace: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = encrypted_log_group(
            self, "AccessLogs", key=log_key, retention_days=log_retention_days, retain=retain
        )
        cors = (
            apigw.CorsOptions(
                allow_origins=list(cors_origins),
                allow_methods=apigw.Cors.ALL_METHODS,
                allow_headers=["Authorization", "Content-Type", "Subject", "X-Request-Id"],
                max_age=cdk.Duration.hours(1),
            )
            if cors_origins
            else None
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=api_name,
            description="Octopus Event Fabric API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=stage_name,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # would log bearer tokens
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=throttling_rate_limit,
                throttling_burst_limit=throttling_burst_limit,
            ),
        )
        self.authorizer = apigw.TokenAuthorizer(
            self,
            "GlobusAuthorizer",
            handler=authorizer_handler,
            identity_source=apigw.IdentitySource.header("Authorization"),
            validation_regex=BEARER_TOKEN_PATTERN,
            results_cache_ttl=cdk.Duration.seconds(authorizer_cache_seconds),
        )
        self.validator = self.api.add_request_validator(
            "PathValidator", validate_request_parameters=True, validate_request_body=False
        )
        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        v1 = self.api.root.add_resource("v1")
        for path in PUBLIC_PATHS:
            v1.add_resource(path).add_method(
                "GET",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                request_validator=self.validator,
            )
        for root in PROXY_ROOTS:
            parent = v1 if root == "v1" else self.api.root.add_resource(root)
            parent.add_resource("{proxy+}").add_method(
                "ANY",
                integration,
                authorizer=self.authorizer,
                authorization_type=apigw.AuthorizationType.CUSTOM,
                request_parameters={"method.request.path.proxy": True},
                request_validator=self.validator,
            )

        # Denials (401/403) as a metric for the dashboard and alarms.
        logs.MetricFilter(
            self,
            "DenialsMetric",
            log_group=self.access_logs,
            metric_namespace=metrics_namespace,
            metric_name=AUTHORIZER_DENIALS_METRIC,
            filter_pattern=logs.FilterPattern.any(
                logs.FilterPattern.number_value("$.status", "=", 401),
                logs.FilterPattern.number_value("$.status", "=", 403),
            ),
            metric_value="1",
            default_value=0,
        )
