//! What goes out: BotArmy's [`ChatRequest`] as genai's request and options, and the URL and
//! headers of the call, which BotArmy sets itself so every provider is reached exactly where
//! and how it is configured.

use std::collections::HashMap;

use genai::chat::{
    ChatMessage as GMessage, ChatOptions, ChatRequest as GRequest, ContentPart, MessageContent,
    Tool, ToolCall as GToolCall, ToolResponse,
};

use super::config::{CloudKind, Wire};
use crate::{ChatRequest, Role};

/// Genai's request for `request`, or a message naming the message that cannot be sent.
pub(super) fn conversation(request: &ChatRequest) -> Result<GRequest, String> {
    let mut messages = Vec::with_capacity(request.messages.len());
    // Tool names by call id, for providers that answer a call by name (Gemini).
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, m) in request.messages.iter().enumerate() {
        let message = match m.role {
            Role::System => GMessage::system(m.content.as_str()),
            Role::User => GMessage::user(m.content.as_str()),
            Role::Assistant if m.tool_calls.is_empty() => GMessage::assistant(m.content.as_str()),
            Role::Assistant => {
                let mut parts = Vec::with_capacity(m.tool_calls.len() + 1);
                if !m.content.is_empty() {
                    parts.push(ContentPart::Text(m.content.clone()));
                }
                for call in &m.tool_calls {
                    call_names.insert(&call.id, &call.name);
                    parts.push(ContentPart::ToolCall(GToolCall {
                        call_id: call.id.clone(),
                        fn_name: call.name.clone(),
                        fn_arguments: call.arguments.clone(),
                        thought_signatures: None,
                    }));
                }
                GMessage::assistant(MessageContent::from_parts(parts))
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().ok_or_else(|| {
                    format!("message {i} is a tool result without `tool_call_id`")
                })?;
                let mut response = ToolResponse::new(id, m.content.as_str());
                response.fn_name = call_names.get(id).map(|n| (*n).to_owned());
                GMessage::from(response)
            }
        };
        messages.push(message);
    }
    if messages.is_empty() {
        return Err("the request has no messages".to_owned());
    }
    let tools: Vec<Tool> = request
        .tools
        .iter()
        .map(|t| {
            Tool::new(t.name.as_str())
                .with_description(t.description.as_str())
                .with_schema(t.parameters.clone())
        })
        .collect();
    let mut out = GRequest::from_messages(messages);
    if !tools.is_empty() {
        out = out.with_tools(tools);
    }
    Ok(out)
}

/// Genai's options for `request`: sampling, limits, and everything captured for the answer.
pub(super) fn options(request: &ChatRequest, kind: CloudKind) -> ChatOptions {
    let mut options = ChatOptions::default()
        .with_temperature(f64::from(request.temperature))
        .with_capture_usage(true)
        .with_capture_content(true)
        .with_capture_tool_calls(true);
    if request.max_tokens > 0 {
        options = options.with_max_tokens(request.max_tokens);
    }
    if !request.stop.is_empty() {
        options = options.with_stop_sequences(request.stop.clone());
    }
    // Anthropic has no seed; the others use it for reproducible sampling.
    if kind.wire() != Wire::Messages {
        options = options.with_seed(request.seed);
    }
    options
}

/// Which of genai's adapters builds the body and reads the answer. Vertex's Gemini models take
/// the Gemini body; the URL and authorisation are BotArmy's (see [`target`]).
pub(super) fn adapter(kind: CloudKind) -> genai::adapter::AdapterKind {
    use genai::adapter::AdapterKind as A;
    match kind.wire() {
        Wire::ChatCompletions => A::OpenAI,
        Wire::Messages => A::Anthropic,
        Wire::GenerateContent => A::Gemini,
    }
}

/// How a call is authorised.
pub(super) enum Credential<'a> {
    /// Nothing (a local OpenAI-compatible server).
    None,
    /// The provider's API key, sent in the kind's header.
    ApiKey(&'a str),
    /// An OAuth access token (`Authorization: Bearer`).
    Bearer(&'a str),
}

/// The URL of a chat call for `model` on `base` (no trailing slash), streamed or not.
pub(super) fn chat_url(kind: CloudKind, base: &str, model: &str, stream: bool) -> String {
    match kind.wire() {
        Wire::ChatCompletions => format!("{base}/chat/completions"),
        Wire::Messages => format!("{base}/v1/messages"),
        Wire::GenerateContent => {
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            format!("{base}/models/{model}:{method}")
        }
    }
}

/// The headers of every call: authorisation in the kind's form, the kind's version header,
/// then the configured extra headers.
pub(super) fn headers(
    kind: CloudKind,
    credential: Credential<'_>,
    extra: &[(String, String)],
) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    match (kind.wire(), credential) {
        (_, Credential::None) => {}
        (_, Credential::Bearer(token)) => {
            headers.insert("authorization".to_owned(), format!("Bearer {token}"));
        }
        (Wire::ChatCompletions, Credential::ApiKey(key)) => {
            headers.insert("authorization".to_owned(), format!("Bearer {key}"));
        }
        (Wire::Messages, Credential::ApiKey(key)) => {
            headers.insert("x-api-key".to_owned(), key.to_owned());
        }
        (Wire::GenerateContent, Credential::ApiKey(key)) => {
            headers.insert("x-goog-api-key".to_owned(), key.to_owned());
        }
    }
    if kind.wire() == Wire::Messages {
        headers.insert("anthropic-version".to_owned(), "2023-06-01".to_owned());
    }
    for (name, value) in extra {
        headers.insert(name.to_ascii_lowercase(), value.clone());
    }
    headers
}

/// Genai's target for a call: our URL and headers override whatever genai would derive.
pub(super) fn target(
    kind: CloudKind,
    model: &str,
    url: String,
    headers: HashMap<String, String>,
) -> genai::ServiceTarget {
    genai::ServiceTarget {
        endpoint: genai::resolver::Endpoint::from_owned(url.clone()),
        auth: genai::resolver::AuthData::RequestOverride {
            url,
            headers: headers.into(),
        },
        model: genai::ModelIden::new(adapter(kind), model),
    }
}
