//! What LLM calls cost: a dated snapshot of pydantic's [genai-prices] dataset, built in, and
//! loaders for a newer genai-prices `data.json` or a LiteLLM `model_prices_and_context_window.json`.
//!
//! The snapshot (`honeyhive-runtime/data/genai-prices.json`, MIT, dated in the file and by
//! [`PriceTable::builtin_date`]) is embedded in the binary and parsed once, on first use, by the
//! export thread: never on a traced call. `scripts/update_prices.py` regenerates it. Names are
//! matched as the dataset defines them (exact names, prefixes, aliases, dated versions,
//! provider-qualified names such as `openai/gpt-4o`, cloud providers that resell another's models),
//! prices include cache reads and writes, reasoning tokens and tiers by prompt size.
//!
//! A model missing from the table gets token counts but no cost: a made-up cost is worse than
//! none. Load a newer file, or add your own prices, to price other models:
//!
//! ```
//! use honeyhive_runtime::llm::{ModelPrice, PriceTable, TokenUsage};
//!
//! let mut prices = PriceTable::builtin();
//! prices.insert("my-finetune", ModelPrice::new(0.30, 1.20));
//! prices.merge_json(r#"{"acme-large": {
//!     "input_cost_per_token": 0.000002, "output_cost_per_token": 0.000008
//! }}"#)?;
//! let usage = TokenUsage { input: 1_000_000, ..TokenUsage::default() };
//! let cost = prices.cost(None, "acme-large", &usage).unwrap();
//! assert!((cost.total - 2.0).abs() < 1e-9);
//! assert!(prices.cost(Some("openai"), "gpt-4o", &usage).is_some());
//! assert!(prices.cost(None, "no-such-model", &usage).is_none());
//!
//! // For spans: a newer file over the snapshot (read at install), and one model over all.
//! let _builder = honeyhive_runtime::Builder::new()
//!     .price_file("data.json")
//!     .model_price("my-finetune", ModelPrice::new(0.30, 1.20));
//! # Ok::<(), honeyhive_runtime::llm::PriceError>(())
//! ```
//!
//! [genai-prices]: https://pypi.org/project/genai-prices/

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use regex::Regex;
use serde_json::Value;

/// The built-in snapshot, in genai-prices' `data.json` shape with a dated header.
const SNAPSHOT: &str = include_str!("../../data/genai-prices.json");

/// Prices of one model, USD per million tokens.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelPrice {
    /// Prompt tokens.
    pub input_per_million: f64,
    /// Completion tokens.
    pub output_per_million: f64,
    /// Prompt tokens read from the provider's cache (default: the input price).
    pub cache_read_per_million: Option<f64>,
    /// Prompt tokens written to the provider's cache (default: the input price).
    pub cache_write_per_million: Option<f64>,
    /// Completion tokens spent on reasoning (default: the output price).
    pub reasoning_per_million: Option<f64>,
    /// A fee per call, USD (Perplexity's per-request price), in the total only.
    pub per_call: Option<f64>,
    /// Prices for long prompts, by ascending threshold: a call whose prompt (cached tokens
    /// included) is above a tier's threshold pays that tier's prices for all of its tokens.
    pub tiers: Vec<PriceTier>,
}

/// The prices of a model for prompts above a size.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTier {
    /// Applies when the prompt has more than this many tokens, cached ones included.
    pub above_input_tokens: u64,
    /// Every price of such a call (its own `tiers` are not used).
    pub price: ModelPrice,
}

impl ModelPrice {
    /// Input and output prices, USD per million tokens.
    pub const fn new(input_per_million: f64, output_per_million: f64) -> ModelPrice {
        ModelPrice {
            input_per_million,
            output_per_million,
            cache_read_per_million: None,
            cache_write_per_million: None,
            reasoning_per_million: None,
            per_call: None,
            tiers: Vec::new(),
        }
    }

    /// With a price for cached prompt tokens.
    #[must_use]
    pub fn cache_read(mut self, per_million: f64) -> ModelPrice {
        self.cache_read_per_million = Some(per_million);
        self
    }

    /// With a price for prompt tokens written to the cache.
    #[must_use]
    pub fn cache_write(mut self, per_million: f64) -> ModelPrice {
        self.cache_write_per_million = Some(per_million);
        self
    }

    /// With a price for reasoning tokens.
    #[must_use]
    pub fn reasoning(mut self, per_million: f64) -> ModelPrice {
        self.reasoning_per_million = Some(per_million);
        self
    }

    /// With a fee per call, USD.
    #[must_use]
    pub fn per_call(mut self, usd: f64) -> ModelPrice {
        self.per_call = Some(usd);
        self
    }

    /// With `price` for calls whose prompt has more than `above_input_tokens` tokens.
    #[must_use]
    pub fn tier(mut self, above_input_tokens: u64, price: ModelPrice) -> ModelPrice {
        let at = self
            .tiers
            .partition_point(|t| t.above_input_tokens < above_input_tokens);
        self.tiers.insert(
            at,
            PriceTier {
                above_input_tokens,
                price,
            },
        );
        self
    }

