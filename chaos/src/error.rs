//! The crate's one error type. The HTTP server maps it to Toxiproxy's status codes and
//! messages (`{"error": "...", "status": N}`), and the client maps those back, so both sides
//! agree on what went wrong.

use std::io;

/// Everything that can go wrong in the proxy, its API or the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No proxy by that name (404).
    #[error("proxy not found")]
    ProxyNotFound,
    /// A proxy by that name exists (409).
    #[error("proxy already exists")]
    ProxyAlreadyExists,
    /// No toxic by that name on the proxy (404).
    #[error("toxic not found")]
    ToxicNotFound,
    /// A toxic by that name exists on the proxy (409).
    #[error("toxic already exists")]
    ToxicAlreadyExists,
    /// `stream` was neither `upstream` nor `downstream` (400).
    #[error("stream was invalid, can be either upstream or downstream")]
    InvalidStream,
    /// Unknown toxic `type` (400).
    #[error("invalid toxic type: {0}")]
    InvalidToxicType(String),
    /// A required field is empty (400).
    #[error("missing required field: {0}")]
    MissingField(&'static str),
    /// The body is not the expected JSON, or an attribute is out of range (400).
    #[error("bad request body: {0}")]
    BadRequest(String),
    /// The proxy could not listen on its address (500, as in Toxiproxy).
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// Other I/O failure.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The API answered with an error (client side).
    #[error("API error {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Toxiproxy's `error` field.
        message: String,
    },
    /// The API could not be reached or answered garbage (client side).
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
}

impl Error {
    /// The HTTP status Toxiproxy uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::ProxyNotFound | Error::ToxicNotFound => 404,
            Error::ProxyAlreadyExists | Error::ToxicAlreadyExists => 409,
            Error::InvalidStream
            | Error::InvalidToxicType(_)
            | Error::MissingField(_)
            | Error::BadRequest(_) => 400,
            Error::Api { status, .. } => *status,
            Error::Listen { .. } | Error::Io(_) | Error::Http(_) => 500,
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
