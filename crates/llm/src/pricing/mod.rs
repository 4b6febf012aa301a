//! What a call costs: a dated price table per provider and model, shipped as a data file
//! (`pricing.toml`, embedded) and overridable from configuration.
//!
//! Prices are US dollars per million tokens for fresh input, cached input and output. A
//! model is found by its exact name, else by the longest priced name it extends at a `-`
//! boundary (`gpt-4o-2024-08-06` is priced as `gpt-4o`; `gpt-4o-mini` has its own row). A
//! provider can be free as a whole (`local`, `replay`, `ollama`) or price its models as
//! another provider does (`vertex` as `gemini`). Anything else is [`PriceLookup::Unknown`]:
//! the caller prices it at zero and warns once ([`PriceTable::cost_or_warn`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use botarmy_protocol::Usage;
use serde::Deserialize;
use toml::Spanned;

/// The built-in table, checked by a test to parse.
const BUILTIN: &str = include_str!("../../pricing.toml");

/// Tokens per pricing unit.
const MTOK: f64 = 1_000_000.0;

/// What one model costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// USD per million fresh (uncached) input tokens.
    pub input_per_mtok: f64,
    /// USD per million output tokens.
    pub output_per_mtok: f64,
    /// USD per million input tokens served from the provider's cache; `None`: the input rate.
    pub cached_input_per_mtok: Option<f64>,
    /// When the price was read (`YYYY-MM-DD`).
    pub as_of: String,
}

impl Price {
    /// The cost of `usage` in USD. Cached tokens are part of `input_tokens`: they are billed
    /// at the cached rate (if there is one) and the rest at the input rate.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let input = usage.input_tokens as f64;
        let output = usage.output_tokens as f64 * self.output_per_mtok;
        let prompt = match self.cached_input_per_mtok {
            Some(cached_rate) => {
                let cached = usage.cached_tokens.min(usage.input_tokens) as f64;
                (input - cached) * self.input_per_mtok + cached * cached_rate
            }
            None => input * self.input_per_mtok,
        };
        (prompt + output) / MTOK
    }
}

/// The answer of [`PriceTable::lookup`].
#[derive(Debug, Clone, PartialEq)]
pub enum PriceLookup {
    /// The model has this price.
    Priced(Price),
    /// The provider costs nothing (a local model, a replay).
    Free,
    /// Neither the provider nor the model is in the table.
    Unknown,
}

/// A price table that cannot be used, naming where, which field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// Not TOML, or not the shape of a price table (an unknown or missing field, a text
    /// where a number belongs).
    #[error("{origin}:{line}: {message}")]
    Syntax {
        /// The file or config section it came from.
        origin: String,
        /// 1-based line (0: the parser did not say).
        line: usize,
        /// What the parser reported.
        message: String,
    },
    /// A value of the right type that makes no sense.
    #[error("{origin}:{line}: {field}: {problem}")]
    Invalid {
        /// The file or config section it came from.
        origin: String,
        /// 1-based line.
        line: usize,
        /// Dotted path of the field (`providers.openai.models."gpt-4o".input_per_mtok`).
        field: String,
        /// What was found and what was expected.
        problem: String,
    },
}

/// One provider's part of the table.
#[derive(Debug, Clone, Default, PartialEq)]
struct ProviderPrices {
    /// `Some(true)`: every model not priced here is free. `None`: not said (an override
    /// leaves the base's choice).
    free: Option<bool>,
    /// Models not priced here are looked up under this provider.
    prices_as: Option<String>,
    /// Model name (lowercase) to price.
    models: BTreeMap<String, Price>,
}

/// Prices per provider and model. Cheap to look up (a few map probes per call).
pub struct PriceTable {
    /// Date of the table as a whole.
    as_of: Option<String>,
    providers: BTreeMap<String, ProviderPrices>,
    /// Provider/model pairs already warned about by [`PriceTable::cost_or_warn`].
    warned: Mutex<HashSet<(String, String)>>,
}

