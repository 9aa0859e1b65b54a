"""`piaoxi topology`: topics, stream agents and projections, from the declaration they run on."""

from __future__ import annotations

import json

import typer


def topology(
    as_json: bool = typer.Option(False, "--json", help="Print the topology as JSON."),
) -> None:
    """Show every topic, agent (source → sinks, stage function) and projection."""
    from piaoxi.settings import get_settings
    from streams.topology import describe

    described = describe(get_settings())
    if as_json:
        typer.echo(json.dumps(described, indent=2, ensure_ascii=False))
        return
    typer.echo("topics")
    for topic in described["topics"]:
        events = ", ".join(topic["events"])
        typer.echo(f"  {topic['topic']:<32} {events}")
        typer.echo(f"  {'':<32} {topic['description']}")
    typer.echo(f"\nagents (consumer group {described['agents'][0]['group']})")
    for agent in described["agents"]:
        sinks = ", ".join(agent["sink_topics"])
        where = "process pool" if agent["in_pool"] else "worker thread"
        typer.echo(f"  {agent['name']:<10} {agent['source_topic']} → {sinks}")
        typer.echo(f"  {'':<10} {agent['stage_function']} ({where})")
        typer.echo(f"  {'':<10} {agent['description']}")
    typer.echo("\nprojections")
    for projection in described["projections"]:
        sources = ", ".join(projection["source_topics"])
        typer.echo(f"  {projection['name']:<14} {sources} → {projection['target']}")
        typer.echo(f"  {'':<14} {projection['description']}")


def register(app: typer.Typer) -> None:
    app.command("topology")(topology)
