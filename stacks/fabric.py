"""Composes the fabric's stacks for one stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
from constructs import Construct

from stacks.api_stack import ApiStack
from stacks.cluster_stack import ClusterStack
from stacks.config import StageConfig
from stacks.nag import acknowledge_findings
from stacks.network_stack import NetworkStack
from stacks.observability_stack import ObservabilityStack
from stacks.state_stack import StateStack
from stacks.triggers_stack import TriggersStack

if TYPE_CHECKING:
    # Imported only when configured (below): a stage without them never loads aws_ecs,
    # aws_elasticloadbalancingv2 and the rest (a fifth of an empty synth's time).
    from stacks.events_stack import EventsStack
    from stacks.storage_stack import StorageStack


@dataclass(frozen=True)
class Fabric:
    network: NetworkStack
    cluster: ClusterStack
    state: StateStack
    triggers: TriggersStack
    api: ApiStack
    observability: ObservabilityStack
    # Present only when configured (events.enabled, storage_events).
    events: EventsStack | None = None
    storage: StorageStack | None = None

    @property
    def stacks(self) -> list[cdk.Stack]:
        optional = [stack for stack in (self.events, self.storage) if stack is not None]
        return [
            self.network, self.cluster, self.state, self.triggers, self.api, *optional,
            self.observability,
        ]  # fmt: skip


def build_fabric(scope: Construct, config: StageConfig) -> Fabric:
    """Every stack of one stage; environment-agnostic so synth needs no credentials."""
    # Environment-agnostic unless the stage pins one (needed to look up an existing VPC).
    env = cdk.Environment(account=config.account, region=config.region) if config.account else None
    common: dict[str, object] = {"env": env, "description": "Octopus Event Fabric"}
    name = config.stack_name
    network = NetworkStack(
        scope, name("Network"), network=config.network, retain=config.retain, **common
    )
    cluster = ClusterStack(scope, name("Cluster"), config=config, network=network.network, **common)
    state = StateStack(scope, name("State"), retain=config.retain, **common)
    triggers = TriggersStack(
        scope,
        name("Triggers"),
        kafka=cluster.kafka,
        function_prefix=f"octopus-trigger-{config.stage}-",
        role_path=f"/octopus/triggers/{config.stage}/",
        secret_prefix=config.trigger_secret_prefix,
        retain=config.retain,
        **common,
    )
    api = ApiStack(
        scope,
        name("Api"),
        config=config,
        network=network.network,
        kafka=cluster.kafka,
        bootstrap_servers=cluster.client_bootstrap_servers,
        internal_bootstrap_servers=cluster.brokers.private,
        registry=state.registry,
        triggers=triggers.support,
        **common,
    )
    events = None
    if config.events.enabled:
        from stacks.events_stack import EventsStack  # only when configured

        events = EventsStack(
            scope,
            name("Events"),
            config=config,
            network=network.network,
            kafka=cluster.kafka,
            bootstrap_servers=cluster.client_bootstrap_servers,
            internal_bootstrap_servers=cluster.brokers.private,
            registry=state.registry,
            code=triggers.support.template,
            **common,
        )
    storage = None
    if config.storage_events:
        from stacks.storage_stack import StorageStack  # only when configured

        storage = StorageStack(
            scope,
            name("Storage"),
            config=config,
            network=network.network,
            kafka=cluster.kafka,
            bootstrap_servers=cluster.client_bootstrap_servers,
            internal_bootstrap_servers=cluster.brokers.private,
            **common,
        )
    observability = ObservabilityStack(
        scope,
        name("Observability"),
        config=config,
        api=api.rest.api,
        api_function=api.api_function.function,
        authorizer_function=api.authorizer_function.function,
        dead_letter_queue=triggers.support.dead_letter_queue,
        metrics_namespace=api.metrics_namespace,
        trigger_function_prefix=triggers.support.function_prefix,
        stream_service=events.service if events is not None else None,
        storage_bridge=storage.bridge if storage is not None else None,
        **common,
    )
    fabric = Fabric(network, cluster, state, triggers, api, observability, events, storage)
    for stack in fabric.stacks:
        cdk.Tags.of(stack).add("project", "octopus-event-fabric")
        cdk.Tags.of(stack).add("stage", config.stage)
        for key, value in config.tags.items():
            cdk.Tags.of(stack).add(key, value)
    acknowledge_findings(fabric_stacks=fabric.stacks, config=config)
    return fabric