    /// The cost of a call at these prices.
    pub fn cost(&self, usage: &TokenUsage) -> Cost {
        let rates = self
            .tiers
            .iter()
            .rev()
            .find(|t| usage.input > t.above_input_tokens)
            .map_or(self, |t| &t.price);
        #[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
        let n = |tokens: u64| tokens as f64 / 1e6;
        let uncached = usage
            .input
            .saturating_sub(usage.cache_read)
            .saturating_sub(usage.cache_write);
        let prompt = n(uncached) * rates.input_per_million
            + n(usage.cache_read)
                * rates
                    .cache_read_per_million
                    .unwrap_or(rates.input_per_million)
            + n(usage.cache_write)
                * rates
                    .cache_write_per_million
                    .unwrap_or(rates.input_per_million);
        let reasoning = usage.reasoning.min(usage.output);
        let completion = n(usage.output - reasoning) * rates.output_per_million
            + n(reasoning)
                * rates
                    .reasoning_per_million
                    .unwrap_or(rates.output_per_million);
        Cost {
            prompt: Some(prompt),
            completion: Some(completion),
            total: prompt + completion + rates.per_call.unwrap_or(0.0),
        }
    }
}

/// The tokens of one call, as its cost needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens, cached ones (read and written) included.
    pub input: u64,
    /// Completion tokens, reasoning ones included.
    pub output: u64,
    /// Prompt tokens read from the provider's cache.
    pub cache_read: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning: u64,
}

/// The cost of one call, USD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// The prompt (`None` when only a total is known).
    pub prompt: Option<f64>,
    /// The completion (`None` when only a total is known).
    pub completion: Option<f64>,
    /// Both, and any fee per call.
    pub total: f64,
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

/// Lookups remembered per table: a lookup scans the dataset's match rules (some are regular
/// expressions), an application uses few models. Bounded, as model names come from callers.
const CACHE_CAP: usize = 4096;
/// Providers remembered per model name in the lookup cache.
const PROVIDERS_PER_MODEL: usize = 16;

/// Prices by provider and model name: your own prices, then loaded files (the newest first),
/// then the built-in snapshot.
#[derive(Default)]
pub struct PriceTable {
    /// From [`insert`](PriceTable::insert) and LiteLLM files, by lowercase name.
    named: HashMap<String, Arc<Priced>>,
    /// genai-prices files, the newest first.
    datasets: Vec<Arc<Dataset>>,
    /// Whether the built-in snapshot is consulted after them.
    builtin: bool,
    /// Lookups by the model name and provider exactly as the caller gave them, so that a
    /// repeated lookup (the export thread's, once per LLM span) allocates nothing: by model,
    /// the providers seen with it and what they found.
    cache: Mutex<HashMap<String, Vec<Looked>>>,
}

/// A provider a model was looked up with, and what was found.
type Looked = (Option<String>, Option<Arc<Priced>>);

impl Clone for PriceTable {
    fn clone(&self) -> PriceTable {
        PriceTable {
            named: self.named.clone(),
            datasets: self.datasets.clone(),
            builtin: self.builtin,
            cache: Mutex::default(),
        }
    }
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("named", &self.named.len())
            .field("files", &self.datasets.len())
            .field("builtin", &self.builtin)
            .finish_non_exhaustive()
    }
}

impl PriceTable {
    /// No prices at all: every call gets tokens and no cost.
    pub fn empty() -> PriceTable {
        PriceTable::default()
    }

    /// The built-in snapshot of genai-prices (dated by [`builtin_date`](PriceTable::builtin_date)).
    /// Cheap: the snapshot is parsed on first use, once per process.
    pub fn builtin() -> PriceTable {
        PriceTable {
            builtin: true,
            ..PriceTable::default()
        }
    }

