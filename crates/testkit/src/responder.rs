//! A provider that answers any number of chat requests in its own wire format, each with a
//! short Markdown document, and remembers what it answered (model, tokens, text) so a test
//! can add up what a run should have cost.

use std::sync::{Arc, Mutex};

use crate::server::{End, MockServer, Recorded, Reply, lock};
use crate::wire::{Tokens, Wire};

/// One answer a [`Responder`] gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The model the request named.
    pub model: String,
    /// The usage the answer reported.
    pub tokens: Tokens,
    /// The whole text.
    pub text: String,
    /// Whether it was streamed.
    pub streamed: bool,
}

/// Answers chat requests of one wire format (see [`Responder::reply`]).
#[derive(Clone)]
pub struct Responder {
    wire: Wire,
    label: String,
    required: Arc<Vec<(String, String)>>,
    answered: Arc<Mutex<Vec<Answered>>>,
}

impl Responder {
    /// A responder of `wire` whose answers say they come from `label`.
    pub fn new(wire: Wire, label: &str) -> Self {
        Self {
            wire,
            label: label.to_owned(),
            required: Arc::default(),
            answered: Arc::default(),
        }
    }

    /// Requests without header `name` set to `value` (the key) are refused with 401, as the
    /// provider refuses a wrong key.
    pub fn requiring(mut self, name: &str, value: &str) -> Self {
        Arc::make_mut(&mut self.required).push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The wire format.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// The answers given so far, in order.
    pub fn answered(&self) -> Vec<Answered> {
        lock(&self.answered).clone()
    }

    /// A server answering every request with [`Responder::reply`].
    pub async fn serve(&self) -> MockServer {
        let me = self.clone();
        MockServer::start(move |request, _| me.reply(request)).await
    }

    /// The provider's answer to `request`.
    ///
    /// A chat request (the format's method and path, a JSON body naming a model, the
    /// required headers) gets answer number `n` (from 1):
    ///
    /// ```text
    /// # <label> answer <n>
    ///
    /// Written by `<model>` at <label>.
    /// ...
    /// ```
    ///
    /// streamed as the format's SSE events when the request asks for a stream, else as one
    /// JSON body. Its usage: one input token per four characters of the prompt (a quarter of
    /// them cached), one output token per word of the answer. Anything else gets the
    /// format's error body: 404 for another endpoint, 401 for a missing or wrong key, 400
    /// for a body that is not JSON or names no model.
    pub fn reply(&self, request: &Recorded) -> Reply {
        let wire = self.wire;
        let error = |status: u16, message: &str| Reply::json(status, &wire.error(status, message));
        if !wire.is_chat(request) {
            return error(
                404,
                &format!("no such endpoint: {} {}", request.method, request.target),
            );
        }
        for (name, value) in self.required.iter() {
            if request.header(name) != Some(value.as_str()) {
                return error(401, &format!("invalid credentials in header {name}"));
            }
        }
        let Some(body) = request.try_json() else {
            return error(400, "the body is not JSON");
        };
        let Some(model) = wire.model(request, &body).filter(|m| !m.is_empty()) else {
            return error(400, "no model named");
        };
        let prompt_chars: usize = wire
            .prompt_texts(&body)
            .iter()
            .map(|t| t.chars().count())
            .sum();
        let streamed = wire.wants_stream(request, &body);
        let mut answered = lock(&self.answered);
        let n = answered.len() + 1;
        let label = &self.label;
        let text = format!(
            "# {label} answer {n}\n\nWritten by `{model}` at {label}.\n\n## Points\n\n\
             - The first point of answer {n}.\n- The second point, with a number: {}.\n",
            n * 7
        );
        let input = (prompt_chars as u64).div_ceil(4).max(1);
        let tokens = Tokens {
            input,
            cached: input / 4,
            output: text.split_whitespace().count() as u64,
        };
        let id = format!("{label}-{n}");
        let reply = if streamed {
            let pieces: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
            Reply::Sse {
                events: wire.stream(&id, &model, &pieces, tokens),
                end: End::Close,
            }
        } else {
            Reply::json(200, &wire.whole(&id, &model, &text, tokens))
        };
        answered.push(Answered {
            model,
            tokens,
            text,
            streamed,
        });
        reply
    }
}

/// A server that answers every request with `status` and the error body of `wire` (an
/// outage: 503 with a JSON error).
pub async fn failing(wire: Wire, status: u16, message: &str) -> MockServer {
    MockServer::always(Reply::json(status, &wire.error(status, message))).await
}
