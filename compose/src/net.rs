//! Ports for the servers the lab starts.
//!
//! Every component listens on a port the kernel picked as free a moment earlier, so parallel
//! tests and runs never collide on fixed ports. The port is only free when probed: a server that
//! loses it to another process must retry with a new one (the supervisor in `process.rs` does).
//!
//! It is one bind to port 0, so a crate (`portpicker`) would add a dependency and no safety.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free when this returned (bound to port 0, read, released).
/// Another process may take it before you bind it; be ready to retry.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