impl Clone for PriceTable {
    /// A copy of the prices; its warnings start afresh.
    fn clone(&self) -> Self {
        Self {
            as_of: self.as_of.clone(),
            providers: self.providers.clone(),
            warned: Mutex::default(),
        }
    }
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("as_of", &self.as_of)
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PriceTable {
    fn eq(&self, other: &Self) -> bool {
        self.as_of == other.as_of && self.providers == other.providers
    }
}

/// One row of [`PriceTable::entries`].
#[derive(Debug, Clone, PartialEq)]
pub enum PriceEntry {
    /// A priced model.
    Model {
        /// Provider id.
        provider: String,
        /// Model name (or the prefix it prices).
        model: String,
        /// Its price.
        price: Price,
    },
    /// Every model of this provider is free.
    FreeProvider {
        /// Provider id.
        provider: String,
    },
    /// Models of `provider` that are not priced under it are priced as `prices_as`'s.
    Alias {
        /// Provider id.
        provider: String,
        /// The provider whose prices it uses.
        prices_as: String,
    },
}

impl PriceTable {
    /// The table shipped with BotArmy (`crates/llm/pricing.toml`).
    pub fn builtin() -> PriceTable {
        // The embedded file is tested to parse (`builtin_table_parses`); should it ever not,
        // an empty table prices everything as unknown (zero, with a warning) rather than
        // stopping the program.
        Self::from_toml(BUILTIN, "pricing.toml (built in)").unwrap_or_else(|_| PriceTable {
            as_of: None,
            providers: BTreeMap::new(),
            warned: Mutex::default(),
        })
    }

    /// Parses a table in the format of `pricing.toml`. `origin` names where the text came
    /// from (a path, `botarmy.toml [pricing]`) in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| PricingError::Syntax {
            origin: origin.to_owned(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            message: e.message().trim().to_owned(),
        })?;
        let cx = Checker { text, origin };
        let top_date = doc
            .as_of
            .as_ref()
            .map(|d| cx.date(d, "as_of"))
            .transpose()?;
        let mut providers = BTreeMap::new();
        for (id, p) in doc.providers {
            let id_path = format!("providers.{}", quote_key(&id));
            let provider_date = p
                .as_of
                .as_ref()
                .map(|d| cx.date(d, &format!("{id_path}.as_of")))
                .transpose()?;
            let mut models = BTreeMap::new();
            for (name, m) in p.models {
                let path = format!("{id_path}.models.{}", quote_key(&name));
                let as_of = match &m.as_of {
                    Some(d) => cx.date(d, &format!("{path}.as_of"))?,
                    None => match provider_date.as_ref().or(top_date.as_ref()) {
                        Some(d) => d.clone(),
                        None => {
                            return Err(cx.invalid(
                                m.input_per_mtok.span().start,
                                &path,
                                "no as_of date for this price (set `as_of = \"YYYY-MM-DD\"` \
                                 on the model, its provider or the whole table)"
                                    .to_owned(),
                            ));
                        }
                    },
                };
                let price = Price {
                    input_per_mtok: cx.rate(&m.input_per_mtok, &path, "input_per_mtok")?,
                    output_per_mtok: cx.rate(&m.output_per_mtok, &path, "output_per_mtok")?,
                    cached_input_per_mtok: m
                        .cached_input_per_mtok
                        .as_ref()
                        .map(|r| cx.rate(r, &path, "cached_input_per_mtok"))
                        .transpose()?,
                    as_of,
                };
                models.insert(name.to_lowercase(), price);
            }
            let prices_as = p.prices_as.map(|a| {
                let target = a.get_ref().trim().to_lowercase();
                (target, a.span().start)
            });
            if let Some((target, _)) = &prices_as
                && *target == id.to_lowercase()
            {
                return Err(cx.invalid(
                    prices_as.as_ref().map_or(0, |p| p.1),
                    &format!("{id_path}.prices_as"),
                    format!("`{target}` names the provider itself; name another provider"),
                ));
            }
            providers.insert(
                id.to_lowercase(),
                ProviderPrices {
                    free: p.free,
                    prices_as: prices_as.map(|p| p.0),
                    models,
                },
            );
        }
        Ok(PriceTable {
            as_of: top_date,
            providers,
            warned: Mutex::default(),
        })
    }

    /// Lays `overrides` over this table: their models replace or join these, their `free`
    /// and `prices_as` replace these where they set them.
    pub fn merge(&mut self, overrides: PriceTable) {
        for (id, theirs) in overrides.providers {
            let ours = self.providers.entry(id).or_default();
            if theirs.free.is_some() {
                ours.free = theirs.free;
            }
            if theirs.prices_as.is_some() {
                ours.prices_as = theirs.prices_as;
            }
            ours.models.extend(theirs.models);
        }
    }

    /// The date of the table as a whole, if it has one.
    pub fn as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    /// What `model` costs at `provider`: the model's own row, else the longest row it
    /// extends at a `-`; else, if the provider is free, [`PriceLookup::Free`]; else the same
    /// search under the provider it prices as. Provider ids and model names are compared
    /// without regard to case; a `models/` prefix (Gemini's resource names) is ignored.
    /// An `openai-compatible` or `ollama` provider with its own id is looked up under that
    /// id, so configuration can price it.
    pub fn lookup(&self, provider: &str, model: &str) -> PriceLookup {
        let model = model.trim().to_lowercase();
        let model = model.strip_prefix("models/").unwrap_or(&model);
        let mut id = provider.trim().to_lowercase();
        // Bounded by the number of providers, so a cycle of aliases cannot loop forever.
        for _ in 0..=self.providers.len() {
            let Some(prices) = self.providers.get(&id) else {
                return PriceLookup::Unknown;
            };
            if let Some(price) = find_model(&prices.models, model) {
                return PriceLookup::Priced(price.clone());
            }
            if prices.free == Some(true) {
                return PriceLookup::Free;
            }
            match &prices.prices_as {
                Some(next) => id.clone_from(next),
                None => return PriceLookup::Unknown,
            }
        }
        PriceLookup::Unknown
    }

    /// The cost of one call, and a warning the first time (per table) a provider/model pair
    /// has no price: such calls cost zero, which a budget cannot see, so the user must know.
    pub fn cost_or_warn(
        &self,
        provider: &str,
        model: &str,
        usage: &Usage,
    ) -> (f64, Option<String>) {
        match self.lookup(provider, model) {
            PriceLookup::Priced(price) => (price.cost(usage), None),
            PriceLookup::Free => (0.0, None),
            PriceLookup::Unknown => {
                let first = match self.warned.lock() {
                    Ok(mut seen) => seen.insert((provider.to_owned(), model.to_owned())),
                    Err(poisoned) => poisoned
                        .into_inner()
                        .insert((provider.to_owned(), model.to_owned())),
                };
                let warning = first.then(|| {
                    format!(
                        "no price known for {provider}/{model}: its calls are counted as $0 \
                         (add it under [pricing] in botarmy.toml to price it)"
                    )
                });
                (0.0, warning)
            }
        }
    }

    /// Every row, for display: providers in name order, each one's free flag or alias and
    /// its models in name order.
    pub fn entries(&self) -> Vec<PriceEntry> {
        let mut out = Vec::new();
        for (id, prices) in &self.providers {
            if prices.free == Some(true) {
                out.push(PriceEntry::FreeProvider {
                    provider: id.clone(),
                });
            }
            if let Some(target) = &prices.prices_as {
                out.push(PriceEntry::Alias {
                    provider: id.clone(),
                    prices_as: target.clone(),
                });
            }
            for (model, price) in &prices.models {
                out.push(PriceEntry::Model {
                    provider: id.clone(),
                    model: model.clone(),
                    price: price.clone(),
                });
            }
        }
        out
    }
}

