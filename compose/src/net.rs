//! Ports for the servers the lab starts.
//!
//! Every component listens on a port the kernel picked as free a moment earlier, so parallel
//! tests and runs never collide on fixed ports. The port is only free when probed: a server that
//! loses it to another process must retry with a new one (the supervisor in `process.rs` does).
//! An address that must stay the same across binds takes a [`lasting_port`] instead.
//!
//! It is one bind to port 0, so a crate (`portpicker`) would add a dependency and no safety.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free when this returned (bound to port 0, read, released).
/// Another process may take it before you bind it; be ready to retry.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The lowest port [`lasting_port`] picks.
const LASTING_FLOOR: u16 = 10_000;

/// A TCP port on 127.0.0.1 that was free when this returned and lies below the kernel's
/// ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`): for an address that is chosen
/// before anything binds it and then bound, released and bound again, such as a runner's
/// `--metrics-listen` that a Prometheus scrapes over several runs. A port from [`free_port`]
/// lies inside that range, so while it is unbound the kernel may give it to any outgoing
/// connection on the machine as that connection's own port, and the next bind fails with
/// "Address already in use" (it did once in a CI run of the alert drills, whose load tests
/// open thousands of connections beside it). Below the range only a deliberate bind can take
/// it. Falls back to [`free_port`] when the range starts too low to leave room.
pub fn lasting_port() -> std::io::Result<u16> {
    use std::hash::BuildHasher as _;
    let low = ephemeral_low().unwrap_or(32_768);
    if low < LASTING_FLOOR + 1_000 {
        return free_port();
    }
    let span = u64::from(low - LASTING_FLOOR);
    // A per-process random seed, so parallel test binaries do not walk the same ports.
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0..64u64 {
        let port = LASTING_FLOOR + (random.hash_one(attempt) % span) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    free_port()
}

/// The first port of the kernel's ephemeral range, when it can be read.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_port_is_free_and_below_the_ephemeral_range() {
        let low = ephemeral_low().unwrap_or(32_768);
        for _ in 0..20 {
            let port = lasting_port().unwrap();
            if low >= LASTING_FLOOR + 1_000 {
                assert!(
                    (LASTING_FLOOR..low).contains(&port),
                    "{port} is not in {LASTING_FLOOR}..{low}"
                );
            }
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .unwrap_or_else(|e| panic!("port {port} was handed out but cannot be bound: {e}"));
        }
    }
}
