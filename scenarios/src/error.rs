//! The one error type of the crate; the binary maps it to an exit code.

/// What can go wrong running a scenario (as opposed to what the run finds wrong with the
/// system, which goes into the report).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or a parameter is invalid (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The stack did not start or could not be reached.
    #[error("stack: {0}")]
    Stack(String),
    /// A setup or admin request failed.
    #[error("{context}: {message}")]
    Api {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// The load generator failed.
    #[error("goose: {0}")]
    Goose(String),
    /// Files could not be written.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// An API error with its context.
    pub fn api(context: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Api {
            context: context.into(),
            message: message.to_string(),
        }
    }

    /// An I/O error with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The exit code this error deserves (see [`reports::exit_code`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => reports::exit_code::USAGE,
            _ => reports::exit_code::RUN_ERROR,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
