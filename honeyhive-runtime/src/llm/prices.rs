//! What LLM calls cost: a built-in table of list prices, and a loader for LiteLLM's
//! `model_prices_and_context_window.json` format.
//!
//! A model missing from the table gets token counts but no cost: a made-up cost is worse than
//! none. Load a current LiteLLM file, or add your own prices, to price other models:
//!
//! ```
//! use honeyhive_runtime::llm::{ModelPrice, PriceTable};
//!
//! let mut prices = PriceTable::builtin();
//! prices.insert("my-finetune", ModelPrice::new(0.30, 1.20));
//! prices.merge_litellm_json(r#"{"acme-large": {
//!     "input_cost_per_token": 0.000002, "output_cost_per_token": 0.000008
//! }}"#)?;
//! let cost = prices.cost("acme-large", 1_000_000, 0, 0, 0).unwrap();
//! assert!((cost.total - 2.0).abs() < 1e-9);
//! # Ok::<(), honeyhive_runtime::llm::PriceError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Prices of one model, USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelPrice {
    /// Prompt tokens.
    pub input_per_million: f64,
    /// Completion tokens.
    pub output_per_million: f64,
    /// Prompt tokens read from the provider's cache (default: the input price).
    pub cache_read_per_million: Option<f64>,
    /// Prompt tokens written to the provider's cache (default: the input price).
    pub cache_write_per_million: Option<f64>,
}

impl ModelPrice {
    /// Input and output prices, USD per million tokens.
    pub const fn new(input_per_million: f64, output_per_million: f64) -> ModelPrice {
        ModelPrice {
            input_per_million,
            output_per_million,
            cache_read_per_million: None,
            cache_write_per_million: None,
        }
    }

    /// With a price for cached prompt tokens.
    #[must_use]
    pub const fn cache_read(mut self, per_million: f64) -> ModelPrice {
        self.cache_read_per_million = Some(per_million);
        self
    }

    /// With a price for prompt tokens written to the cache.
    #[must_use]
    pub const fn cache_write(mut self, per_million: f64) -> ModelPrice {
        self.cache_write_per_million = Some(per_million);
        self
    }
}

/// The cost of one call, USD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// The prompt (`None` when only a total is known).
    pub prompt: Option<f64>,
    /// The completion (`None` when only a total is known).
    pub completion: Option<f64>,
    /// Both.
    pub total: f64,
}

/// List prices, USD per million tokens, standard (not batch) tier, prompts under any long-context
/// surcharge threshold. Taken from the providers' public pricing pages as of 2025-11-01; they
/// change: load a LiteLLM file ([`PriceTable::load_litellm`]) to stay current.
const BUILTIN: &[(&str, ModelPrice)] = &[
    // OpenAI
    ("gpt-5", ModelPrice::new(1.25, 10.0).cache_read(0.125)),
    ("gpt-5-mini", ModelPrice::new(0.25, 2.0).cache_read(0.025)),
    ("gpt-5-nano", ModelPrice::new(0.05, 0.40).cache_read(0.005)),
    ("gpt-4.1", ModelPrice::new(2.0, 8.0).cache_read(0.50)),
    ("gpt-4.1-mini", ModelPrice::new(0.40, 1.60).cache_read(0.10)),
    (
        "gpt-4.1-nano",
        ModelPrice::new(0.10, 0.40).cache_read(0.025),
    ),
    ("gpt-4o", ModelPrice::new(2.50, 10.0).cache_read(1.25)),
    ("gpt-4o-mini", ModelPrice::new(0.15, 0.60).cache_read(0.075)),
    ("o1", ModelPrice::new(15.0, 60.0).cache_read(7.50)),
    ("o3", ModelPrice::new(2.0, 8.0).cache_read(0.50)),
    ("o3-mini", ModelPrice::new(1.10, 4.40).cache_read(0.55)),
    ("o4-mini", ModelPrice::new(1.10, 4.40).cache_read(0.275)),
    ("text-embedding-3-small", ModelPrice::new(0.02, 0.0)),
    ("text-embedding-3-large", ModelPrice::new(0.13, 0.0)),
    // Anthropic (cache writes priced as 5-minute writes)
    (
        "claude-opus-4-5",
        ModelPrice::new(5.0, 25.0)
            .cache_read(0.50)
            .cache_write(6.25),
    ),
    (
        "claude-opus-4-1",
        ModelPrice::new(15.0, 75.0)
            .cache_read(1.50)
            .cache_write(18.75),
    ),
    (
        "claude-opus-4",
        ModelPrice::new(15.0, 75.0)
            .cache_read(1.50)
            .cache_write(18.75),
    ),
    (
        "claude-sonnet-4-5",
        ModelPrice::new(3.0, 15.0)
            .cache_read(0.30)
            .cache_write(3.75),
    ),
    (
        "claude-sonnet-4",
        ModelPrice::new(3.0, 15.0)
            .cache_read(0.30)
            .cache_write(3.75),
    ),
    (
        "claude-3-7-sonnet",
        ModelPrice::new(3.0, 15.0)
            .cache_read(0.30)
            .cache_write(3.75),
    ),
    (
        "claude-haiku-4-5",
        ModelPrice::new(1.0, 5.0).cache_read(0.10).cache_write(1.25),
    ),
    (
        "claude-3-5-haiku",
        ModelPrice::new(0.80, 4.0).cache_read(0.08).cache_write(1.0),
    ),
    // Google (Gemini API, prompts up to 200k tokens)
    (
        "gemini-2.5-pro",
        ModelPrice::new(1.25, 10.0).cache_read(0.31),
    ),
    (
        "gemini-2.5-flash",
        ModelPrice::new(0.30, 2.50).cache_read(0.075),
    ),
    (
        "gemini-2.5-flash-lite",
        ModelPrice::new(0.10, 0.40).cache_read(0.025),
    ),
    (
        "gemini-2.0-flash",
        ModelPrice::new(0.10, 0.40).cache_read(0.025),
    ),
    // Mistral
    ("mistral-large", ModelPrice::new(2.0, 6.0)),
    ("mistral-medium", ModelPrice::new(0.40, 2.0)),
    ("mistral-small", ModelPrice::new(0.10, 0.30)),
    ("codestral", ModelPrice::new(0.30, 0.90)),
    // Cohere
    ("command-r-plus", ModelPrice::new(2.50, 10.0)),
    ("command-r", ModelPrice::new(0.15, 0.60)),
];

