//! The one place where failures become HTTP responses: a status code and one JSON shape,
//! `{code, message, details}`, for every error the API returns.
//!
//! A 4xx tells the client what was wrong with its request, naming the field; a 5xx says
//! only that the server failed, with a reference that the server's log repeats beside the
//! real cause, so internals never reach a client.

use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
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
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (a run that already finished, a
    /// project name that is taken).
    Conflict,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
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
        }
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
        let mut response = (status, axum::Json(self.body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
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
            StoreError::AlreadyExists { .. } => Self::new(ErrorCode::Conflict, error.to_string()),
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
