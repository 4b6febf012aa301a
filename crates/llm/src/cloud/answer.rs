//! What comes back: a streamed (or whole) genai answer read into BotArmy's [`ChatResponse`],
//! with every text piece passed on as it arrives and a stream that ends early reported as
//! such.

use futures_util::StreamExt;
use genai::chat::{ChatStream, ChatStreamEvent, StopReason, StreamEnd};
use serde_json::Value;

use super::config::Wire;
use super::failure::{self, Limits};
use crate::{FinishReason, LlmError, TokenSink, ToolCall};
use botarmy_protocol::Usage;

/// The parts of an answer, before the provider and model are attached.
pub(super) struct Answer {
    pub text: String,
    pub usage: Usage,
    pub finish: FinishReason,
    pub tool_calls: Vec<ToolCall>,
}

/// Reads `stream` to its end, passing text to `on_token`. The stream must end with the wire
/// format's terminal event (`[DONE]`, `message_stop`, a chunk with `finishReason`); one that
/// stops short is a [`LlmError::Transient`].
pub(super) async fn read_stream(
    provider: &str,
    wire: Wire,
    mut stream: ChatStream,
    on_token: TokenSink<'_>,
    limits: &Limits,
) -> Result<Answer, LlmError> {
    let mut text = String::new();
    let mut end: Option<StreamEnd> = None;
    while let Some(event) = stream.next().await {
        match event.map_err(|e| failure::from_genai(provider, e, limits))? {
            ChatStreamEvent::Chunk(chunk) if !chunk.content.is_empty() => {
                on_token(&chunk.content);
                text.push_str(&chunk.content);
            }
            ChatStreamEvent::End(e) => end = Some(e),
            _ => {}
        }
    }
    let truncated = |what: &str| LlmError::Transient {
        provider: provider.to_owned(),
        message: format!("the stream ended before {what}: the answer was cut short"),
    };
    let Some(end) = end else {
        return Err(truncated(match wire {
            Wire::ChatCompletions => "its `data: [DONE]` line",
            Wire::Messages => "its `message_stop` event",
            Wire::GenerateContent => "a chunk with a `finishReason`",
        }));
    };
    // Gemini has no end marker of its own: genai closes every stream with an end, and only a
    // finish reason tells a finished answer from a cut one.
    if wire == Wire::GenerateContent && end.captured_stop_reason.is_none() {
        return Err(truncated("a chunk with a `finishReason`"));
    }
    let tool_calls = match end.captured_tool_calls() {
        Some(calls) => calls
            .into_iter()
            .map(|c| tool_call(provider, c))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(Answer {
        usage: usage(end.captured_usage.as_ref()),
        finish: finish(end.captured_stop_reason.as_ref(), !tool_calls.is_empty()),
        text,
        tool_calls,
    })
}

/// A whole (not streamed) answer; its text is passed to `on_token` in one piece.
pub(super) fn read_whole(
    provider: &str,
    response: genai::chat::ChatResponse,
    on_token: TokenSink<'_>,
) -> Result<Answer, LlmError> {
    let text: String = response.texts().concat();
    let tool_calls = response
        .tool_calls()
        .into_iter()
        .map(|c| tool_call(provider, c))
        .collect::<Result<Vec<_>, _>>()?;
    if !text.is_empty() {
        on_token(&text);
    }
    Ok(Answer {
        usage: usage(Some(&response.usage)),
        finish: finish(response.stop_reason.as_ref(), !tool_calls.is_empty()),
        text,
        tool_calls,
    })
}

/// A tool call with its arguments as a JSON value; arguments that are not valid JSON mean the
/// answer was damaged.
fn tool_call(provider: &str, call: &genai::chat::ToolCall) -> Result<ToolCall, LlmError> {
    let arguments = match &call.fn_arguments {
        Value::String(s) if s.trim().is_empty() => Value::Object(Default::default()),
        Value::String(s) => serde_json::from_str(s).map_err(|e| LlmError::Transient {
            provider: provider.to_owned(),
            message: format!(
                "malformed JSON in the arguments of tool call `{}` ({}): {e}",
                call.fn_name, call.call_id
            ),
        })?,
        other => other.clone(),
    };
    Ok(ToolCall {
        id: call.call_id.clone(),
        name: call.fn_name.clone(),
        arguments,
    })
}

/// Tokens as the provider counted them; cached prompt tokens are part of the input.
fn usage(usage: Option<&genai::chat::Usage>) -> Usage {
    let count = |n: Option<i32>| n.map_or(0, |n| u64::try_from(n).unwrap_or(0));
    let Some(u) = usage else {
        return Usage {
            calls: 1,
            ..Usage::default()
        };
    };
    Usage {
        input_tokens: count(u.prompt_tokens),
        output_tokens: count(u.completion_tokens),
        cached_tokens: count(
            u.prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens),
        ),
        cost_usd: 0.0,
        calls: 1,
    }
}

/// Why the model stopped, in BotArmy's terms. A model that asked for tools stopped for them
/// (Gemini says `STOP` even then).
fn finish(reason: Option<&StopReason>, has_tool_calls: bool) -> FinishReason {
    let finish = match reason {
        Some(StopReason::MaxTokens(_)) => FinishReason::Length,
        Some(StopReason::ToolCall(_)) => FinishReason::ToolCalls,
        Some(StopReason::ContentFilter(_)) => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    };
    if has_tool_calls && finish == FinishReason::Stop {
        FinishReason::ToolCalls
    } else {
        finish
    }
}
