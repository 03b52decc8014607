//! JSON bodies of the HTTP API, shared by the server and the browser app.

use serde::{Deserialize, Serialize};

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the server answers requests.
    pub status: String,
    /// The server's crate version.
    pub version: String,
}

/// The body of every error response of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// A message that is safe to show to the user; internal details stay in the server log.
    pub error: String,
}