/// The exact row, else the longest row that `model` extends at a `-` boundary.
fn find_model<'a>(models: &'a BTreeMap<String, Price>, model: &str) -> Option<&'a Price> {
    let mut candidate = model;
    loop {
        if let Some(price) = models.get(candidate) {
            return Some(price);
        }
        let cut = candidate.rfind('-')?;
        candidate = &candidate[..cut];
    }
}

/// A TOML key as it would be written in a dotted path.
fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Turns spanned values into checked ones, with errors that point at them.
struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    fn invalid(&self, offset: usize, field: &str, problem: String) -> PricingError {
        PricingError::Invalid {
            origin: self.origin.to_owned(),
            line: line_of(self.text, offset),
            field: field.to_owned(),
            problem,
        }
    }

    /// A rate: finite and not negative.
    fn rate(&self, value: &Spanned<f64>, path: &str, name: &str) -> Result<f64, PricingError> {
        let rate = *value.get_ref();
        if rate.is_finite() && rate >= 0.0 {
            Ok(rate)
        } else {
            Err(self.invalid(
                value.span().start,
                &format!("{path}.{name}"),
                format!("{rate} is not a price; expected US dollars per million tokens, 0 or more"),
            ))
        }
    }

    /// A calendar date written `YYYY-MM-DD`.
    fn date(&self, value: &Spanned<String>, path: &str) -> Result<String, PricingError> {
        let text = value.get_ref().trim();
        let format = time::macros::format_description!("[year]-[month]-[day]");
        match time::Date::parse(text, format) {
            Ok(_) => Ok(text.to_owned()),
            Err(_) => Err(self.invalid(
                value.span().start,
                path,
                format!("`{text}` is not a date; expected YYYY-MM-DD"),
            )),
        }
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    as_of: Option<Spanned<String>>,
    #[serde(default)]
    providers: BTreeMap<String, ProviderDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDoc {
    free: Option<bool>,
    prices_as: Option<Spanned<String>>,
    as_of: Option<Spanned<String>>,
    #[serde(default)]
    models: BTreeMap<String, ModelDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDoc {
    input_per_mtok: Spanned<f64>,
    output_per_mtok: Spanned<f64>,
    cached_input_per_mtok: Option<Spanned<f64>>,
    as_of: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests;
