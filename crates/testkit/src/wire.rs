//! The three wire formats LLM providers speak, as the providers write them: streamed answers
//! (their SSE events, with the usage where each format puts it), whole answers, error bodies,
//! and what a request asks for.

use serde_json::{Value, json};

use crate::server::Recorded;

/// A provider's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions, also spoken by Ollama, vLLM, LM Studio and other
    /// OpenAI-compatible servers.
    ChatCompletions,
    /// Anthropic Messages.
    Messages,
    /// Gemini `generateContent`, on the Gemini API and on Vertex AI.
    GenerateContent,
}

/// The tokens of one answer as the provider bills them: `input` counts every prompt token,
/// `cached` those of them served from the provider's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Prompt tokens read from the cache (part of `input`).
    pub cached: u64,
    /// Generated tokens.
    pub output: u64,
}

impl Wire {
    /// Whether `request` is a call of this format's chat endpoint (method and path).
    pub fn is_chat(self, request: &Recorded) -> bool {
        let path = request.path();
        request.method == "POST"
            && match self {
                Self::ChatCompletions => path.ends_with("/chat/completions"),
                Self::Messages => path.ends_with("/v1/messages"),
                Self::GenerateContent => {
                    path.contains("/models/")
                        && (path.ends_with(":streamGenerateContent")
                            || path.ends_with(":generateContent"))
                }
            }
    }

    /// Whether `request` asks for a streamed answer.
    pub fn wants_stream(self, request: &Recorded, body: &Value) -> bool {
        match self {
            Self::ChatCompletions | Self::Messages => body["stream"] == true,
            Self::GenerateContent => request.path().ends_with(":streamGenerateContent"),
        }
    }

    /// The model a request names (in its body, or in its path for Gemini).
    pub fn model(self, request: &Recorded, body: &Value) -> Option<String> {
        match self {
            Self::ChatCompletions | Self::Messages => body["model"].as_str().map(str::to_owned),
            Self::GenerateContent => {
                let (_, after) = request.path().rsplit_once("/models/")?;
                let (model, _) = after.split_once(':')?;
                Some(model.to_owned())
            }
        }
    }

    /// The largest answer a request allows, in tokens, if it says.
    pub fn max_tokens(self, body: &Value) -> Option<u64> {
        match self {
            Self::ChatCompletions => body["max_completion_tokens"]
                .as_u64()
                .or_else(|| body["max_tokens"].as_u64()),
            Self::Messages => body["max_tokens"].as_u64(),
            Self::GenerateContent => body["generationConfig"]["maxOutputTokens"].as_u64(),
        }
    }