/// Prices by model name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
}

/// Why a price file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceError(String);

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PriceError {}

impl PriceTable {
    /// No prices at all: every call gets tokens and no cost.
    pub fn empty() -> PriceTable {
        PriceTable::default()
    }

    /// The built-in list prices (dated in the source).
    pub fn builtin() -> PriceTable {
        let mut table = PriceTable::empty();
        for (model, price) in BUILTIN {
            table.insert(*model, *price);
        }
        table
    }

    /// Adds or replaces the price of `model` (matched case-insensitively).
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.models.insert(model.into().to_ascii_lowercase(), price);
    }

    /// How many models have a price.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model has a price.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The price of `model`: its exact name, else without a provider prefix (`openai/gpt-4o`),
    /// else without a version suffix (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`,
    /// `claude-3-5-haiku-latest`, `gemini-2.0-flash-001`).
    pub fn get(&self, model: &str) -> Option<ModelPrice> {
        let model = model.trim().to_ascii_lowercase();
        let mut candidate = model.as_str();
        loop {
            if let Some(price) = self.models.get(candidate) {
                return Some(*price);
            }
            if let Some((_, rest)) = candidate.split_once('/') {
                candidate = rest;
                continue;
            }
            candidate = strip_version(candidate)?;
        }
    }

    /// The cost of a call: `input_tokens` includes the cached ones, which are priced at the cache
    /// prices when the table has them. `None` for a model without a price.
    pub fn cost(
        &self,
        model: &str,
        input_tokens: i64,
        output_tokens: i64,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
    ) -> Option<Cost> {
        let price = self.get(model)?;
        #[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
        let n = |tokens: i64| tokens.max(0) as f64 / 1e6;
        let uncached = input_tokens
            .saturating_sub(cache_read_tokens.max(0))
            .saturating_sub(cache_write_tokens.max(0));
        let prompt = n(uncached) * price.input_per_million
            + n(cache_read_tokens)
                * price
                    .cache_read_per_million
                    .unwrap_or(price.input_per_million)
            + n(cache_write_tokens)
                * price
                    .cache_write_per_million
                    .unwrap_or(price.input_per_million);
        let completion = n(output_tokens) * price.output_per_million;
        Some(Cost {
            prompt: Some(prompt),
            completion: Some(completion),
            total: prompt + completion,
        })
    }

    /// Adds the prices of a LiteLLM price file's text (`input_cost_per_token`,
    /// `output_cost_per_token`, and `cache_read_input_token_cost` /
    /// `cache_creation_input_token_cost` when given), replacing prices of the same models.
    /// Entries without both token prices are skipped. Returns how many models were added.
    ///
    /// # Errors
    /// When the text is not a JSON object.
    pub fn merge_litellm_json(&mut self, json: &str) -> Result<usize, PriceError> {
        let parsed: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| PriceError(format!("price file is not valid JSON: {e}")))?;
        let serde_json::Value::Object(entries) = parsed else {
            return Err(PriceError(
                "price file must be a JSON object of models".to_owned(),
            ));
        };
        let mut added = 0;
        for (model, entry) in entries {
            let per_million = |key: &str| {
                entry
                    .get(key)
                    .and_then(serde_json::Value::as_f64)
                    .map(|p| p * 1e6)
            };
            let (Some(input), Some(output)) = (
                per_million("input_cost_per_token"),
                per_million("output_cost_per_token"),
            ) else {
                continue;
            };
            self.insert(
                model,
                ModelPrice {
                    input_per_million: input,
                    output_per_million: output,
                    cache_read_per_million: per_million("cache_read_input_token_cost"),
                    cache_write_per_million: per_million("cache_creation_input_token_cost"),
                },
            );
            added += 1;
        }
        Ok(added)
    }

    /// The built-in prices plus a LiteLLM price file, whose prices win.
    ///
    /// # Errors
    /// When the file cannot be read or is not a JSON object.
    pub fn load_litellm(path: impl AsRef<Path>) -> Result<PriceTable, PriceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PriceError(format!("cannot read price file {}: {e}", path.display())))?;
        let mut table = PriceTable::builtin();
        table.merge_litellm_json(&text)?;
        Ok(table)
    }
}