    /// The date the built-in snapshot was taken, `YYYY-MM-DD`.
    pub fn builtin_date() -> &'static str {
        let key = "\"snapshot_date\": \"";
        SNAPSHOT
            .find(key)
            .and_then(|at| SNAPSHOT.get(at + key.len()..at + key.len() + 10))
            .unwrap_or("unknown")
    }

    /// The built-in prices plus a price file, whose prices win: genai-prices' `data.json` (or a
    /// snapshot written by `scripts/update_prices.py`) or LiteLLM's
    /// `model_prices_and_context_window.json`, told apart by their shape.
    ///
    /// # Errors
    /// When the file cannot be read or is neither format.
    pub fn from_path(path: impl AsRef<Path>) -> Result<PriceTable, PriceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PriceError(format!("cannot read price file {}: {e}", path.display())))?;
        let mut table = PriceTable::builtin();
        table
            .merge_json(&text)
            .map_err(|e| PriceError(format!("price file {}: {e}", path.display())))?;
        Ok(table)
    }

    /// Adds or replaces the price of `model` (matched case-insensitively, before any file).
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.named
            .insert(model.into().to_ascii_lowercase(), Arc::new(price.into()));
        self.forget_lookups();
    }

    /// How many models have a price (parses the built-in snapshot if it was not yet).
    pub fn len(&self) -> usize {
        let priced = |d: &Dataset| {
            d.providers
                .iter()
                .flat_map(|p| &p.models)
                .filter(|m| m.price.is_some())
                .count()
        };
        self.named.len()
            + self.datasets.iter().map(|d| priced(d)).sum::<usize>()
            + self.builtin_dataset().map_or(0, priced)
    }

    /// Whether no model has a price.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The price of `model`, from `provider` when given (a GenAI or OpenInference provider name,
    /// `openai`, `aws.bedrock`, `azure`, `gcp.vertex_ai`, ...).
    ///
    /// Your own prices and LiteLLM entries are found by `provider/model`, then by the exact name,
    /// then without a provider prefix (`openai/gpt-4o`), then without a version suffix
    /// (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`, `-latest`, `-001`). genai-prices
    /// datasets match as genai-prices does: the provider by its id or match rule, else the
    /// provider that a `provider/` prefix names, else the one whose model rule matches the name
    /// (when no provider is given or the dataset does not know it); then the provider's first
    /// model whose rule matches, then the models of the providers it resells (Azure: OpenAI's).
    /// Dated prices take the one in force on the day the table is first used; time-of-day prices
    /// (DeepSeek's peak hours) the one in force when the call is priced, just after it ends.
    pub fn get(&self, provider: Option<&str>, model: &str) -> Option<ModelPrice> {
        self.lookup(provider, model).map(|p| p.now().clone())
    }

    /// The cost of a call, `None` for a model without a price (see [`get`](PriceTable::get)).
    pub fn cost(&self, provider: Option<&str>, model: &str, usage: &TokenUsage) -> Option<Cost> {
        Some(self.lookup(provider, model)?.now().cost(usage))
    }

    /// Adds the prices of a price file's text, in either format (see
    /// [`from_path`](PriceTable::from_path)); its prices win over those already in the table.
    /// Returns how many models it prices.
    ///
    /// # Errors
    /// When the text is not JSON, or neither format.
    pub fn merge_json(&mut self, json: &str) -> Result<usize, PriceError> {
        let parsed: Value = serde_json::from_str(json)
            .map_err(|e| PriceError(format!("price file is not valid JSON: {e}")))?;
        match parsed {
            Value::Array(providers) => Ok(self.add_dataset(&providers)),
            Value::Object(mut entries) => match entries.remove("providers") {
                Some(Value::Array(providers)) => Ok(self.add_dataset(&providers)),
                Some(other) => {
                    entries.insert("providers".to_owned(), other);
                    Ok(self.add_litellm(entries))
                }
                None => Ok(self.add_litellm(entries)),
            },
            _ => Err(PriceError(
                "a price file is a JSON array of providers (genai-prices) or an object of models \
                 (LiteLLM)"
                    .to_owned(),
            )),
        }
    }

    /// Adds the prices of a LiteLLM price file's text (`input_cost_per_token`,
    /// `output_cost_per_token`, `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
    /// `output_cost_per_reasoning_token`, and their `_above_200k_tokens` tiers), replacing prices
    /// of the same models. Entries without both token prices are skipped. Returns how many models
    /// were added.
    ///
    /// # Errors
    /// When the text is not a JSON object.
    pub fn merge_litellm_json(&mut self, json: &str) -> Result<usize, PriceError> {
        let parsed: Value = serde_json::from_str(json)
            .map_err(|e| PriceError(format!("price file is not valid JSON: {e}")))?;
        let Value::Object(entries) = parsed else {
            return Err(PriceError(
                "a LiteLLM price file is a JSON object of models".to_owned(),
            ));
        };
        Ok(self.add_litellm(entries))
    }

    fn add_litellm(&mut self, entries: serde_json::Map<String, Value>) -> usize {
        let mut added = 0;
        for (model, entry) in entries {
            if let Some(price) = litellm_price(&entry) {
                self.named
                    .insert(model.to_ascii_lowercase(), Arc::new(price.into()));
                added += 1;
            }
        }
        self.forget_lookups();
        added
    }

    fn add_dataset(&mut self, providers: &[Value]) -> usize {
        let dataset = Dataset::parse(providers, &today());
        let priced = dataset
            .providers
            .iter()
            .flat_map(|p| &p.models)
            .filter(|m| m.price.is_some())
            .count();
        self.datasets.insert(0, Arc::new(dataset));
        self.forget_lookups();
        priced
    }

    fn forget_lookups(&mut self) {
        self.cache
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn builtin_dataset(&self) -> Option<&'static Dataset> {
        static BUILTIN: OnceLock<Option<Dataset>> = OnceLock::new();
        if !self.builtin {
            return None;
        }
        BUILTIN
            .get_or_init(|| {
                let mut parsed: Value = serde_json::from_str(SNAPSHOT).ok()?;
                let Value::Array(providers) = parsed.get_mut("providers")?.take() else {
                    return None;
                };
                Some(Dataset::parse(&providers, &today()))
            })
            .as_ref()
    }

    fn lookup(&self, provider: Option<&str>, raw_model: &str) -> Option<Arc<Priced>> {
        let seen = |entries: &Vec<Looked>| {
            entries
                .iter()
                .find(|(p, _)| p.as_deref() == provider)
                .map(|(_, found)| found.clone())
        };
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(raw_model)
            .and_then(seen)
        {
            return hit;
        }
        let found = self.find(provider, raw_model);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < CACHE_CAP {
            let entries = cache.entry(raw_model.to_owned()).or_default();
            if entries.len() < PROVIDERS_PER_MODEL && seen(entries).is_none() {
                entries.push((provider.map(str::to_owned), found.clone()));
            }
        }
        found
    }

    /// What `provider` and `model` name, whatever their case and surrounding blanks.
    fn find(&self, provider: Option<&str>, model: &str) -> Option<Arc<Priced>> {
        let model = model.trim().to_lowercase();
        let provider = provider
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty());
        self.find_named(provider.as_deref(), &model).or_else(|| {
            self.datasets
                .iter()
                .map(|d| &**d)
                .chain(self.builtin_dataset())
                .find_map(|d| d.find(provider.as_deref(), &model))
                .and_then(|m| m.price.clone())
        })
    }

    fn find_named(&self, provider: Option<&str>, model: &str) -> Option<Arc<Priced>> {
        if self.named.is_empty() {
            return None;
        }
        if let Some(price) = provider.and_then(|p| self.named.get(&format!("{p}/{model}"))) {
            return Some(price.clone());
        }
        let mut candidate = model;
        loop {
            if let Some(price) = self.named.get(candidate) {
                return Some(price.clone());
            }
            if let Some((_, rest)) = candidate.split_once('/') {
                candidate = rest;
                continue;
            }
            candidate = strip_version(candidate)?;
        }
    }
}

