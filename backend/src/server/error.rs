//! API errors: a safe message for the client, the details in the log, each error logged once.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use fuselab_shared::api::ApiError;
use thiserror::Error;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum AppError {
    /// The client sent something we cannot use; the message describes their own input and is
    /// safe to return.
    #[error("{message}")]
    Client {
        /// 4xx status.
        status: StatusCode,
        /// What was wrong with the request.
        message: String,
    },
    /// The server or the caller has as much work in progress as allowed: 429 with
    /// `Retry-After`.
    #[error("{message}")]
    Busy {
        /// What is at its limit.
        message: String,
        /// Seconds after which trying again makes sense.
        retry_after: u64,
    },
    /// Something failed on our side; the client gets a generic message.
    #[error("{context}: {source:#}")]
    Internal {
        /// What the server was doing.
        context: &'static str,
        /// The cause.
        source: anyhow::Error,
    },
}

impl AppError {
    /// A 4xx error with a message for the client.
    pub fn client(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            message: message.into(),
        }
    }

    /// A 429 with `Retry-After`.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        Self::Busy {
            message: message.into(),
            retry_after,
        }
    }

    /// A rejected JSON body: bad syntax, wrong shape, or over the body limit.
    pub fn json(rejection: &JsonRejection, max_body_bytes: usize) -> Self {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the request body is larger than the server's limit of {max_body_bytes} bytes")
        } else {
            rejection.body_text()
        };
        Self::client(status, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Client { status, message } => {
                tracing::debug!(%status, %message, "client error");
                (status, Json(ApiError { error: message })).into_response()
            }
            Self::Busy {
                message,
                retry_after,
            } => {
                tracing::debug!(%message, "busy");
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, retry_after.to_string())],
                    Json(ApiError { error: message }),
                )
                    .into_response()
            }
            Self::Internal { .. } => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(ApiError {
                        error: "internal server error; the details are in the server log".into(),
                    }),
                )
                    .into_response()
            }
        }
    }
}
