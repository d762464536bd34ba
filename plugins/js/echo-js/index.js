// echo-js: the `echo` plugin in JavaScript, for the `auto-reply` world of
// wa-gateway:plugin@0.3.0 (wit/v0.3.0/plugin.wit).
//
// Replies `echo: <text>` to every message with text and nothing to the others, like the Rust
// `echo`. It also counts the messages it has seen in its key-value store (key `count`) and logs
// the count, so a run's log shows the store at work.
//
// How WIT types look in JavaScript (componentize-js / jco):
// - records are objects with camelCase fields (`msg.waId`, `msg.pushName`);
// - `option<T>` is the value or `undefined`; `list<u8>` is a `Uint8Array`; `s64` is a BigInt;
// - enums are strings (`msg.kind === "text"`), variants `{ tag: "reply-text", val: "…" }`;
// - an import returning `result<T, E>` returns T or throws an error whose `payload` is E;
// - an export returning `result<T, E>` returns T for `ok`, and throws E for `err`.
import { get, set } from "wa-gateway:plugin/kv@0.3.0";
import { log } from "wa-gateway:plugin/log@0.3.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Adds one to the number stored under `key` and returns it.
function increment(key) {
    const stored = get(key);
    const count = (stored === undefined ? 0 : Number(decoder.decode(stored)) || 0) + 1;
    set(key, encoder.encode(String(count)));
    return count;
}

export function handle(msg, _ctx) {
    const count = increment("count");
    log("info", `messages seen: ${count}`);
    const text = msg.text;
    if (text === undefined || text.trim() === "") {
        return { actions: [], stop: false, quote: false };
    }
    return { actions: [{ tag: "reply-text", val: `echo: ${text}` }], stop: false, quote: false };
}
