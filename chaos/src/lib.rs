//! Chaos: the fault injectors of Box Office Lab.
//!
//! A Toxiproxy-compatible fault proxy (in-process for the stacks, standalone through the
//! `chaos` CLI), process faults by pid, container faults through Docker, and the client that
//! drives either this proxy or a real Toxiproxy.
//!
//! # Layout
//!
//! - [`toxics`] — one file per fault: a pure, seeded transformation of a byte stream. Start
//!   here, then read `CREATING_TOXICS.md`.
//! - [`proxy`] — the plumbing: listener, connections, live toxic chains, up/down.
//! - [`server`] — the Toxiproxy HTTP API over a registry of proxies, plus `/metrics`.
//! - [`client`] — a Toxiproxy API client.
//! - [`metrics`] — the Prometheus metrics of the proxy.
//! - [`process`] / [`container`] — kill, pause, resume a process or a container.
//! - [`schedule`] — fault schedules (text or `schedules/*.toml` drills), the [`schedule::FaultTarget`]
//!   trait a stack implements per component, and the executor.
//! - [`cli`] — the `chaos` command line (the binary only calls [`cli::run`]).
//! - [`error`] — the crate's error type and its HTTP statuses.

pub mod cli;
pub mod client;
pub mod container;
pub mod error;
pub mod metrics;
pub mod process;
pub mod proxy;
pub mod schedule;
pub mod server;
pub mod toxics;

pub use client::ToxiproxyClient;
pub use error::{Error, Result};
pub use proxy::{Proxy, ProxyConfig, ProxyInfo, ProxyOptions, ProxyUpdate};
pub use server::{ProxyServer, Registry};
pub use toxics::{Stream, ToxicKind, ToxicSpec};
