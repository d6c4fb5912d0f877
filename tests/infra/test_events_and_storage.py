"""The event-stream service (ECS behind an HTTPS-only ALB) and the storage-event bridge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fabric_constructs.lambda_code import bundle_hash
from runtime.config import RuntimeSettings
from stacks.config import load_stage_config
from tests.infra.synthesis import CONTEXT, STAGES, Synthesized

pytestmark = pytest.mark.infra

WITH_EVENTS = [s for s in STAGES if CONTEXT["stages"][s].get("events", {}).get("enabled")]
WITH_STORAGE = [s for s in STAGES if CONTEXT["stages"][s].get("storage_events")]


def _config(stage: str) -> Any:
    return load_stage_config({"stage": stage, "stages": CONTEXT["stages"]})


def _of_type(template: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(k, r) for k, r in template["Resources"].items() if r["Type"] == kind]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _flat(value: Any) -> str:
    """A Fn::Join'ed string with its tokens rendered as X (to parse JSON settings)."""
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(p if isinstance(p, str) else "X" for p in value["Fn::Join"][1])
    return str(value)


def test_examples_cover_the_new_parts_and_dev_has_neither() -> None:
    assert WITH_EVENTS == ["prod", "staging"] and WITH_STORAGE == ["staging"]


def test_optional_stacks_exist_only_where_configured(synthesized: dict[str, Synthesized]) -> None:
    for stage, s in synthesized.items():
        assert (f"Octopus-{stage}-Events" in s.templates) == (stage in WITH_EVENTS)
        assert (f"Octopus-{stage}-Storage" in s.templates) == (stage in WITH_STORAGE)