/// A LiteLLM entry's prices (per token there, per million here).
fn litellm_price(entry: &Value) -> Option<ModelPrice> {
    let per_million = |key: &str| entry.get(key).and_then(Value::as_f64).map(|p| p * 1e6);
    let mut price = ModelPrice::new(
        per_million("input_cost_per_token")?,
        per_million("output_cost_per_token")?,
    );
    price.cache_read_per_million = per_million("cache_read_input_token_cost");
    price.cache_write_per_million = per_million("cache_creation_input_token_cost");
    price.reasoning_per_million = per_million("output_cost_per_reasoning_token");
    // `input_cost_per_token_above_200k_tokens` and the like: thresholds in thousands.
    let mut thresholds: Vec<u64> = entry
        .as_object()?
        .keys()
        .filter_map(|k| {
            let (_, rest) = k.split_once("_above_")?;
            rest.strip_suffix("k_tokens")?.parse::<u64>().ok()
        })
        .collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    for k in thresholds {
        let above = |key: &str| per_million(&format!("{key}_above_{k}k_tokens"));
        let mut tier = price.clone();
        tier.tiers.clear();
        if let Some(p) = above("input_cost_per_token") {
            tier.input_per_million = p;
        }
        if let Some(p) = above("output_cost_per_token") {
            tier.output_per_million = p;
        }
        if let Some(p) = above("cache_read_input_token_cost") {
            tier.cache_read_per_million = Some(p);
        }
        if let Some(p) = above("cache_creation_input_token_cost") {
            tier.cache_write_per_million = Some(p);
        }
        price = price.tier(k * 1000, tier);
    }
    Some(price)
}

/// A genai-prices dataset: providers in order, each with its models in order.
struct Dataset {
    providers: Vec<Provider>,
}

struct Provider {
    id: String,
    /// Finds the provider by a provider name.
    by_name: Option<Clause>,
    /// Finds the provider by a model name.
    by_model: Option<Clause>,
    fallback: Vec<String>,
    models: Vec<Model>,
}

struct Model {
    rule: Clause,
    /// `None` when its prices cannot be read.
    price: Option<Arc<Priced>>,
}

