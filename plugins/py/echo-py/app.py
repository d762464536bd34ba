"""echo-py: the `echo` plugin in Python, for the `auto-reply` world of
wa-gateway:plugin@0.3.0 (wit/v0.3.0/plugin.wit).

Replies `echo: <text>` to every message with text and nothing to the others, like the Rust
`echo`. It also counts the messages it has seen in its key-value store (key `count`) and logs
the count, so a run's log shows the store at work.

How WIT types look in Python (componentize-py): records are dataclasses with snake_case
fields (`message.push_name`), `option<T>` is the value or None, `list<u8>` is `bytes`, enums
are `Enum` members (`types.MessageKind.TEXT`), variant cases are dataclasses
(`types.Action_ReplyText("…")`); an import's `err` is raised as `componentize_py_types.Err`,
and `handle` fails the run by raising `Err(types.PluginError_Failed("why"))`.
"""

from wit_world import WitWorld
from wit_world.imports import kv, log, types


def increment(key: str) -> int:
    """Adds one to the number stored under `key` and returns it."""
    stored = kv.get(key)
    count = (int(stored.decode()) if stored else 0) + 1
    kv.set(key, str(count).encode())
    return count


class WitWorld(WitWorld):
    def handle(self, message: types.Message, context: types.Context) -> types.Decision:
        count = increment("count")
        log.log(log.Level.INFO, f"messages seen: {count}")
        text = message.text
        if text is None or not text.strip():
            return types.Decision(actions=[], stop=False, quote=False)
        return types.Decision(actions=[types.Action_ReplyText(f"echo: {text}")], stop=False, quote=False)