@pytest.mark.parametrize("stage", WITH_EVENTS)
def test_alb_is_https_only_with_the_configured_certificate(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    events = synthesized[stage].template("Events")
    config = _config(stage).events
    listeners = {r["Properties"]["Port"]: r["Properties"] for _, r in _of_type(
        events, "AWS::ElasticLoadBalancingV2::Listener"
    )}  # fmt: skip
    assert set(listeners) == {443, 80}
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": config.certificate_arn}]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert [a["Type"] for a in https["DefaultActions"]] == ["forward"]
    http = listeners[80]
    assert http["DefaultActions"] == [
        {
            "Type": "redirect",
            "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"},
        }
    ]
    ((_, alb),) = _of_type(events, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["idle_timeout.timeout_seconds"] == str(config.idle_timeout_seconds)
    assert attributes["deletion_protection.enabled"] == str(stage == "prod").lower()
    assert attributes["access_logs.s3.enabled"] == "true"
    ((bucket_id, bucket),) = _of_type(events, "AWS::S3::Bucket")
    assert attributes["access_logs.s3.bucket"] == {"Ref": bucket_id}
    encryption = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    ((_, bucket_policy),) = _of_type(events, "AWS::S3::BucketPolicy")
    assert "aws:SecureTransport" in json.dumps(bucket_policy)
    # The WAF protects the ALB like the REST API.
    ((_, association),) = _of_type(events, "AWS::WAFv2::WebACLAssociation")
    assert association["Properties"]["ResourceArn"] == {"Ref": _of_type(
        events, "AWS::ElasticLoadBalancingV2::LoadBalancer"
    )[0][0]}  # fmt: skip


@pytest.mark.parametrize("stage", WITH_EVENTS)
def test_network_paths_alb_from_cidrs_tasks_from_alb_tasks_to_brokers(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    events = synthesized[stage].template("Events")
    config = _config(stage).events
    groups = dict(_of_type(events, "AWS::EC2::SecurityGroup"))
    alb_sg = next(k for k in groups if k.startswith("StreamsAlbSecurityGroup"))
    task_sg = next(k for k in groups if k.startswith("StreamsTaskSecurityGroup"))
    alb_ingress = groups[alb_sg]["Properties"]["SecurityGroupIngress"]
    assert {(r["CidrIp"], r["FromPort"]) for r in alb_ingress} == {
        (cidr, port) for cidr in config.allowed_cidrs for port in (443, 80)
    }
    assert "SecurityGroupIngress" not in groups[task_sg]["Properties"]
    ingress = [r["Properties"] for _, r in _of_type(events, "AWS::EC2::SecurityGroupIngress")]
    into_tasks = [i for i in ingress if i["GroupId"] == {"Fn::GetAtt": [task_sg, "GroupId"]}]
    assert into_tasks == [
        {
            "Description": "Load balancer to target",
            "FromPort": 8080,
            "ToPort": 8080,
            "GroupId": {"Fn::GetAtt": [task_sg, "GroupId"]},
            "IpProtocol": "tcp",
            "SourceSecurityGroupId": {"Fn::GetAtt": [alb_sg, "GroupId"]},
        }
    ]
    to_brokers = [i for i in ingress if "ClusterSecurityGroup" in json.dumps(i["GroupId"])]
    assert [(i["FromPort"], i["SourceSecurityGroupId"]) for i in to_brokers] == [
        (9098, {"Fn::GetAtt": [task_sg, "GroupId"]})
    ]
    egress = [r["Properties"] for _, r in _of_type(events, "AWS::EC2::SecurityGroupEgress")]
    assert {(e["GroupId"]["Fn::GetAtt"][0], e["FromPort"]) for e in egress} == {
        (alb_sg, 8080),
        (task_sg, 9098),
    }
    ((_, service),) = _of_type(events, "AWS::ECS::Service")
    network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert "private" in json.dumps(network["Subnets"]).lower()


@pytest.mark.parametrize("stage", WITH_EVENTS)
def test_task_runs_the_runtime_bundle_under_uvicorn_with_globus_identity(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    events = synthesized[stage].template("Events")
    config = _config(stage).events
    ((_, task),) = _of_type(events, "AWS::ECS::TaskDefinition")
    props = task["Properties"]
    assert props["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    assert (props["Cpu"], props["Memory"]) == (str(config.cpu), str(config.memory_mib))
    (container,) = props["ContainerDefinitions"]
    assert container["Image"] == config.base_image
    assert container["EntryPoint"] == ["python3", "-c"]
    boot, *server = container["Command"]
    assert "def bundle_hash(" in boot and "ExpectedBucketOwner" in boot
    assert server[:7] == [
        "uvicorn", "--factory", "runtime.streams.service:create_service_app",
        "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    # uvicorn keeps idle connections open longer than the ALB does.
    assert int(server[server.index("--timeout-keep-alive") + 1]) > config.idle_timeout_seconds
    # One uvicorn process per vCPU (a stream's work holds its process's GIL).
    assert int(server[server.index("--workers") + 1]) == max(1, config.cpu // 1024)
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    settings = RuntimeSettings.model_validate_json(_flat(env["OCTOPUS_SETTINGS"]))
    assert settings.identity == "globus" and settings.stage == stage
    assert settings.registry == "dynamodb"
    assert env["OCTOPUS_CODE_HASH"] == bundle_hash()
    # The same S3 object as the Lambda functions' code (the webhook template asset).
    assert (
        env["OCTOPUS_CODE_KEY"] == synthesized[stage].fabric.triggers.support.template.s3_object_key
    )
    assert env["OCTOPUS_CODE_OWNER"] == {"Ref": "AWS::AccountId"}
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    ((_, targets),) = _of_type(events, "AWS::ElasticLoadBalancingV2::TargetGroup")
    tp = targets["Properties"]
    assert (tp["Port"], tp["Protocol"], tp["TargetType"]) == (8080, "HTTP", "ip")
    assert tp["HealthCheckPath"] == "/v1/health" and tp["Matcher"] == {"HttpCode": "200"}
    ((_, service),) = _of_type(events, "AWS::ECS::Service")
    assert service["Properties"]["DesiredCount"] == config.desired_count
    ((_, cluster),) = _of_type(events, "AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"][
        "ClusterSettings"
    ]


@pytest.mark.parametrize("stage", WITH_EVENTS)
def test_task_role_only_reads(synthesized: dict[str, Synthesized], stage: str) -> None:
    events = synthesized[stage].template("Events")
    (policy,) = [r for k, r in events["Resources"].items() if k.startswith("StreamsTaskPolicy")]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    actions = {sid: set(_as_list(s["Action"])) for sid, s in statements.items()}
    assert actions == {
        "ConnectToThisCluster": {"kafka-cluster:Connect"},
        "ReadTopics": {"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"},
        "ReadRegistry": {
            "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable",
        },
        "RegistryEncryption": {"kms:Decrypt", "kms:DescribeKey"},
        "GlobusClientSecret": {"secretsmanager:GetSecretValue"},
        "CodeBundle": {"s3:GetObject"},
    }  # fmt: skip
    topics = json.dumps(statements["ReadTopics"]["Resource"])
    assert ":topic/" in topics and ":group/" not in json.dumps(policy)
    code_key = synthesized[stage].fabric.triggers.support.template.s3_object_key
    assert json.dumps(statements["CodeBundle"]["Resource"]).endswith(f'"/{code_key}"]]}}')
    secret_name = _config(stage).globus.secret_name
    assert f"secret:{secret_name}-??????" in json.dumps(statements["GlobusClientSecret"])
    ((role_id, role),) = [
        (k, r) for k, r in _of_type(events, "AWS::IAM::Role") if k.startswith("StreamsTaskRole")
    ]
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": next(
        k for k in events["Resources"] if k.startswith("StreamsTaskPolicy")
    )}]  # fmt: skip
    ((_, task),) = _of_type(events, "AWS::ECS::TaskDefinition")
    assert task["Properties"]["TaskRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    # Nothing but the execution role's generated log policy is attached inline.
    inline = [r for _, r in _of_type(events, "AWS::IAM::Policy")]
    assert all(
        set(_as_list(s["Action"])) <= {"logs:CreateLogStream", "logs:PutLogEvents"}
        for r in inline
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    )


@pytest.mark.parametrize("stage", WITH_STORAGE)
def test_bridge_writes_only_the_configured_topics(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    s = synthesized[stage]
    storage = s.template("Storage")
    routes = _config(stage).storage_events
    ((_, function),) = [
        (k, r)
        for k, r in _of_type(storage, "AWS::Lambda::Function")
        if r["Properties"].get("Handler") == "runtime.handlers.s3_bridge.handler"
    ]
    env = function["Properties"]["Environment"]["Variables"]
    assert json.loads(env["OCTOPUS_STORAGE_ROUTES"]) == [
        {"bucket": r.bucket, "topic": r.topic, "prefix": r.prefix} for r in routes
    ]
    assert "VpcConfig" in function["Properties"]
    (permissions,) = [
        r for k, r in storage["Resources"].items() if k.startswith("StorageEventsBridgePermissions")
    ]
    statements = {st["Sid"]: st for st in permissions["Properties"]["PolicyDocument"]["Statement"]}
    cluster = statements["ProduceIdempotently"]
    assert set(cluster["Action"]) == {
        "kafka-cluster:Connect",
        "kafka-cluster:WriteDataIdempotently",
    }
    assert "topic/" not in json.dumps(cluster["Resource"])
    write = statements["WriteConfiguredTopics"]
    assert set(write["Action"]) == {"kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"}
    resources = _as_list(write["Resource"])
    topics = sorted({r.topic for r in routes})
    assert len(resources) == len(topics)
    for resource, topic in zip(resources, topics, strict=True):
        text = json.dumps(resource)
        assert text.endswith(f'/{topic}"]]}}') and "*" not in text
    kafka_actions = {
        a
        for st in statements.values()
        for a in _as_list(st["Action"])
        if a.startswith("kafka-cluster:")
    }
    assert not {a for a in kafka_actions if "Read" in a or "Group" in a or "Create" in a}


@pytest.mark.parametrize("stage", WITH_STORAGE)
def test_notifications_reach_the_bridge_through_an_encrypted_queue_with_a_dlq(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    storage = synthesized[stage].template("Storage")
    routes = _config(stage).storage_events
    queues = dict(_of_type(storage, "AWS::SQS::Queue"))
    main = next(k for k in queues if k.startswith("StorageEventsQueue"))
    dlq = next(k for k in queues if k.startswith("StorageEventsDeadLetterQueue"))
    for props in (queues[main]["Properties"], queues[dlq]["Properties"]):
        assert "KmsMasterKeyId" in props
    redrive = queues[main]["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 5}
    ((_, mapping),) = _of_type(storage, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [main, "Arn"]}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    notifications = [r["Properties"] for _, r in _of_type(storage, "Custom::S3BucketNotifications")]
    assert sorted(n["BucketName"] for n in notifications) == sorted({r.bucket for r in routes})
    expected = {
        "created": {"s3:ObjectCreated:*"},
        "removed": {"s3:ObjectRemoved:*"},
        "restored": {
            "s3:ObjectRestore:Post", "s3:ObjectRestore:Completed", "s3:ObjectRestore:Delete",
        },
        "tagging": {"s3:ObjectTagging:*"},
    }  # fmt: skip
    for route in routes:
        (notification,) = [n for n in notifications if n["BucketName"] == route.bucket]
        configs = notification["NotificationConfiguration"]["QueueConfigurations"]
        events = {
            e
            for c in configs
            for e in c["Events"]
            if c["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": route.prefix}]
        }
        assert events == set().union(*(expected[kind] for kind in route.events))
        assert all(c["QueueArn"] == {"Fn::GetAtt": [main, "Arn"]} for c in configs)
    # S3 may send only for the configured buckets.
    (queue_policy,) = [
        r for k, r in storage["Resources"].items() if k.startswith("StorageEventsQueuePolicy")
    ]
    text = json.dumps(queue_policy)
    for route in routes:
        assert f":s3:::{route.bucket}" in text


@pytest.mark.parametrize("stage", STAGES)
def test_dashboard_and_alarms_cover_streams_and_bridge_where_deployed(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    observability = synthesized[stage].template("Observability")
    alarms = {
        k.removeprefix("Monitoring").rstrip("0123456789ABCDEF")
        for k, _ in _of_type(observability, "AWS::CloudWatch::Alarm")
    }
    streams = {"StreamsServerErrors", "StreamsResponseTime", "StreamsNoHealthyTask"}
    bridge = {"StorageBridgeErrors", "StorageEventDeadLetters"}
    assert (streams <= alarms) == (stage in WITH_EVENTS)
    assert (bridge <= alarms) == (stage in WITH_STORAGE)
    ((_, dashboard),) = _of_type(observability, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert ("HealthyHostCount" in body and "TargetResponseTime" in body) == (stage in WITH_EVENTS)
    assert ("Storage bridge" in body) == (stage in WITH_STORAGE)
    for _, alarm in _of_type(observability, "AWS::CloudWatch::Alarm"):
        assert alarm["Properties"]["AlarmActions"]


@pytest.mark.parametrize(("cpu", "workers"), [(256, 1), (512, 1), (1024, 1), (2048, 2), (4096, 4)])
def test_uvicorn_runs_one_process_per_vcpu_and_accepts_the_command(cpu: int, workers: int) -> None:
    from uvicorn.main import main as uvicorn_main

    from fabric_constructs.stream_service import server_command

    command = server_command(300, cpu)
    assert command[0] == "uvicorn"
    # uvicorn's own command line parses and converts every option (an unknown option or a
    # bad value raises) without serving.
    params = uvicorn_main.make_context("uvicorn", command[1:]).params
    assert params["workers"] == workers
    assert params["factory"] is True and params["port"] == 8080
    assert params["timeout_keep_alive"] == 305