    /// Every piece of text of a request's messages (system prompt included), in order.
    pub fn prompt_texts(self, body: &Value) -> Vec<String> {
        let mut texts = Vec::new();
        let mut push_content = |content: &Value| match content {
            Value::String(s) => texts.push(s.clone()),
            Value::Array(parts) => texts.extend(
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str().map(str::to_owned)),
            ),
            _ => {}
        };
        match self {
            Self::ChatCompletions => {
                for message in body["messages"].as_array().into_iter().flatten() {
                    push_content(&message["content"]);
                }
            }
            Self::Messages => {
                push_content(&body["system"]);
                for message in body["messages"].as_array().into_iter().flatten() {
                    push_content(&message["content"]);
                }
            }
            Self::GenerateContent => {
                push_content(&body["systemInstruction"]["parts"]);
                for content in body["contents"].as_array().into_iter().flatten() {
                    push_content(&content["parts"]);
                }
            }
        }
        texts
    }

    /// A streamed answer: `pieces` of text, then the end of the answer with `tokens`, as the
    /// SSE events the provider sends (each ending with its blank line). `id` names the
    /// answer.
    pub fn stream(self, id: &str, model: &str, pieces: &[String], tokens: Tokens) -> Vec<String> {
        let data = |value: Value| format!("data: {value}\n\n");
        let named = |name: &str, value: Value| format!("event: {name}\ndata: {value}\n\n");
        let mut events = Vec::new();
        match self {
            Self::ChatCompletions => {
                let chunk = |delta: Value, finish: Value| {
                    json!({
                        "id": id, "object": "chat.completion.chunk", "created": 1_760_000_000,
                        "model": model, "system_fingerprint": "fp_testkit",
                        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                        "usage": null,
                    })
                };
                events.push(data(chunk(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    Value::Null,
                )));
                for piece in pieces {
                    events.push(data(chunk(json!({"content": piece}), Value::Null)));
                }
                events.push(data(chunk(json!({}), json!("stop"))));
                events.push(data(json!({
                    "id": id, "object": "chat.completion.chunk", "created": 1_760_000_000,
                    "model": model, "system_fingerprint": "fp_testkit", "choices": [],
                    "usage": openai_usage(tokens),
                })));
                events.push("data: [DONE]\n\n".to_owned());
            }
            Self::Messages => {
                events.push(named(
                    "message_start",
                    json!({"type": "message_start", "message": {
                        "id": id, "type": "message", "role": "assistant", "content": [],
                        "model": model, "stop_reason": null, "stop_sequence": null,
                        "usage": {
                            "input_tokens": tokens.input - tokens.cached,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": tokens.cached,
                            "output_tokens": 1,
                        },
                    }}),
                ));
                events.push(named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ));
                events.push(named("ping", json!({"type": "ping"})));
                for piece in pieces {
                    events.push(named(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                    ));
                }
                events.push(named(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ));
                events.push(named(
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                           "usage": {"output_tokens": tokens.output}}),
                ));
                events.push(named("message_stop", json!({"type": "message_stop"})));
            }
            Self::GenerateContent => {
                let last = pieces.len().saturating_sub(1);
                for (i, piece) in pieces.iter().enumerate() {
                    let mut candidate = json!({
                        "content": {"parts": [{"text": piece}], "role": "model"},
                        "index": 0,
                    });
                    // Every chunk carries the usage so far; the last one the whole of it.
                    let usage = if i == last {
                        candidate["finishReason"] = json!("STOP");
                        gemini_usage(tokens)
                    } else {
                        json!({"promptTokenCount": tokens.input, "totalTokenCount": tokens.input})
                    };
                    events.push(data(json!({
                        "candidates": [candidate],
                        "usageMetadata": usage,
                        "modelVersion": model,
                        "responseId": id,
                    })));
                }
            }
        }
        events
    }

    /// A whole (not streamed) answer's JSON body.
    pub fn whole(self, id: &str, model: &str, text: &str, tokens: Tokens) -> String {
        let body = match self {
            Self::ChatCompletions => json!({
                "id": id, "object": "chat.completion", "created": 1_760_000_000, "model": model,
                "system_fingerprint": "fp_testkit",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                             "logprobs": null, "finish_reason": "stop"}],
                "usage": openai_usage(tokens),
            }),
            Self::Messages => json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {
                    "input_tokens": tokens.input - tokens.cached,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": tokens.cached,
                    "output_tokens": tokens.output,
                },
            }),
            Self::GenerateContent => json!({
                "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": gemini_usage(tokens),
                "modelVersion": model,
                "responseId": id,
            }),
        };
        body.to_string()
    }

    /// The JSON error body the provider sends with `status`.
    pub fn error(self, status: u16, message: &str) -> String {
        let body = match self {
            Self::ChatCompletions => {
                let (kind, code) = match status {
                    401 => ("invalid_request_error", json!("invalid_api_key")),
                    404 => ("invalid_request_error", json!("model_not_found")),
                    429 => ("requests", json!("rate_limit_exceeded")),
                    400..=499 => ("invalid_request_error", Value::Null),
                    _ => ("server_error", Value::Null),
                };
                json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            }
            Self::Messages => {
                let kind = match status {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
            Self::GenerateContent => {
                let kind = match status {
                    400 => "INVALID_ARGUMENT",
                    401 => "UNAUTHENTICATED",
                    403 => "PERMISSION_DENIED",
                    404 => "NOT_FOUND",
                    429 => "RESOURCE_EXHAUSTED",
                    503 => "UNAVAILABLE",
                    504 => "DEADLINE_EXCEEDED",
                    _ => "INTERNAL",
                };
                json!({"error": {"code": status, "message": message, "status": kind}})
            }
        };
        body.to_string()
    }
}

fn openai_usage(tokens: Tokens) -> Value {
    json!({
        "prompt_tokens": tokens.input,
        "completion_tokens": tokens.output,
        "total_tokens": tokens.input + tokens.output,
        "prompt_tokens_details": {"cached_tokens": tokens.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

fn gemini_usage(tokens: Tokens) -> Value {
    let mut usage = json!({
        "promptTokenCount": tokens.input,
        "candidatesTokenCount": tokens.output,
        "totalTokenCount": tokens.input + tokens.output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens.input}],
    });
    if tokens.cached > 0 {
        usage["cachedContentTokenCount"] = json!(tokens.cached);
        usage["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": tokens.cached}]);
    }
    usage
}
