//! Payments: a simulated payment provider that runs as its own process (or in-process on a
//! loopback port) and the HTTP client the box office uses to reach it.
//!
//! The provider is deliberately a separate component reached over HTTP so that chaos can slow
//! it down or take it away. It captures and refunds amounts, declines a configurable share of
//! charges, waits a configurable latency, and honours `Idempotency-Key`: the same key with the
//! same request returns the first answer again (`Idempotent-Replayed: true`), the same key
//! with a different request is a 422.

pub mod client;
pub mod provider;

pub use client::{ChargeOutcome, PaymentError, PaymentsClient};
pub use provider::{ProviderConfig, ProviderState};
