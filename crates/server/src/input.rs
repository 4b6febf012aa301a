//! What a request carries, read strictly: JSON bodies whose unknown fields are refused by
//! name, query strings whose every parameter is known, and ids in the path. Every problem
//! becomes an [`ApiError`] that names the part of the request at fault.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use botarmy_protocol::IdParseError;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body, deserialized with the path of any field at fault.
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out (an empty body reads as `T::default()`).
pub struct OptionalJsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = read_body(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "the request needs a JSON body",
            ));
        }
        require_json(&headers)?;
        parse_json(&bytes).map(Self)
    }
}

impl<T, S> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        require_json(&headers)?;
        parse_json(&bytes).map(Self)
    }
}

async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(HeaderMap, Bytes), ApiError> {
    let headers = req.headers().clone();
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than this server accepts",
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the request body cannot be read: {}", rejection.body_text()),
            )
        }
    })?;
    Ok((headers, bytes))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if crate::browser::is_json(headers) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "the body must be JSON (content-type: application/json), not `{}`",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    content_type
                }
            ),
        ))
    }
}

/// Deserializes `bytes`, naming the field of any error (`options.max_parallel`); an unknown
/// field is named by its own path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|error| {
        let inner = error.inner();
        if !inner.is_data() {
            return ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the body is not valid JSON: {inner}"),
            )
            .field("", inner.to_string());
        }
        let mut path = error.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = without_position(&inner.to_string());
        if let Some(name) = unknown_field(&message) {
            path = if path.is_empty() {
                name.to_owned()
            } else if path.ends_with(name) {
                path
            } else {
                format!("{path}.{name}")
            };
        }
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{}: {message}",
                if path.is_empty() { "body" } else { &path }
            ),
        )
        .field(path, message)
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is not valid JSON: {e}"),
        )
        .field("", e.to_string())
    })?;
    Ok(value)
}

/// serde_json appends ` at line L column C`; the path says where already.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The name in serde's "unknown field `name`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Query parameters, each taken by name; [`QueryParams::finish`] refuses the ones nobody
/// took.
pub struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the query string cannot be read: {}", e.body_text()),
                )
            })?;
        Ok(Self(map))
    }
}

impl QueryParams {
    /// The raw value of `name`, if given.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// `name` as a number in `min..=max`, or `default` if not given.
    pub fn number(
        &mut self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.take(name) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(invalid_param(
                name,
                format!("`{raw}` is not a whole number from {min} to {max}"),
            )),
        }
    }

    /// `name` as `true` or `false`, or `false` if not given.
    pub fn flag(&mut self, name: &str) -> Result<bool, ApiError> {
        match self.take(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(invalid_param(
                name,
                format!("expected true or false, found {other:?}"),
            )),
        }
    }

    /// `name` parsed as an id, if given.
    pub fn id<T: FromStr<Err = IdParseError>>(
        &mut self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        self.take(name)
            .map(|raw| {
                raw.parse()
                    .map_err(|e: IdParseError| invalid_param(name, e.to_string()))
            })
            .transpose()
    }

    /// Refuses parameters that no one took.
    pub fn finish(self) -> Result<(), ApiError> {
        let mut unknown: Vec<String> = self.0.into_keys().collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(first) => {
                let mut error = ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("unknown query parameter `{first}`"),
                );
                for name in &unknown {
                    error = error.field(name.clone(), "unknown query parameter");
                }
                Err(error)
            }
        }
    }
}

/// A query parameter with a value that is not acceptable.
pub fn invalid_param(name: &str, message: String) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("query parameter `{name}`: {message}"),
    )
    .field(name, message)
}

/// The named segments of the request's path, read as ids on demand.
pub struct PathIds(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the path cannot be read: {}", e.body_text()),
                )
            })?;
        Ok(Self(
            raw.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }
}

impl PathIds {
    /// The segment `name` parsed as an id.
    pub fn get<T: FromStr<Err = IdParseError>>(&self, name: &str) -> Result<T, ApiError> {
        let raw = self
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str());
        raw.parse().map_err(|e| ApiError::bad_id(name, &e))
    }

    /// The segment `name` as text (empty when absent).
    pub fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}
