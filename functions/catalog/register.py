"""Steps 3.1 to 3.3: store the plugin and start its registration run.

The catalog answers as soon as the run is started or queued; how the run
ends reaches the dispatcher later, as an event. Every step is idempotent, so
that a redelivered command stores one plugin revision and starts one run.
"""

from __future__ import annotations

import logging

from cloudevents.http import CloudEvent

from functions.catalog import facts, jobs
from noetl import connection, records, settings, topology
from noetl.messages import expect
from noetl.models import RegisterPluginImage

log = logging.getLogger(__name__)

_runner: jobs.JobRunner | None = None


def runner() -> jobs.JobRunner:
    """This process's job backend, created on first use."""
    global _runner
    if _runner is None:
        config = settings.load()
        _runner = jobs.create(config, facts.Publisher(grace=config.report_grace))
        log.info("job backend %s ready", _runner.name)
    return _runner


async def register(event: CloudEvent) -> str:
    """Handle 2.2 RegisterPluginImage; returns what was done."""
    command = expect(event, RegisterPluginImage)

    # 3.1: a decided registration is not run again; an unknown one is adopted.
    kv = await connection.bucket(topology.REGISTRATIONS)
    record = await records.get(kv, command.ref_id)
    if record is None:
        record = await records.create(
            kv,
            records.Registration(
                ref_id=command.ref_id,
                plugin_name=command.plugin_name,
                image_url=command.image_url,
                request_source=command.request_source,
            ),
        )
    if record.final:
        return f"skipped: registration already {record.state}"

    # 3.2: the plugin's entry names the image and the registration that wrote it.
    plugins = await connection.bucket(topology.PLUGINS)
    plugin, wrote = await records.put_plugin(
        plugins,
        records.Plugin(
            name=command.plugin_name,
            image_url=command.image_url,
            ref_id=command.ref_id,
        ),
    )
    log.info(
        "plugin stored" if wrote else "plugin was stored already",
        extra={
            "pluginName": plugin.name,
            "imageUrl": plugin.image_url,
            "revision": plugin.revision,
        },
    )

    # 3.3: the run, and only once it started is the record registering: a run
    # that cannot start is a Failed fact for a record still received.
    stored = "plugin stored" if wrote else "plugin was stored already"
    backend = runner()
    run = jobs.Run.of(
        ref_id=command.ref_id,
        plugin_name=command.plugin_name,
        image_url=command.image_url,
        nats_url=backend.config.plugin_nats_url,
    )
    try:
        started = await backend.start(run)
    except jobs.RunNotStarted as exc:
        await facts.publish_failed(facts.failure(run, str(exc)))
        return f"{stored}; run cannot start"
    await records.advance(kv, command.ref_id, records.REGISTERING)
    return f"{stored}; {started}"