/// `name-2024-08-06` → `name`, `name-20250929` → `name`, `name-latest` → `name`,
/// `name-001` / `name-2411` → `name`; `None` when there is no such suffix.
fn strip_version(model: &str) -> Option<&str> {
    let (head, last) = model.rsplit_once(['-', '@'])?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if last == "latest" || (digits(last) && matches!(last.len(), 3 | 4 | 8)) {
        return Some(head);
    }
    // `-YYYY-MM-DD`
    if digits(last) && last.len() == 2 {
        let (head, month) = head.rsplit_once('-')?;
        let (head, year) = head.rsplit_once('-')?;
        if digits(month) && month.len() == 2 && digits(year) && year.len() == 4 {
            return Some(head);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_without_provider_prefix_or_version() {
        let t = PriceTable::builtin();
        let mini = t.get("gpt-4o-mini").unwrap();
        assert_eq!(t.get("GPT-4o-mini-2024-07-18"), Some(mini));
        assert_eq!(t.get("openai/gpt-4o-mini"), Some(mini));
        assert_ne!(t.get("gpt-4o"), Some(mini));
        assert!(t.get("claude-sonnet-4-5-20250929").is_some());
        assert!(t.get("claude-3-5-haiku-latest").is_some());
        assert!(t.get("gemini-2.0-flash-001").is_some());
        assert!(t.get("mistral-large-2411").is_some());
        assert_eq!(t.get("gpt-4o-mini-tts"), None);
        assert_eq!(t.get("llama-3-70b"), None);
    }

    #[test]
    fn cached_tokens_are_priced_apart() {
        let mut t = PriceTable::empty();
        t.insert("m", ModelPrice::new(2.0, 8.0).cache_read(0.5));
        let c = t.cost("m", 1_000_000, 500_000, 400_000, 0).unwrap();
        assert!((c.prompt.unwrap() - (0.6 * 2.0 + 0.4 * 0.5)).abs() < 1e-9);
        assert!((c.completion.unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn litellm_files_are_read_and_bad_entries_skipped() {
        let mut t = PriceTable::empty();
        let n = t
            .merge_litellm_json(
                r#"{
                    "sample_spec": {"input_cost_per_token": "see docs"},
                    "x/model-a": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                  "cache_read_input_token_cost": 1e-7, "mode": "chat"},
                    "image-model": {"output_cost_per_image": 0.04}
                }"#,
            )
            .unwrap();
        assert_eq!(n, 1);
        let p = t.get("x/model-a").unwrap();
        assert!((p.input_per_million - 1.0).abs() < 1e-9);
        assert!((p.cache_read_per_million.unwrap() - 0.1).abs() < 1e-9);
        assert!(t.merge_litellm_json("[1]").is_err());
        assert!(t.merge_litellm_json("{").is_err());
    }
}
