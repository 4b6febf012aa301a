//! The one place where failures become HTTP responses: a status code and one JSON shape,
//! `{code, message, details}`, for every error the API returns.
//!
//! A 4xx tells the client what was wrong with its request, naming the field; a 5xx says
//! only that the server failed, with a reference that the server's log repeats beside the
//! real cause, so internals never reach a client.

use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::response::{IntoResponse, Response};
use botarmy_protocol::IdParseError;
use botarmy_runtime::RuntimeError;
use botarmy_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The wire codes of errors. A client branches on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, an unknown field, a wrong type, a bad query.
    InvalidRequest,
    /// A path segment is not a valid id.
    InvalidId,
    /// The request is well formed but a value is not acceptable.
    ValidationFailed,
    /// The thing asked for does not exist.
    NotFound,
    /// The request carries no credentials, or ones that are unknown, revoked, expired or
    /// not for this server (the `WWW-Authenticate` header says `Bearer`).
    Unauthorized,
    /// The caller is known but may not do this.
    Forbidden,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (a run that already finished, a
    /// project name that is taken).
    Conflict,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// The caller made too many requests; `retry-after` says in how many seconds to try
    /// again.
    RateLimited,
    /// The server cannot answer now (store busy or unreachable); try again.
    Unavailable,
    /// The server failed; the reference in the message finds the cause in its log.
    Internal,
}

impl ErrorCode {
    fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::InvalidId => StatusCode::BAD_REQUEST,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One problem with one part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Where: a JSON path into the body (`options.max_parallel`), a query parameter or a
    /// path segment (`id`); empty for the body as a whole.
    pub path: String,
    /// What was found and what was expected.
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What kind of error, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The fields at fault, if any.
    pub details: Vec<FieldError>,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    body: ErrorBody,
    /// Seconds after which to try again (`retry-after`), for a rate-limited request.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message, and no field details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            body: ErrorBody {
                code,
                message: message.into(),
                details: Vec::new(),
            },
            retry_after: None,
        }
    }

    /// A request without acceptable credentials; the message says what is missing, never
    /// what a credential contained.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// Too many requests: try again in `seconds` (at least 1).
    pub fn rate_limited(seconds: u64) -> Self {
        let seconds = seconds.max(1);
        let mut error = Self::new(
            ErrorCode::RateLimited,
            format!("too many requests for this token; try again in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        error
    }

    /// Adds the field at fault.
    pub fn field(mut self, path: impl Into<String>, message: impl Into<String>) -> Self {
        self.body.details.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
        self
    }

    /// A request whose values are not acceptable, with every problem found.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", display_path(&one.path), one.message),
            _ => format!("{} fields are not acceptable", details.len()),
        };
        Self {
            body: ErrorBody {
                code: ErrorCode::ValidationFailed,
                message,
                details,
            },
            retry_after: None,
        }
    }

    /// A path segment that is not an id.
    pub fn bad_id(segment: &str, error: &IdParseError) -> Self {
        Self::new(ErrorCode::InvalidId, error.to_string()).field(segment, error.to_string())
    }

    /// Something missing, by kind and id.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} `{id}` not found"))
    }

    /// A failure of the server itself: the cause goes to the log with a reference, the
    /// client gets the reference only.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let reference = uuid::Uuid::now_v7().simple().to_string();
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        eprintln!("botarmy-server: internal error {reference}: {chain}");
        Self::new(
            ErrorCode::Internal,
            format!("internal error (reference {reference}); the server log has the cause"),
        )
    }

    /// The fields at fault (for merging into a larger validation error); an error without
    /// any is given as one detail of the whole body.
    pub fn into_details(self) -> Vec<FieldError> {
        if self.body.details.is_empty() {
            vec![FieldError {
                path: String::new(),
                message: self.body.message,
            }]
        } else {
            self.body.details
        }
    }

    /// What the client is told.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// The code of this error.
    pub fn code(&self) -> ErrorCode {
        self.body.code
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.body.code.status();
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after.unwrap_or(1)));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { what, id } => Self::not_found(what, id),
            StoreError::Ambiguous { .. } | StoreError::InvalidInput { .. } => {
                Self::new(ErrorCode::InvalidRequest, error.to_string())
            }
            StoreError::AlreadyExists { .. } | StoreError::InUse { .. } => {
                Self::new(ErrorCode::Conflict, error.to_string())
            }
            StoreError::Conflict { .. } => Self::new(
                ErrorCode::Conflict,
                "the run's log moved on while this request was handled; read it again and retry",
            ),
            StoreError::Locked { .. } => {
                eprintln!("botarmy-server: {error}");
                Self::new(
                    ErrorCode::Unavailable,
                    "the store is busy; try again shortly",
                )
            }
            StoreError::Open { .. } => {
                eprintln!("botarmy-server: {error}");
                Self::new(ErrorCode::Unavailable, "the store cannot be reached")
            }
            // Corrupt, BadUrl, SchemaTooNew, Backend, Decode and whatever comes later.
            _ => Self::internal(&error),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::Store(e) => e.into(),
            RuntimeError::Method { .. } => {
                Self::new(ErrorCode::ValidationFailed, error.to_string())
            }
            RuntimeError::NotResumable { .. } | RuntimeError::Contended { .. } => {
                Self::new(ErrorCode::Conflict, error.to_string())
            }
            RuntimeError::Answer { .. } => Self::validation(vec![FieldError {
                path: "answer".into(),
                message: error.to_string(),
            }]),
            // Engine, OutDir and whatever comes later.
            other => Self::internal(&other),
        }
    }
}
