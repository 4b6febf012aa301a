//! The replay provider, which answers from a cassette, and the recording provider, which
//! writes one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::cassette::{CassetteError, CassetteWriter, Exchange, read_cassette};
use crate::{ChatRequest, ChatResponse, LlmError, Provider, TokenSink};

/// Answers requests with the responses recorded in a cassette, matched by
/// [`ChatRequest::digest`]. Identical requests get their recorded answers in recorded order.
/// Responses keep the provider and model that originally answered.
#[derive(Debug)]
pub struct ReplayProvider {
    path: PathBuf,
    answers: Mutex<HashMap<String, Recorded>>,
    /// Whether the recorded session offered tools to the model.
    tools: bool,
}

#[derive(Debug)]
struct Recorded {
    responses: Vec<ChatResponse>,
    served: usize,
}

impl ReplayProvider {
    /// Loads the cassette at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CassetteError> {
        let path = path.as_ref();
        let mut answers: HashMap<String, Recorded> = HashMap::new();
        let mut tools = false;
        for exchange in read_cassette(path)? {
            tools |= !exchange.request.tools.is_empty();
            answers
                .entry(exchange.digest)
                .or_insert_with(|| Recorded {
                    responses: Vec::new(),
                    served: 0,
                })
                .responses
                .push(exchange.response);
        }
        Ok(Self {
            path: path.to_owned(),
            answers: Mutex::new(answers),
            tools,
        })
    }

    /// The cassette's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_answer(&self, digest: &str) -> Result<ChatResponse, LlmError> {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let not_found = |call| LlmError::NotInCassette {
            cassette: self.path.display().to_string(),
            digest: digest.to_owned(),
            call,
        };
        let Some(recorded) = answers.get_mut(digest) else {
            return Err(not_found(0));
        };
        let Some(response) = recorded.responses.get(recorded.served) else {
            return Err(not_found(recorded.served));
        };
        recorded.served += 1;
        Ok(response.clone())
    }
}

#[async_trait]
impl Provider for ReplayProvider {
    fn id(&self) -> &str {
        "replay"
    }

    fn default_model(&self) -> &str {
        "replay"
    }

    fn supports_tools(&self) -> bool {
        self.tools
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let response = self.next_answer(&request.digest())?;
        for piece in pieces(&response.text) {
            on_token(piece);
        }
        Ok(response)
    }
}

/// Splits text into small token-like pieces (a word with its trailing space, at most 16
/// bytes, on character boundaries) for streaming.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        for (at, ch) in rest.char_indices() {
            if at > 0 && at + ch.len_utf8() > 16 {
                break;
            }
            end = at + ch.len_utf8();
            if ch.is_whitespace() {
                break;
            }
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// Wraps a provider and appends every completed exchange to a cassette. Failed calls are not
/// recorded. Its id is the wrapped provider's.
pub struct RecordingProvider {
    inner: Arc<dyn Provider>,
    cassette: Arc<CassetteWriter>,
}

impl RecordingProvider {
    /// Records `inner`'s exchanges to `cassette` (which several recording providers may share).
    pub fn new(inner: Arc<dyn Provider>, cassette: Arc<CassetteWriter>) -> Self {
        Self { inner, cassette }
    }
}

impl std::fmt::Debug for RecordingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingProvider")
            .field("inner", &self.inner.id())
            .field("cassette", &self.cassette.path())
            .finish()
    }
}

#[async_trait]
impl Provider for RecordingProvider {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    fn supports_tools(&self) -> bool {
        self.inner.supports_tools()
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let response = self.inner.chat(request, on_token).await?;
        let exchange = Exchange {
            digest: request.digest(),
            request: request.clone(),
            response,
        };
        self.cassette
            .append(&exchange)
            .map_err(|e| LlmError::Fatal {
                provider: self.inner.id().to_owned(),
                message: format!("the answer could not be recorded: {e}"),
            })?;
        Ok(exchange.response)
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_cover_the_text_on_char_boundaries() {
        let text = "Hello wörld, a verylongwordwithoutanyspaces 😀😀😀😀😀 end";
        let parts: Vec<&str> = pieces(text).collect();
        assert_eq!(parts.concat(), text);
        assert!(parts.len() > 5);
        assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= 16));
        assert_eq!(parts[0], "Hello ");
        assert_eq!(pieces("").count(), 0);
    }
}
