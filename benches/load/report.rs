//! The table the benchmark prints: one row per path and database, as Markdown so it can go
//! into the README as it is.

use std::time::Duration;

use crate::client::{Latencies, Measured};
use crate::procs::Cpu;

/// One line of the table. Empty cells print as `—`.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub database: String,
    pub path: String,
    pub rate: String,
    pub p50: String,
    pub p99: String,
    pub failures: String,
    pub server_cpu: String,
    pub client_cpu: String,
    pub ratio: String,
    pub note: String,
}

impl Row {
    pub fn new(database: &str, path: &str) -> Row {
        Row { database: database.into(), path: path.into(), ..Row::default() }
    }

    /// A row from a closed-loop HTTP load; `ceiling` is the matching ceiling's rate.
    /// `with_database`: the server runs on PostgreSQL, whose backends' CPU is shown too.
    pub fn http(database: &str, path: &str, m: &Measured, ceiling: Option<f64>, with_database: bool) -> Row {
        let cpu = m.cpu.per(m.ok as f64);
        Row {
            rate: format!("{} req/s", thousands(m.rate())),
            p50: latency(&m.latencies, 0.50),
            p99: latency(&m.latencies, 0.99),
            failures: format!("{} / {}", m.errors, m.timeouts),
            server_cpu: if m.ok > 0 { server_cpu(cpu, with_database) } else { String::new() },
            client_cpu: if m.ok > 0 { micros(cpu.bench) } else { String::new() },
            ratio: ceiling
                .filter(|c| *c > 0.0)
                .map(|c| format!("{:.1} %", 100.0 * m.rate() / c))
                .unwrap_or_default(),
            ..Row::new(database, path)
        }
    }
}

/// The server's CPU per operation, with the PostgreSQL backends' share when there is one.
pub fn server_cpu(per_op: Cpu, with_database: bool) -> String {
    if with_database {
        format!("{} + PG {}", micros(per_op.server), micros(per_op.database))
    } else {
        micros(per_op.server)
    }
}

/// `12,345`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds of CPU as `123 µs` (or ms).
pub fn micros(seconds: f64) -> String {
    duration(Duration::from_secs_f64(seconds.max(0.0)))
}

pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.1} ms", us / 1e3)
    }
}

pub fn latency(l: &Latencies, q: f64) -> String {
    l.quantile(q).map(duration).unwrap_or_default()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Prints the rows as a Markdown table.
pub fn print(rows: &[Row]) {
    let header = [
        "database",
        "path",
        "rate",
        "p50",
        "p99",
        "errors / timeouts",
        "server CPU/op",
        "bench CPU/op",
        "vs ceiling",
        "notes",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                &r.database,
                &r.path,
                &r.rate,
                &r.p50,
                &r.p99,
                &r.failures,
                &r.server_cpu,
                &r.client_cpu,
                &r.ratio,
                &r.note,
            ]
            .map(|c| if c.is_empty() { "—".to_string() } else { c.clone() })
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&header.map(String::from));
    println!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
    for row in &cells {
        line(row);
    }
}
