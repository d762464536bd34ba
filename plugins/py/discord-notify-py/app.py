"""discord-notify-py: a webhook transformation in Python, for the `transform` world of
wa-gateway:transform@0.1.0 (wit/transform/v0.1.0/transform.wit).

Attach it to a `notify` webhook endpoint whose URL is a Discord channel webhook
(`https://discord.com/api/webhooks/<id>/<token>`): every inbound message (or whichever events
`events` lists) becomes a Discord message, `{"content": ..., "username": ...}`, posted with
`?wait=true` appended to the URL (Discord then answers with the message it created rather than
204). Other events are skipped: nothing is sent. It counts what it forwarded in its key-value
store (key `forwarded`) and logs the count.

Configuration (every field optional; defaults shown):

    {"username": "WhatsApp", "events": ["message.received"]}

How the transform world looks in Python (componentize-py): `Event` and `Context` are
dataclasses (`event.type`, `event.data` is JSON text, `context.config`); return
`Outcome_Send(Request(...))` or `Outcome_Skip()`; raise `Err(TransformError_BadConfig("why"))`
(or `TransformError_Failed`) to fail the run.
"""

import json

from componentize_py_types import Err
from wit_world import (
    Context,
    Event,
    Outcome,
    Outcome_Send,
    Outcome_Skip,
    Request,
    TransformError_BadConfig,
    WitWorld,
)
from wit_world.imports import kv, log

# Discord refuses a message longer than this.
CONTENT_MAX = 2000


def increment(key: str) -> int:
    """Adds one to the number stored under `key` and returns it."""
    stored = kv.get(key)
    count = (int(stored.decode()) if stored else 0) + 1
    kv.set(key, str(count).encode())
    return count


def settings(text: str) -> tuple[str, list[str]]:
    """The username and the events, from the configuration."""
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise Err(TransformError_BadConfig(f"config is not JSON: {e}"))
    if not isinstance(cfg, dict):
        raise Err(TransformError_BadConfig("config must be a JSON object"))
    username = cfg.get("username", "WhatsApp")
    events = cfg.get("events", ["message.received"])
    if not isinstance(username, str) or not username.strip():
        raise Err(TransformError_BadConfig("config: `username` must be text"))
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise Err(TransformError_BadConfig("config: `events` must be a list of event names"))
    return username, events


def describe(kind: str, data: dict) -> str:
    """The event as one Discord message (markdown)."""
    if kind == "message.received":
        sender = f"+{data.get('from', '')}"
        name = data.get("push_name")
        who = f"**{name}** ({sender})" if name else f"**{sender}**"
        text = data.get("text") or ""
        kind_of = data.get("type", "text")
        body = text if kind_of == "text" else f"[{kind_of}] {text}".strip()
        return f"{who}: {body}"
    about = [f"{f}: {data[f]}" for f in ("status", "to", "from", "group", "plugin", "error") if data.get(f)]
    return " · ".join([f"`{kind}`", *about])


class WitWorld(WitWorld):
    def transform(self, event: Event, context: Context) -> Outcome:
        username, events = settings(context.config)
        if event.type not in events:
            return Outcome_Skip()
        content = describe(event.type, json.loads(event.data))
        if len(content) > CONTENT_MAX:
            content = content[: CONTENT_MAX - 1] + "…"
        count = increment("forwarded")
        log.log(log.Level.INFO, f"{event.type} {event.id} -> Discord (forwarded: {count})")
        body = json.dumps({"content": content, "username": username}, ensure_ascii=False)
        return Outcome_Send(Request(body=body, content_type=None, headers=[], path="?wait=true"))