impl Dataset {
    /// Reads what it understands and skips the rest: a newer file may add fields and price kinds.
    fn parse(providers: &[Value], today: &str) -> Dataset {
        let providers = providers
            .iter()
            .filter_map(|p| {
                let clause = |key| p.get(key).map(Clause::parse);
                Some(Provider {
                    id: p.get("id")?.as_str()?.to_ascii_lowercase(),
                    by_name: clause("provider_match"),
                    by_model: clause("model_match"),
                    fallback: p
                        .get("fallback_model_providers")
                        .and_then(Value::as_array)
                        .map(|ids| {
                            ids.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_ascii_lowercase)
                                .collect()
                        })
                        .unwrap_or_default(),
                    models: p
                        .get("models")
                        .and_then(Value::as_array)
                        .map(|models| {
                            models
                                .iter()
                                .filter_map(|m| {
                                    Some(Model {
                                        rule: Clause::parse(m.get("match")?),
                                        price: m
                                            .get("prices")
                                            .and_then(|p| priced(p, today))
                                            .map(Arc::new),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        Dataset { providers }
    }

    /// The model `model` names, which may have no token price.
    fn find(&self, provider: Option<&str>, model: &str) -> Option<&Model> {
        let named = provider.and_then(|p| self.provider_named(p));
        if let Some(hit) = named.and_then(|p| self.find_in(p, model)) {
            return Some(hit);
        }
        if let Some((prefix, rest)) = model.split_once('/')
            && let Some(hit) = self
                .provider_named(prefix)
                .and_then(|p| self.find_in(p, rest))
        {
            return Some(hit);
        }
        // A provider the dataset knows, without the model: never another provider's price.
        if named.is_some() {
            return None;
        }
        let by_model = self
            .providers
            .iter()
            .find(|p| p.by_model.as_ref().is_some_and(|c| c.matches(model)))?;
        self.find_in(by_model, model)
    }

    fn provider_named(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == name).or_else(|| {
            self.providers
                .iter()
                .find(|p| p.by_name.as_ref().is_some_and(|c| c.matches(name)))
        })
    }

    fn find_in<'a>(&'a self, provider: &'a Provider, model: &str) -> Option<&'a Model> {
        self.match_model(provider, model, true).or_else(|| {
            // `gpt-5.2-20251211` (LiteLLM, OpenRouter) for the dataset's `gpt-5.2-2025-12-11`.
            let dashed = dash_compact_dates(model)?;
            self.match_model(provider, &dashed, true)
        })
    }

    fn match_model<'a>(
        &'a self,
        provider: &'a Provider,
        model: &str,
        fallback: bool,
    ) -> Option<&'a Model> {
        if let Some(m) = provider.models.iter().find(|m| m.rule.matches(model)) {
            return Some(m);
        }
        if !fallback {
            return None;
        }
        // One step only, as in genai-prices.
        provider.fallback.iter().find_map(|id| {
            let other = self.providers.iter().find(|p| &p.id == id)?;
            self.match_model(other, model, false)
        })
    }
}

/// A model's prices, and the ones that replace them at times of day (UTC).
struct Priced {
    price: ModelPrice,
    /// The last window that contains the time of pricing wins.
    daily: Vec<Daily>,
}

/// Prices in force from `start` to `end`, seconds since midnight UTC (across midnight when
/// `end < start`).
struct Daily {
    start: u32,
    end: u32,
    price: ModelPrice,
}

impl From<ModelPrice> for Priced {
    fn from(price: ModelPrice) -> Priced {
        Priced {
            price,
            daily: Vec::new(),
        }
    }
}

impl Priced {
    /// The prices in force now: a call is priced moments after it ends, on the export thread.
    fn now(&self) -> &ModelPrice {
        if self.daily.is_empty() {
            return &self.price;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 86_400);
        self.at(u32::try_from(secs).unwrap_or(0))
    }

    /// The prices in force `secs` seconds after midnight UTC.
    fn at(&self, secs: u32) -> &ModelPrice {
        self.daily
            .iter()
            .rev()
            .find(|d| {
                if d.start <= d.end {
                    (d.start..d.end).contains(&secs)
                } else {
                    secs >= d.start || secs < d.end
                }
            })
            .map_or(&self.price, |d| &d.price)
    }
}

/// A model's `prices` as genai-prices resolves them: a price object, or a list of
/// `{constraint, prices}` of which the last in force wins (else the first). A `start_date` is
/// judged on `today`, once; later time-of-day windows (`start_time`, `end_time`) at each call.
fn priced(prices: &Value, today: &str) -> Option<Priced> {
    let Value::Array(entries) = prices else {
        return dataset_price(prices).map(Priced::from);
    };
    let constraint = |entry: &Value| entry.get("constraint").filter(|c| !c.is_null()).cloned();
    let by_date = entries
        .iter()
        .rposition(|e| match constraint(e) {
            None => true,
            Some(c) => c
                .get("start_date")
                .and_then(Value::as_str)
                .is_some_and(|start| start <= today),
        })
        .unwrap_or(0);
    let daily = entries[by_date + 1..]
        .iter()
        .filter_map(|e| {
            let c = constraint(e)?;
            let time = |key| c.get(key).and_then(Value::as_str).and_then(seconds_of_day);
            Some(Daily {
                start: time("start_time")?,
                end: time("end_time")?,
                price: dataset_price(e.get("prices")?)?,
            })
        })
        .collect();
    Some(Priced {
        price: dataset_price(entries.get(by_date)?.get("prices")?)?,
        daily,
    })
}

/// `HH:MM[:SS[.fff]]` with an optional `Z` or `±HH:MM` offset, as seconds since midnight UTC.
fn seconds_of_day(time: &str) -> Option<u32> {
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => (time, ""),
    };
    let mut parts = clock.split(':');
    let mut next = || -> Option<i64> {
        let part = parts.next()?;
        part.split('.').next()?.parse().ok()
    };
    let (h, m) = (next()?, next()?);
    let s = next().unwrap_or(0);
    let offset = match offset.as_bytes().first() {
        None | Some(b'Z' | b'z') => 0,
        Some(sign) => {
            let (oh, om) = offset[1..].split_once(':').unwrap_or((&offset[1..], "0"));
            let secs = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
            if *sign == b'-' { -secs } else { secs }
        }
    };
    u32::try_from((h * 3600 + m * 60 + s - offset).rem_euclid(86_400)).ok()
}

/// A genai-prices price object: `input_mtok` and the like (and `requests_kcount`), each a number or
/// `{"base": .., "tiers": [{"start": .., "price": ..}]}`.
fn dataset_price(prices: &Value) -> Option<ModelPrice> {
    const KEYS: [&str; 6] = [
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "output_reasoning_mtok",
        "requests_kcount",
    ];
    prices.as_object()?;
    let parse = |key: &str| -> Option<(f64, Vec<(u64, f64)>)> {
        match prices.get(key)? {
            Value::Object(tiered) => {
                let base = tiered.get("base")?.as_f64()?;
                let tiers = tiered
                    .get("tiers")
                    .and_then(Value::as_array)
                    .map(|tiers| {
                        tiers
                            .iter()
                            .filter_map(|t| {
                                Some((t.get("start")?.as_u64()?, t.get("price")?.as_f64()?))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some((base, tiers))
            }
            other => Some((other.as_f64()?, Vec::new())),
        }
    };
    // Without any of these (a subscription, or audio or images only) a call costs 0, as in
    // genai-prices: the model is known, and its token calls are not billed.
    let parsed = KEYS.map(parse);
    // Each key has its own tiers; at any prompt size every key pays its highest tier below that
    // size. One tier per distinct threshold, holding every key's price there, is the same.
    let at = |threshold: Option<u64>| -> [Option<f64>; 6] {
        parsed.each_ref().map(|p| {
            let (base, tiers) = p.as_ref()?;
            Some(
                threshold
                    .and_then(|t| tiers.iter().rev().find(|(start, _)| *start <= t))
                    .map_or(*base, |(_, price)| *price),
            )
        })
    };
    let rates = |r: [Option<f64>; 6]| {
        let mut price = ModelPrice::new(r[0].unwrap_or(0.0), r[1].unwrap_or(0.0));
        price.cache_read_per_million = r[2];
        price.cache_write_per_million = r[3];
        price.reasoning_per_million = r[4];
        price.per_call = r[5].map(|per_thousand| per_thousand / 1000.0);
        price
    };
    let mut thresholds: Vec<u64> = parsed
        .iter()
        .flatten()
        .flat_map(|(_, tiers)| tiers.iter().map(|(start, _)| *start))
        .collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    let mut price = rates(at(None));
    for t in thresholds {
        price = price.tier(t, rates(at(Some(t))));
    }
    Some(price)
}

/// genai-prices' match rules. Names and needles are lowercase; regular expressions run on the
/// lowercase name, as in genai-prices.
enum Clause {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Regex(Box<Pattern>),
    Or(Vec<Clause>),
    And(Vec<Clause>),
    /// A rule this version does not understand: it matches nothing.
    Never,
}

/// A regular expression, compiled when first needed (most never are, and compiling them all
/// would be most of the parse); `^(?!a)b` (a leading negative lookahead, which the `regex` crate
/// has not) runs as "`^a` does not match and `^b` does". One that does not compile matches nothing.
struct Pattern {
    source: Box<str>,
    compiled: OnceLock<Option<Compiled>>,
}

struct Compiled {
    not: Option<Regex>,
    re: Regex,
}

impl Clause {
    fn parse(v: &Value) -> Clause {
        let Some((kind, arg)) = v.as_object().and_then(|o| o.iter().next()) else {
            return Clause::Never;
        };
        let text = || arg.as_str().map(str::to_lowercase);
        let list = || {
            arg.as_array()
                .map(|items| items.iter().map(Clause::parse).collect())
        };
        let clause = match kind.as_str() {
            "equals" => text().map(Clause::Equals),
            "starts_with" => text().map(Clause::StartsWith),
            "ends_with" => text().map(Clause::EndsWith),
            "contains" => text().map(Clause::Contains),
            "regex" => arg.as_str().map(|source| {
                Clause::Regex(Box::new(Pattern {
                    source: source.into(),
                    compiled: OnceLock::new(),
                }))
            }),
            "or" => list().map(Clause::Or),
            "and" => list().map(Clause::And),
            _ => None,
        };
        clause.unwrap_or(Clause::Never)
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Clause::Equals(s) => name == s,
            Clause::StartsWith(s) => name.starts_with(s.as_str()),
            Clause::EndsWith(s) => name.ends_with(s.as_str()),
            Clause::Contains(s) => name.contains(s.as_str()),
            Clause::Regex(p) => p.compiled().is_some_and(|c| {
                c.re.is_match(name) && !c.not.as_ref().is_some_and(|not| not.is_match(name))
            }),
            Clause::Or(all) => all.iter().any(|c| c.matches(name)),
            Clause::And(all) => all.iter().all(|c| c.matches(name)),
            Clause::Never => false,
        }
    }
}

impl Pattern {
    fn compiled(&self) -> Option<&Compiled> {
        self.compiled
            .get_or_init(|| {
                let compile =
                    |p: &str| regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok();
                let pattern = &*self.source;
                if let Some(rest) = pattern.strip_prefix("^(?!") {
                    let close = closing_paren(rest)?;
                    return Some(Compiled {
                        not: Some(compile(&format!("^(?:{})", &rest[..close]))?),
                        re: compile(&format!("^(?:{})", &rest[close + 1..]))?,
                    });
                }
                Some(Compiled {
                    not: None,
                    re: compile(pattern)?,
                })
            })
            .as_ref()
    }
}

/// Where the group opened just before `s` closes: parentheses nest, `\)` and `[)]` do not count.
fn closing_paren(s: &str) -> Option<usize> {
    let (mut depth, mut escaped, mut in_class) = (0_usize, false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'[' => in_class = true,
            b']' => in_class = false,
            _ if in_class => {}
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(i),
            b')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `-20251211` → `-2025-12-11` where followed by `-`, `:` or the end; `None` when there is none.
fn dash_compact_dates(model: &str) -> Option<String> {
    let bytes = model.as_bytes();
    let mut out = String::with_capacity(model.len() + 4);
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let date = bytes.get(i + 1..i + 9).filter(|d| {
            bytes[i] == b'-'
                && d.iter().all(u8::is_ascii_digit)
                && matches!(bytes.get(i + 9), None | Some(b'-' | b':'))
        });
        if let Some(d) = date {
            let num = |r: std::ops::Range<usize>| {
                d[r].iter().fold(0_u32, |n, b| n * 10 + u32::from(b - b'0'))
            };
            let (year, month, day) = (num(0..4), num(4..6), num(6..8));
            if (2000..2100).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
            {
                let _ = write!(out, "-{year}-{month:02}-{day:02}"); // a String takes any text
                changed = true;
                i += 9;
                continue;
            }
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    // Pushing bytes one by one is only right for ASCII; other names are left as they are.
    (changed && model.is_ascii()).then_some(out)
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1..=31 and 1..=12
    (y, m as u32, d as u32)
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

    fn usage(input: u64, output: u64) -> TokenUsage {
        TokenUsage {
            input,
            output,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn the_snapshot_parses_and_is_dated() {
        fn count(c: &Clause, never: &mut usize) {
            match c {
                Clause::Never => *never += 1,
                Clause::Regex(p) => *never += usize::from(p.compiled().is_none()),
                Clause::Or(all) | Clause::And(all) => all.iter().for_each(|c| count(c, never)),
                _ => {}
            }
        }
        let t = PriceTable::builtin();
        assert!(t.len() > 1000, "{}", t.len());
        let date = PriceTable::builtin_date();
        assert_eq!(date.len(), 10, "{date}");
        assert!(date.starts_with("20"), "{date}");
        // Every regular expression of the snapshot compiles (lookaheads included).
        let d = t.builtin_dataset().unwrap();
        let mut never = 0;
        for p in &d.providers {
            for c in p.by_name.iter().chain(&p.by_model) {
                count(c, &mut never);
            }
            for m in &p.models {
                count(&m.rule, &mut never);
            }
        }
        assert_eq!(never, 0);
    }

    #[test]
    fn lookups_are_remembered_by_the_names_given_and_any_spelling_finds_the_same_price() {
        let mut t = PriceTable::empty();
        t.insert("acme-1", ModelPrice::new(1.0, 2.0));
        let price = |p: Option<&str>, m: &str| t.get(p, m).map(|m| m.input_per_million);
        assert_eq!(price(None, "acme-1"), Some(1.0));
        assert_eq!(price(None, " ACME-1 "), Some(1.0));
        assert_eq!(price(Some("openai"), "Acme-1"), Some(1.0));
        assert_eq!(price(None, "acme-2"), None);
        // Again, from the cache: the same answers.
        assert_eq!(price(None, " ACME-1 "), Some(1.0));
        assert_eq!(price(None, "acme-2"), None);
        let cache = t.cache.lock().unwrap();
        assert_eq!(cache.len(), 4, "one entry per model name as given");
        assert_eq!(cache["acme-1"].len(), 1);
        assert_eq!(cache["Acme-1"][0].0.as_deref(), Some("openai"));
        drop(cache);
        // Bounded per name, whatever providers callers pass.
        for i in 0..100 {
            assert_eq!(price(Some(&format!("p{i}")), "acme-1"), Some(1.0));
        }
        assert_eq!(t.cache.lock().unwrap()["acme-1"].len(), PROVIDERS_PER_MODEL);
    }

    #[test]
    fn names_match_as_the_dataset_defines_them() {
        let t = PriceTable::builtin();
        let mini = t.get(None, "gpt-4o-mini").unwrap();
        assert_eq!(t.get(None, "GPT-4o-mini-2024-07-18"), Some(mini.clone()));
        assert_eq!(t.get(None, "openai/gpt-4o-mini"), Some(mini.clone()));
        assert_eq!(t.get(Some("openai"), "gpt-4o-mini"), Some(mini.clone()));
        // Azure resells OpenAI's models; a semconv provider name finds its provider.
        assert!(t.get(Some("azure"), "gpt-4o-mini").is_some());
        assert!(t.get(Some("azure.ai.openai"), "gpt-4o-mini").is_some());
        assert_ne!(t.get(None, "gpt-4o"), Some(mini));
        assert!(t.get(None, "claude-sonnet-4-5-20250929").is_some());
        assert!(
            t.get(Some("anthropic"), "claude-3-5-haiku-latest")
                .is_some()
        );
        assert!(t.get(Some("gcp.vertex_ai"), "gemini-2.5-flash").is_some());
        assert!(
            t.get(
                Some("aws.bedrock"),
                "anthropic.claude-sonnet-4-5-20250929-v1:0"
            )
            .is_some()
        );
        // A known provider without the model gets no other provider's price.
        assert_eq!(t.get(Some("aws.bedrock"), "gpt-4o"), None);
        assert_eq!(t.get(None, "llama-3-70b"), None);
        assert_eq!(t.get(None, "no-such-model"), None);
    }

    #[test]
    fn cached_reasoning_and_tiered_tokens_are_priced_apart() {
        let price = ModelPrice::new(2.0, 8.0)
            .cache_read(0.5)
            .cache_write(2.5)
            .reasoning(10.0)
            .tier(1_000, ModelPrice::new(4.0, 16.0));
        let c = price.cost(&TokenUsage {
            input: 1_000,
            output: 500,
            cache_read: 400,
            cache_write: 100,
            reasoning: 200,
        });
        let prompt = (500.0 * 2.0 + 400.0 * 0.5 + 100.0 * 2.5) / 1e6;
        assert!((c.prompt.unwrap() - prompt).abs() < 1e-12);
        assert!((c.completion.unwrap() - (300.0 * 8.0 + 200.0 * 10.0) / 1e6).abs() < 1e-12);
        let fee = ModelPrice::new(1.0, 1.0)
            .per_call(0.005)
            .cost(&usage(1_000, 0));
        assert!((fee.total - 0.006).abs() < 1e-12);
        assert!((fee.prompt.unwrap() - 0.001).abs() < 1e-12);
        // One token over the threshold: every token at the tier's prices (no cache price there).
        let c = price.cost(&usage(1_001, 10));
        assert!((c.total - (1_001.0 * 4.0 + 10.0 * 16.0) / 1e6).abs() < 1e-12);
    }

    #[test]
    fn dataset_tiers_and_dates_are_read() {
        let mut t = PriceTable::empty();
        let n = t
            .merge_json(
                r#"[{"id": "acme", "model_match": {"starts_with": "acme-"}, "models": [
                    {"id": "acme-1", "match": {"regex": "^(?!.*-tts)acme-1"},
                     "prices": {"input_mtok": {"base": 1, "tiers": [{"start": 100, "price": 2}]},
                                "output_mtok": 4, "cache_read_mtok": {"base": 0.1,
                                "tiers": [{"start": 50, "price": 0.2}]}}},
                    {"id": "acme-2", "match": {"equals": "acme-2"}, "prices": [
                        {"prices": {"input_mtok": 1, "output_mtok": 1}},
                        {"constraint": {"start_date": "2000-01-01"}, "prices": {"input_mtok": 3}},
                        {"constraint": {"start_date": "9999-01-01"}, "prices": {"input_mtok": 9}}]},
                    {"id": "acme-audio", "match": {"equals": "acme-audio"},
                     "prices": {"audio_hours": 1}}]}]"#,
            )
            .unwrap();
        assert_eq!(n, 3);
        let p = t.get(Some("acme"), "acme-1-preview").unwrap();
        let thresholds: Vec<u64> = p.tiers.iter().map(|t| t.above_input_tokens).collect();
        assert_eq!(thresholds, [50, 100]);
        assert!((p.tiers[0].price.input_per_million - 1.0).abs() < 1e-12);
        assert_eq!(p.tiers[0].price.cache_read_per_million, Some(0.2));
        assert!((p.tiers[1].price.input_per_million - 2.0).abs() < 1e-12);
        assert_eq!(t.get(None, "acme-1-tts"), None);
        let two = t.get(None, "acme-2").unwrap();
        assert!((two.input_per_million - 3.0).abs() < 1e-12);
        assert!(two.output_per_million.abs() < 1e-12);
        // Known, without token prices: it costs nothing, as in genai-prices.
        let audio = t.cost(None, "acme-audio", &usage(10, 10)).unwrap();
        assert!(audio.total.abs() < 1e-12);
        let windows = priced(
            &serde_json::json!([
                {"prices": {"input_mtok": 1}},
                {"constraint": {"start_time": "22:00:00Z", "end_time": "02:00:00+01:00"},
                 "prices": {"input_mtok": 2}}]),
            "2026-01-01",
        )
        .unwrap();
        assert_eq!(
            (windows.daily[0].start, windows.daily[0].end),
            (79_200, 3_600)
        );
        let input_at = |secs| windows.at(secs).input_per_million;
        assert!((input_at(79_200) - 2.0).abs() < 1e-12);
        assert!((input_at(1_000) - 2.0).abs() < 1e-12);
        assert!((input_at(3_600) - 1.0).abs() < 1e-12);
        assert!((input_at(43_200) - 1.0).abs() < 1e-12);
        assert_eq!(seconds_of_day("16:30"), Some(59_400));
        assert!(t.merge_json("1").is_err());
    }

    #[test]
    fn litellm_files_are_read_and_bad_entries_skipped() {
        let mut t = PriceTable::empty();
        let n = t
            .merge_json(
                r#"{
                    "sample_spec": {"input_cost_per_token": "see docs"},
                    "x/model-a": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                  "cache_read_input_token_cost": 1e-7, "mode": "chat",
                                  "output_cost_per_reasoning_token": 3e-6,
                                  "input_cost_per_token_above_200k_tokens": 2e-6},
                    "image-model": {"output_cost_per_image": 0.04}
                }"#,
            )
            .unwrap();
        assert_eq!(n, 1);
        let p = t.get(Some("x"), "model-a").unwrap();
        assert!((p.input_per_million - 1.0).abs() < 1e-9);
        assert!((p.cache_read_per_million.unwrap() - 0.1).abs() < 1e-9);
        assert!((p.reasoning_per_million.unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(p.tiers[0].above_input_tokens, 200_000);
        assert!((p.tiers[0].price.input_per_million - 2.0).abs() < 1e-9);
        assert!((p.tiers[0].price.output_per_million - 2.0).abs() < 1e-9);
        assert!(t.merge_litellm_json("[1]").is_err());
        assert!(t.merge_json("{").is_err());
    }

    #[test]
    fn own_prices_win_and_lookups_are_not_stale() {
        let mut t = PriceTable::builtin();
        let usage = usage(1_000_000, 0);
        assert!(t.cost(None, "gpt-4o", &usage).unwrap().total > 0.0);
        t.insert("gpt-4o", ModelPrice::new(100.0, 0.0));
        assert!((t.cost(None, "gpt-4o-2024-08-06", &usage).unwrap().total - 100.0).abs() < 1e-9);
    }

    #[test]
    fn compact_dates_are_dashed() {
        assert_eq!(
            dash_compact_dates("gpt-5.2-20251211").as_deref(),
            Some("gpt-5.2-2025-12-11")
        );
        assert_eq!(dash_compact_dates("gpt-5.2-2025121"), None);
        assert_eq!(dash_compact_dates("m-20251399"), None);
        assert_eq!(closing_paren(r"a\)[)](b))c"), Some(9));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_424), (2025, 12, 2));
    }
}
