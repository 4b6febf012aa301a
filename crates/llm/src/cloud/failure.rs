//! Turning what went wrong on the wire into an [`LlmError`] that tells the resilience layer
//! what to do: the HTTP status, the provider's own message, how long it asked us to wait,
//! and which part of the call timed out.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::LlmError;

/// The limits of one call, to name the one that was reached.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub connect: Duration,
    pub first_byte: Duration,
    pub chunk: Duration,
}

/// Maps an HTTP error response.
pub(super) fn from_status(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> LlmError {
    let provider = provider.to_owned();
    let message = error_message(body, status);
    let retry_after = retry_after(headers, body, SystemTime::now());
    match status {
        429 => LlmError::RateLimited {
            provider,
            retry_after,
        },
        401 | 403 => LlmError::Unauthorized {
            provider,
            status,
            message,
        },
        // Gemini answers a wrong key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
        400 if body.contains("API_KEY_INVALID") => LlmError::Unauthorized {
            provider,
            status,
            message,
        },
        _ => LlmError::Http {
            provider,
            status,
            message,
            retry_after,
        },
    }
}

/// Maps a failure of the HTTP client: connecting, sending, or reading the body.
pub(super) fn from_reqwest(provider: &str, error: &reqwest::Error, limits: &Limits) -> LlmError {
    let provider = provider.to_owned();
    if error.is_connect() {
        if error.is_timeout() {
            return LlmError::Timeout {
                provider,
                during: "connecting",
                after: limits.connect,
            };
        }
        return LlmError::Transient {
            provider,
            message: format!("could not connect: {}", chain(error)),
        };
    }
    if error.is_timeout() {
        return LlmError::Timeout {
            provider,
            during: "waiting for the answer",
            after: limits.first_byte,
        };
    }
    let what = if error.is_body() || error.is_decode() {
        "the connection broke while the answer was read"
    } else {
        "the request failed"
    };
    LlmError::Transient {
        provider,
        message: format!("{what}: {}", chain(error)),
    }
}

/// Maps genai's error for a call (streamed or not).
pub(super) fn from_genai(provider: &str, error: genai::Error, limits: &Limits) -> LlmError {
    use genai::Error as G;
    let transient = |message: String| LlmError::Transient {
        provider: provider.to_owned(),
        message,
    };
    match error {
        G::HttpError {
            status,
            body,
            headers,
            ..
        } => from_status(provider, status.as_u16(), &headers, &body),
        G::WebStream { error, .. } => from_boxed(provider, error, limits),
        G::WebModelCall { webc_error, .. } | G::WebAdapterCall { webc_error, .. } => {
            from_webc(provider, webc_error, limits)
        }
        G::StreamParse { serde_error, .. } => {
            transient(format!("malformed JSON in a stream chunk: {serde_error}"))
        }
        G::ChatResponse { body, .. } => from_error_event(provider, &body),
        G::ChatResponseGeneration { cause, .. } => {
            transient(format!("the answer could not be read: {cause}"))
        }
        G::JsonValueExt(e) => transient(format!("a stream chunk lacks an expected field: {e}")),
        G::SerdeJson(e) => transient(format!("malformed JSON in the answer: {e}")),
        G::NoChatResponse { .. } => transient("the answer was empty".to_owned()),
        G::InvalidJsonResponseElement { info } => {
            transient(format!("unexpected element in the answer: {info}"))
        }
        other => LlmError::Fatal {
            provider: provider.to_owned(),
            message: other.to_string(),
        },
    }
}

fn from_webc(provider: &str, error: genai::webc::Error, limits: &Limits) -> LlmError {
    use genai::webc::Error as W;
    match error {
        W::ResponseFailedStatus {
            status,
            body,
            headers,
        } => from_status(provider, status.as_u16(), &headers, &body),
        W::Reqwest(e) => from_reqwest(provider, &e, limits),
        W::ResponseFailedNotJson { content_type, .. } => LlmError::Transient {
            provider: provider.to_owned(),
            message: format!("the answer is not JSON (content-type `{content_type}`)"),
        },
        W::ResponseFailedInvalidJson { cause, .. } => LlmError::Transient {
            provider: provider.to_owned(),
            message: format!("malformed JSON in the answer: {cause}"),
        },
        other => LlmError::Transient {
            provider: provider.to_owned(),
            message: other.to_string(),
        },
    }
}

fn from_boxed(provider: &str, error: genai::BoxError, limits: &Limits) -> LlmError {
    let error = match error.downcast::<genai::Error>() {
        Ok(inner) => return from_genai(provider, *inner, limits),
        Err(other) => other,
    };
    let error = match error.downcast::<genai::webc::StreamTimeout>() {
        Ok(timeout) => {
            return match *timeout {
                genai::webc::StreamTimeout::Headers => LlmError::Timeout {
                    provider: provider.to_owned(),
                    during: "waiting for the answer",
                    after: limits.first_byte,
                },
                genai::webc::StreamTimeout::Read => LlmError::Timeout {
                    provider: provider.to_owned(),
                    during: "between stream chunks",
                    after: limits.chunk,
                },
            };
        }
        Err(other) => other,
    };
    match error.downcast::<reqwest::Error>() {
        Ok(e) => from_reqwest(provider, &e, limits),
        Err(other) => LlmError::Transient {
            provider: provider.to_owned(),
            message: format!("the stream broke: {other}"),
        },
    }
}

/// An error event inside a stream that had started well (Anthropic's `event: error`,
/// OpenAI's `{"error": ...}` chunk), mapped by its error type to what an HTTP status would
/// have said.
fn from_error_event(provider: &str, body: &Value) -> LlmError {
    let error = body.get("error").unwrap_or(body);
    let kind = error
        .get("type")
        .or_else(|| error.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    let message = if kind.is_empty() {
        message
    } else {
        format!("{kind}: {message}")
    };
    // Google's shape carries the HTTP status it stands for.
    if let Some(status) = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
    {
        let message = match error.get("status").and_then(Value::as_str) {
            Some(s) => format!(
                "{s}: {}",
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
            None => message,
        };
        return match status {
            429 => LlmError::RateLimited {
                provider: provider.to_owned(),
                retry_after: google_retry_info(&body.to_string()),
            },
            401 | 403 => LlmError::Unauthorized {
                provider: provider.to_owned(),
                status,
                message,
            },
            _ => LlmError::Http {
                provider: provider.to_owned(),
                status,
                message,
                retry_after: None,
            },
        };
    }
    let provider = provider.to_owned();
    let http = |status: u16, message: String| LlmError::Http {
        provider: provider.clone(),
        status,
        message,
        retry_after: None,
    };
    match kind {
        "rate_limit_error" | "rate_limit_exceeded" => LlmError::RateLimited {
            provider,
            retry_after: None,
        },
        "overloaded_error" => http(529, message),
        "api_error" | "server_error" => http(500, message),
        "invalid_request_error" => http(400, message),
        "not_found_error" => http(404, message),
        "request_too_large" => http(413, message),
        "authentication_error" => LlmError::Unauthorized {
            provider,
            status: 401,
            message,
        },
        "permission_error" => LlmError::Unauthorized {
            provider,
            status: 403,
            message,
        },
        _ => LlmError::Transient {
            provider,
            message: format!("the stream reported an error: {message}"),
        },
    }
}

/// The provider's message from its JSON error body (OpenAI, Anthropic, Gemini and Ollama
/// shapes), with its error type; the start of the body when it is not JSON.
pub(super) fn error_message(body: &str, status: u16) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    // Gemini's streaming endpoint wraps the error in a one-element array.
    let parsed = match parsed {
        Some(Value::Array(mut items)) if !items.is_empty() => Some(items.swap_remove(0)),
        other => other,
    };
    if let Some(value) = parsed {
        let error = value.get("error").unwrap_or(&value);
        if let Some(text) = error.as_str() {
            return text.to_owned();
        }
        if let Some(text) = error.get("message").and_then(Value::as_str) {
            let kind = error
                .get("type")
                .or_else(|| error.get("status"))
                .or_else(|| error.get("code"))
                .and_then(Value::as_str);
            return match kind {
                Some(kind) if !kind.is_empty() => format!("{kind}: {text}"),
                _ => text.to_owned(),
            };
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_owned();
    }
    let mut cut: String = body.chars().take(300).collect();
    if cut.len() < body.len() {
        cut.push('…');
    }
    cut
}

/// How long the provider asked us to wait, from (in this order) `retry-after-ms`,
/// `retry-after` (seconds or an HTTP date), OpenAI's `x-ratelimit-reset-requests` /
/// `x-ratelimit-reset-tokens` (the exhausted one, else the later), and a Google `RetryInfo`
/// in the body.
pub(super) fn retry_after(headers: &HeaderMap, body: &str, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(value) = header("retry-after") {
        if let Ok(secs) = value.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(Duration::from_secs_f64(secs));
        }
        if let Some(at) = parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    let reset =
        |kind: &str| header(&format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration);
    let exhausted = |kind: &str| header(&format!("x-ratelimit-remaining-{kind}")) == Some("0");
    let (requests, tokens) = (reset("requests"), reset("tokens"));
    let openai = match (exhausted("requests"), exhausted("tokens")) {
        (true, false) => requests,
        (false, true) => tokens,
        _ => requests.max(tokens),
    };
    if openai.is_some() {
        return openai;
    }
    google_retry_info(body)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (the IMF-fixdate form of RFC 9110).
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    Some(SystemTime::from(at))
}

/// A Go-style duration as OpenAI sends it: `20ms`, `1s`, `6m0s`, `1h2m3.5s`.
pub(super) fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    total
        .is_finite()
        .then(|| Duration::from_secs_f64(total.max(0.0)))
}

/// `retryDelay` of a `google.rpc.RetryInfo` detail in a Google error body (`"46s"`).
fn google_retry_info(body: &str) -> Option<Duration> {
    let value: Value = serde_json::from_str(body).ok()?;
    let value = match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    value
        .pointer("/error/details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(|delay| {
            let secs: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
            (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
        })
}

/// An error and its sources, joined, so "connection reset by peer" is not lost.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn retry_after_in_seconds_milliseconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_747); // 06 Nov 1994 08:49:07
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(retry_after(&h, "", now), Some(Duration::from_secs(7)));
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "7")]);
        assert_eq!(retry_after(&h, "", now), Some(Duration::from_millis(1500)));
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(retry_after(&h, "", now), Some(Duration::from_secs(30)));
        let later = now + Duration::from_secs(100);
        assert_eq!(retry_after(&h, "", later), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[]), "", now), None);
    }

    #[test]
    fn openai_reset_headers_pick_the_exhausted_limit() {
        let now = SystemTime::now();
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-remaining-tokens", "12000"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h, "", now), Some(Duration::from_secs(2)));
        let h = headers(&[
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-reset-tokens", "1m30s"),
        ]);
        assert_eq!(retry_after(&h, "", now), Some(Duration::from_secs(90)));
    }

    #[test]
    fn google_retry_info_in_the_body() {
        let body = r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"46s"}]}}"#;
        assert_eq!(
            retry_after(&headers(&[]), body, SystemTime::now()),
            Some(Duration::from_secs(46))
        );
        assert_eq!(
            error_message(body, 429),
            "RESOURCE_EXHAUSTED: Quota exceeded"
        );
    }

    #[test]
    fn error_messages_of_each_provider() {
        let openai = r#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            error_message(openai, 404),
            "invalid_request_error: The model `gpt-9` does not exist"
        );
        let anthropic =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            error_message(anthropic, 529),
            "overloaded_error: Overloaded"
        );
        let ollama = r#"{"error":"model \"llama9\" not found, try pulling it first"}"#;
        assert_eq!(
            error_message(ollama, 404),
            "model \"llama9\" not found, try pulling it first"
        );
        assert_eq!(error_message("", 503), "Service Unavailable");
        assert_eq!(
            error_message("<html>bad gateway</html>", 502),
            "<html>bad gateway</html>"
        );
    }
}
