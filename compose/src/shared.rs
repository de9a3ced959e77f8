//! One PostgreSQL server per test binary, shared by all its tests.
//!
//! Starting a server costs about a second and a half, a database a few milliseconds, so tests
//! share a server and each creates its own database ([`fresh_postgres_database`]). The server is
//! started lazily by the first caller; concurrent first callers wait for the same start. It never
//! outlives the process: a normal exit runs an exit hook that shuts it down and removes its temp
//! dir, and a crash kills it through the parent-death signal set when it was spawned.

use tokio::sync::OnceCell;

use crate::postgres::LocalPostgres;
use crate::sys;

static SHARED: OnceCell<LocalPostgres> = OnceCell::const_new();

/// The server shared by all tests of this process, started on first call (see
/// [`LocalPostgres::start`] for its settings) and reused afterwards. If starting fails, the
/// error is returned and the next call tries again. Do not change server-wide settings on it;
/// start your own [`LocalPostgres`] for that.
pub async fn shared_postgres() -> anyhow::Result<&'static LocalPostgres> {
    SHARED
        .get_or_try_init(|| async {
            let server = LocalPostgres::start().await?;
            sys::at_exit(stop_shared_at_exit)?;
            Ok(server)
        })
        .await
}

/// A new, empty database on the shared server; returns its URL
/// (`postgres://postgres@127.0.0.1:PORT/test_<uuid>`).
pub async fn fresh_postgres_database() -> anyhow::Result<String> {
    shared_postgres().await?.create_database().await
}

/// Statics are never dropped, so the shared server is stopped here instead.
extern "C" fn stop_shared_at_exit() {
    if let Some(server) = SHARED.get() {
        server.shut_down_now();
    }
}
