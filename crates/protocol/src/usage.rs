use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

/// Tokens and money spent by one LLM call, or summed over many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache (a subset of `input_tokens`).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Cost in US dollars, zero for local models.
    #[serde(default)]
    pub cost_usd: f64,
    /// Number of LLM calls summed into this value.
    #[serde(default)]
    pub calls: u64,
}

impl Usage {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
        self.cached_tokens += rhs.cached_tokens;
        self.cost_usd += rhs.cost_usd;
        self.calls += rhs.calls;
    }
}
