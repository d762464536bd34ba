//! Plugin cost per message: instantiate + call + decision, for `echo` and `keyword-router`
//! (Rust), `echo-js` (JavaScript) and `echo-py` (Python), the last two when built.
//!
//! `cargo bench --bench plugins` loads the real components from `target/plugins/` (run
//! `plugins/build.sh` first), compiles each (printing the time and the process's peak memory
//! before and after), warms up, then times each run of a sequential loop on one thread, two
//! ways:
//! - `run()`: `Runtime::run` as the pipeline calls it (a slot, a blocking thread, the run);
//! - `instantiate+call`: `Runtime::run_blocking` on the bench thread (a fresh store, the
//!   instance from the pooling allocator, the call, the checked decision), which is the
//!   plugin's own cost.
//!
//! Each prints p50/p99/max in microseconds and runs per second on one core.
//!
//! Knob: `PLUGIN_BENCH_RUNS` (default 20,000; the JavaScript and Python plugins run a
//! twentieth of it, their runs being far dearer). The goal for Rust plugins: p50 <= 50 µs and
//! >= 20,000 runs per second per core.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wa_gateway::config::Config;
use wa_gateway::plugins::runtime::{
    KvAccess, Outcome, PluginContext, PluginMessage, Prepared, RunInput, RunReport, Runtime,
};

fn plugin_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/plugins").join(format!("{name}.wasm"))
}

fn plugin(name: &str) -> Vec<u8> {
    let path = plugin_path(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} is missing ({e}): run plugins/build.sh first", path.display()))
}

/// The process's peak resident memory so far (`VmHWM`), in MiB; 0 where /proc is missing.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn input(text: &str, config: &str) -> RunInput {
    RunInput {
        message: PluginMessage {
            id: 42,
            wa_id: "3EB0C767D26A1D2E5A1B".into(),
            chat: "6281234567890@s.whatsapp.net".into(),
            sender: "6281234567890".into(),
            push_name: Some("Budi".into()),
            is_group: false,
            text: Some(text.into()),
            kind: "text".into(),
            timestamp_ms: 1_767_225_600_000,
            ..PluginMessage::default()
        },
        context: PluginContext {
            tenant_id: 1,
            device_id: 7,
            device_phone: "6289876543210".into(),
            plugin_id: 3,
            config: config.into(),
        },
    }
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
    per_second: f64,
}

fn stats(mut samples: Vec<Duration>, wall: Duration) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

fn print(name: &str, how: &str, s: &Stats) {
    println!(
        "{name:<15} {how:<17} p50 {:>7.1} µs   p99 {:>7.1} µs   max {:>8.1} µs   {:>8.0} runs/s",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.max.as_secs_f64() * 1e6,
        s.per_second
    );
}

fn check(name: &str, report: &RunReport) {
    assert_eq!(report.outcome, Outcome::Success, "{name}: {report:?}");
    assert!(!report.decision.as_ref().unwrap().actions.is_empty(), "{name} did not reply: {report:?}");
}

fn main() {
    let runs: usize = std::env::var("PLUGIN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let cfg = Config::from_toml("").expect("defaults").plugins;
    let runtime = Runtime::new(&cfg).expect("runtime");
    println!(
        "plugin cost per message, {runs} sequential runs each ({} logical CPUs, engine {})",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        runtime.engine_id()
    );

    let mut cases: Vec<(&str, RunInput, usize)> = vec![
        ("echo", input("halo plugin", "{}"), runs),
        ("keyword-router", input("berapa harga paket?", KEYWORD_ROUTER_CONFIG), runs),
    ];
    // JavaScript and Python carry their language's runtime: far dearer runs, so fewer.
    for (name, tools) in [("echo-js", "Node.js and npm"), ("echo-py", "Python 3 with venv")] {
        if plugin_path(name).exists() {
            cases.push((name, input("halo plugin", "{}"), (runs / 20).max(1)));
        } else {
            println!("{name}: not built (plugins/build.sh builds it when {tools} are installed)");
        }
    }
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();

    for (name, input, runs) in cases {
        let wasm = plugin(name);
        let before = peak_rss_mib();
        let started = Instant::now();
        let compiled = runtime.compile(&wasm).unwrap_or_else(|e| panic!("{name}: {e}"));
        let compile = started.elapsed();
        println!(
            "{name}: {:.1} KiB component compiled in {:.1} ms to {:.1} KiB of machine code; peak RSS {before:.0} -> {:.0} MiB",
            wasm.len() as f64 / 1024.0,
            compile.as_secs_f64() * 1e3,
            compiled.artefact.len() as f64 / 1024.0,
            peak_rss_mib()
        );
        let prepared: Prepared = compiled.prepared;
        let warmup = (runs / 20).clamp(1, 1_000);

        // instantiate + call + decision, on this thread.
        for _ in 0..warmup {
            check(name, &runtime.run_blocking(&prepared, input.clone(), KvAccess::None));
        }
        let mut samples = Vec::with_capacity(runs);
        let wall = Instant::now();
        for _ in 0..runs {
            let input = input.clone();
            let t = Instant::now();
            let report = runtime.run_blocking(&prepared, input, KvAccess::None);
            samples.push(t.elapsed());
            debug_assert_eq!(report.outcome, Outcome::Success);
            std::hint::black_box(report);
        }
        print(name, "instantiate+call", &stats(samples, wall.elapsed()));

        // Through `run()`, as the pipeline calls it.
        let samples = tokio.block_on(async {
            for _ in 0..warmup {
                check(name, &runtime.run(&prepared, input.clone(), KvAccess::None).await);
            }
            let mut samples = Vec::with_capacity(runs);
            let wall = Instant::now();
            for _ in 0..runs {
                let input = input.clone();
                let t = Instant::now();
                let report = runtime.run(&prepared, input, KvAccess::None).await;
                samples.push(t.elapsed());
                std::hint::black_box(report);
            }
            (samples, wall.elapsed())
        });
        print(name, "via run()", &stats(samples.0, samples.1));
        println!("{name}: peak RSS after its runs {:.0} MiB", peak_rss_mib());
    }
}

/// A keyword-router configuration whose second route matches the benchmark's message.
const KEYWORD_ROUTER_CONFIG: &str = r#"{"routes": [
    {"keyword": "jam buka", "reply": "Buka setiap hari 08.00-21.00."},
    {"keyword": "harga", "reply": "Harga paket mulai Rp50.000."},
    {"keyword": "alamat", "reply": "Jl. Merdeka 1, Bandung."}
], "stop": true}"#;
