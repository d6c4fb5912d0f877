"""Resource commands: key, namespace, topic, grant, trigger, admin.

Topics are addressed as ``NS/TOPIC``; a bare ``TOPIC`` is in your default namespace.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from octopus_client.cli.state import CliState, state
from octopus_client.models import Access
from octopus_client.names import TopicRef

# Above this size a function zip is uploaded instead of sent inline (base64 grows it by 4/3).
INLINE_CODE_MAX_BYTES = 600_000

key_app = typer.Typer(help="Broker keys (the secret is shown once).", no_args_is_help=True)
namespace_app = typer.Typer(help="Namespaces you own.", no_args_is_help=True)
topic_app = typer.Typer(help="Topics, addressed as NS/TOPIC (or TOPIC).", no_args_is_help=True)
grant_app = typer.Typer(help="Access for other identities.", no_args_is_help=True)
trigger_app = typer.Typer(help="Managed triggers (webhooks, functions).", no_args_is_help=True)
admin_app = typer.Typer(help="Operator commands (admins only).", no_args_is_help=True)

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
TopicArg = Annotated[str, typer.Argument(metavar="NS/TOPIC", help="Topic (NS/TOPIC or TOPIC).")]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=what)
        out[key] = value
    return out


def _confirm(cli: CliState, yes: bool, question: str) -> None:
    if not yes and not typer.confirm(question, err=True):
        raise typer.Abort()


def _prefix_ref(cli: CliState, address: str) -> TopicRef:
    """``NS/PREFIX`` (``NS/`` is the whole namespace) or ``PREFIX`` in the default namespace."""
    namespace, slash, prefix = address.partition("/")
    if slash:
        return TopicRef(namespace, prefix)
    return TopicRef(cli.fabric().default_namespace, address)


# -- keys ------------------------------------------------------------------------------------
@key_app.command("create")
def key_create(ctx: typer.Context, name: str) -> None:
    """Create a named key; prints the secret once."""
    cli = state(ctx)
    key = cli.fabric().create_key(name)

    def human() -> None:
        cli.out.print(f"key {key.key_id} ({key.name}, {key.kind})")
        cli.out.print(f"secret: {key.secret}")
        cli.err.print("[yellow]store the secret now: the fabric does not keep it[/yellow]")

    cli.emit(key, human)


@key_app.command("list")
def key_list(ctx: typer.Context) -> None:
    cli = state(ctx)
    keys = cli.fabric().list_keys()
    cli.emit(
        keys, lambda: cli.table(keys, ["key_id", "name", "kind", "created_at", "last_used_at"])
    )


@key_app.command("delete")
def key_delete(ctx: typer.Context, key_id: str) -> None:
    cli = state(ctx)
    cli.fabric().delete_key(key_id)
    cli.emit({"deleted": key_id}, lambda: cli.note(f"deleted key {key_id}"))


# -- namespaces ------------------------------------------------------------------------------
@namespace_app.command("create")
def namespace_create(ctx: typer.Context, name: str) -> None:
    cli = state(ctx)
    ns = cli.fabric().create_namespace(name)
    cli.emit(ns, lambda: cli.out.print(f"created namespace {ns.name}"))


@namespace_app.command("list")
def namespace_list(ctx: typer.Context) -> None:
    cli = state(ctx)
    items = cli.fabric().list_namespaces()
    cli.emit(items, lambda: cli.table(items, ["name", "is_default", "owner", "created_at"]))


@namespace_app.command("delete")
def namespace_delete(
    ctx: typer.Context,
    name: str,
    force: Annotated[bool, typer.Option(help="Delete its topics too.")] = False,
    yes: Yes = False,
) -> None:
    cli = state(ctx)
    _confirm(cli, yes, f"delete namespace {name}{' and all its topics' if force else ''}?")
    cli.fabric().delete_namespace(name, force=force)
    cli.emit({"deleted": name}, lambda: cli.note(f"deleted namespace {name}"))


# -- topics ----------------------------------------------------------------------------------
@topic_app.command("create")
def topic_create(
    ctx: typer.Context,
    topic: TopicArg,
    partitions: Annotated[int | None, typer.Option(min=1)] = None,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    created = fabric.create_topic(
        ref.namespace, ref.topic, partitions=partitions, configs=_pairs(config, "--config")
    )
    cli.emit(
        created,
        lambda: cli.out.print(
            f"created {ref} (Kafka name {created.kafka_name}, {created.partitions} partitions)"
        ),
    )


@topic_app.command("list")
def topic_list(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Argument(help="Default: your default namespace.")
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="Only topics under this prefix.")] = None,
) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    topics = list(fabric.iter_topics(namespace or fabric.default_namespace, prefix=prefix))
    cli.emit(
        topics,
        lambda: cli.table(topics, ["namespace", "name", "partitions", "state", "kafka_name"]),
    )


@topic_app.command("show")
def topic_show(ctx: typer.Context, topic: TopicArg) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    detail = fabric.get_topic(ref.namespace, ref.topic)

    def human() -> None:
        cli.out.print(f"[bold]{ref}[/bold]  kafka={detail.kafka_name}  state={detail.state}")
        cli.out.print(
            f"partitions={detail.partitions} replication={detail.replication_factor} "
            f"owner={detail.owner}"
        )
        for key, value in sorted(detail.configs.items()):
            cli.out.print(f"  {key} = {value}")
        if detail.grants:
            cli.table(detail.grants, ["grantee", "kind", "target", "access"])

    cli.emit(detail, human)


@topic_app.command("configure")
def topic_configure(
    ctx: typer.Context,
    topic: TopicArg,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE (repeatable).")] = None,
    reset: Annotated[
        list[str] | None, typer.Option("--reset", help="KEY back to the default (repeatable).")
    ] = None,
) -> None:
    cli = state(ctx)
    changes: dict[str, str | None] = dict(_pairs(set_, "--set"))
    changes.update(dict.fromkeys(reset or []))
    if not changes:
        raise typer.BadParameter("nothing to change: use --set KEY=VALUE or --reset KEY")
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    result = fabric.configure_topic(ref.namespace, ref.topic, changes)

    def human() -> None:
        for key in sorted(set(result.before) | set(result.after)):
            before, after = result.before.get(key), result.after.get(key)
            if before != after:
                cli.out.print(f"{key}: {before or '(default)'} -> {after or '(default)'}")

    cli.emit(result, human)


@topic_app.command("partitions")
def topic_partitions(
    ctx: typer.Context, topic: TopicArg, count: Annotated[int, typer.Argument(min=1)]
) -> None:
    """Increase the partition count (the local broker cannot: it answers a conflict)."""
    cli = state(ctx)
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    result = fabric.increase_partitions(ref.namespace, ref.topic, count)
    cli.emit(result, lambda: cli.out.print(f"{ref} now has {result.partitions} partitions"))


@topic_app.command("recreate")
def topic_recreate(ctx: typer.Context, topic: TopicArg, yes: Yes = False) -> None:
    """Drop every record: the topic comes back empty with the same settings."""
    cli = state(ctx)
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    _confirm(cli, yes, f"drop every record of {ref}?")
    result = fabric.recreate_topic(ref.namespace, ref.topic)
    cli.emit(result, lambda: cli.out.print(f"recreated {ref}"))


@topic_app.command("delete")
def topic_delete(ctx: typer.Context, topic: TopicArg, yes: Yes = False) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    _confirm(cli, yes, f"delete {ref}?")
    fabric.delete_topic(ref.namespace, ref.topic)
    cli.emit({"deleted": str(ref)}, lambda: cli.note(f"deleted {ref}"))


# -- grants ----------------------------------------------------------------------------------
PrefixFlag = Annotated[
    bool, typer.Option("--prefix", help="TARGET is a channel prefix NS/PREFIX (NS/ = all).")
]


@grant_app.command("add")
def grant_add(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NS/TOPIC, or NS/PREFIX with --prefix.")],
    identity: Annotated[str, typer.Argument(help="The grantee's identity (sub).")],
    access: Annotated[str, typer.Option(help="read, write or readwrite.")] = "read",
    prefix: PrefixFlag = False,
) -> None:
    cli = state(ctx)
    if access not in ("read", "write", "readwrite"):
        raise typer.BadParameter("must be read, write or readwrite", param_hint="--access")
    level: Access = access  # type: ignore[assignment]
    fabric = cli.fabric()
    if prefix:
        ref = _prefix_ref(cli, target)
        grant = fabric.grant_prefix(ref.namespace, ref.topic, identity, level)
    else:
        ref = fabric.topic_ref(target)
        grant = fabric.grant(ref.namespace, ref.topic, identity, level)
    what = f"prefix {ref.namespace}/{ref.topic}*" if prefix else str(ref)
    cli.emit(grant, lambda: cli.out.print(f"granted {access} on {what} to {identity}"))


@grant_app.command("list")
def grant_list(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(help="A topic; default: the namespace.")] = None,
    namespace: Annotated[str | None, typer.Option(help="All grants of this namespace.")] = None,
) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    if topic is not None:
        ref = fabric.topic_ref(topic)
        grants = fabric.list_topic_grants(ref.namespace, ref.topic)
    else:
        grants = fabric.list_grants(namespace or fabric.default_namespace)
    columns = ["namespace", "kind", "target", "grantee", "access", "granted_by"]
    cli.emit(grants, lambda: cli.table(grants, columns))


@grant_app.command("remove")
def grant_remove(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NS/TOPIC, or NS/PREFIX with --prefix.")],
    identity: str,
    prefix: PrefixFlag = False,
) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    if prefix:
        ref = _prefix_ref(cli, target)
        fabric.revoke_prefix(ref.namespace, ref.topic, identity)
    else:
        ref = fabric.topic_ref(target)
        fabric.revoke(ref.namespace, ref.topic, identity)
    cli.emit(
        {"revoked": identity, "target": str(ref), "prefix": prefix},
        lambda: cli.note(f"revoked {identity} on {ref}"),
    )


# -- triggers --------------------------------------------------------------------------------
@trigger_app.command("create")
def trigger_create(
    ctx: typer.Context,
    name: str,
    topic: Annotated[str, typer.Option(help="NS/TOPIC the trigger reads.")],
    webhook_url: Annotated[str | None, typer.Option(help="POST matching events here.")] = None,
    header: Annotated[list[str] | None, typer.Option(help="Webhook header K=V.")] = None,
    function_zip: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Function code (zip); sent inline up to 600 kB, uploaded above that.",
        ),
    ] = None,
    runtime: Annotated[str, typer.Option()] = "python3.12",
    handler: Annotated[str, typer.Option()] = "handler.handler",
    memory_mb: Annotated[int, typer.Option()] = 256,
    timeout_seconds: Annotated[int, typer.Option()] = 30,
    env: Annotated[list[str] | None, typer.Option(help="Function environment K=V.")] = None,
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", help="A filter pattern (JSON, repeatable).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 100,
    batching_window_seconds: Annotated[int, typer.Option("--window", min=0)] = 0,
    starting_position: Annotated[str, typer.Option()] = "LATEST",
    max_retries: Annotated[int, typer.Option(min=0)] = 3,
    disabled: Annotated[bool, typer.Option(help="Create it disabled.")] = False,
) -> None:
    """Create a webhook (--webhook-url) or function (--function-zip) trigger."""
    cli = state(ctx)
    if (webhook_url is None) == (function_zip is None):
        raise typer.BadParameter("give exactly one of --webhook-url or --function-zip")
    fabric = cli.fabric()
    ref = fabric.topic_ref(topic)
    try:
        filters = [json.loads(f) for f in filter_ or []]
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    body: dict[str, Any] = {
        "name": name,
        "namespace": ref.namespace,
        "topic": ref.topic,
        "kind": "webhook" if webhook_url else "function",
        "filters": filters,
        "batch_size": batch_size,
        "batching_window_seconds": batching_window_seconds,
        "starting_position": starting_position.upper(),
        "enabled": not disabled,
        "max_retries": max_retries,
    }
    if webhook_url:
        body["webhook"] = {"url": webhook_url, "headers": _pairs(header, "--header")}
    else:
        assert function_zip is not None
        # Inline code travels base64 in the JSON body (the fabric caps bodies at ~1 MiB):
        # larger zips go through an upload.
        if function_zip.stat().st_size > INLINE_CODE_MAX_BYTES:
            code: dict[str, str] = {"code_upload_id": fabric.upload_trigger_code(function_zip)}
        else:
            code = {"code_base64": base64.b64encode(function_zip.read_bytes()).decode("ascii")}
        body["function"] = {
            "runtime": runtime,
            "handler": handler,
            **code,
            "memory_mb": memory_mb,
            "timeout_seconds": timeout_seconds,
            "environment": _pairs(env, "--env"),
        }
    trigger = fabric.create_trigger(body)

    def human() -> None:
        cli.out.print(f"created trigger {trigger.trigger_id} ({trigger.kind}) on {ref}")
        if trigger.webhook_secret:
            cli.out.print(f"webhook secret: {trigger.webhook_secret}")
            cli.err.print("[yellow]store the secret now: it is shown once[/yellow]")

    cli.emit(trigger, human)


@trigger_app.command("list")
def trigger_list(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option()] = None,
    topic: Annotated[str | None, typer.Option(help="Only triggers on this topic name.")] = None,
) -> None:
    cli = state(ctx)
    triggers = list(cli.fabric().iter_triggers(namespace=namespace, topic=topic))
    columns = ["trigger_id", "name", "kind", "namespace", "topic", "state", "enabled"]
    cli.emit(triggers, lambda: cli.table(triggers, columns))


@trigger_app.command("show")
def trigger_show(ctx: typer.Context, trigger_id: str) -> None:
    cli = state(ctx)
    trigger = cli.fabric().get_trigger(trigger_id)
    cli.emit(trigger)


@trigger_app.command("logs")
def trigger_logs(
    ctx: typer.Context,
    trigger_id: str,
    since: Annotated[str | None, typer.Option(help="ISO time to start from.")] = None,
    dead_letters: Annotated[
        bool, typer.Option("--dead-letters", help="Show what failed permanently instead.")
    ] = False,
) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    if dead_letters:
        letters = list(fabric.iter_dead_letters(trigger_id))
        columns = ["failed_at", "topic", "partition", "offset", "reason"]
        cli.emit(letters, lambda: cli.table(letters, columns))
        return
    entries = list(fabric.iter_trigger_logs(trigger_id, since=since))

    def human() -> None:
        for entry in entries:
            cli.out.print(f"{entry.timestamp.isoformat()}  {entry.message}", markup=False)

    cli.emit(entries, human)


def _set_enabled(ctx: typer.Context, trigger_id: str, enabled: bool) -> None:
    cli = state(ctx)
    fabric = cli.fabric()
    trigger = fabric.enable_trigger(trigger_id) if enabled else fabric.disable_trigger(trigger_id)
    word = "enabled" if enabled else "disabled"
    cli.emit(trigger, lambda: cli.out.print(f"{word} trigger {trigger_id} (state {trigger.state})"))


@trigger_app.command("enable")
def trigger_enable(ctx: typer.Context, trigger_id: str) -> None:
    _set_enabled(ctx, trigger_id, True)


@trigger_app.command("disable")
def trigger_disable(ctx: typer.Context, trigger_id: str) -> None:
    _set_enabled(ctx, trigger_id, False)


@trigger_app.command("delete")
def trigger_delete(ctx: typer.Context, trigger_id: str, yes: Yes = False) -> None:
    cli = state(ctx)
    _confirm(cli, yes, f"delete trigger {trigger_id}?")
    cli.fabric().delete_trigger(trigger_id)
    cli.emit({"deleted": trigger_id}, lambda: cli.note(f"deleted trigger {trigger_id}"))


# -- admin -----------------------------------------------------------------------------------
@admin_app.command("reconcile")
def admin_reconcile(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option(help="Fix the drift, not just report it.")] = False,
) -> None:
    """Report (and with --repair fix) drift between registry, broker and IAM."""
    cli = state(ctx)
    report = cli.fabric().reconcile(repair=repair)

    def human() -> None:
        cli.out.print(
            f"checked {report.checked_topics} registry topics, "
            f"{report.checked_broker_topics} broker topics: "
            + ("no drift" if report.clean else f"{len(report.drift)} differences")
        )
        if report.drift:
            cli.table(report.drift, ["kind", "target", "detail", "repaired", "error"])

    cli.emit(report, human)


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")
    app.add_typer(namespace_app, name="namespace")
    app.add_typer(topic_app, name="topic")
    app.add_typer(grant_app, name="grant")
    app.add_typer(trigger_app, name="trigger")
    app.add_typer(admin_app, name="admin")
