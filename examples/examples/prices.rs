//! Prices LLM calls read from standard input with the table spans are priced from: the built-in
//! genai-prices snapshot, or it plus a newer price file given as the argument. One call per line,
//! whitespace-separated: provider (`-` for none), model, then input, output, cache-read,
//! cache-write and reasoning tokens (missing counts are 0). Prints each call back with its cost in
//! USD (total, prompt, completion), or `none` for a model without a price.
//! `scripts/phoenix_cost_check.py` compares these costs with Arize Phoenix's.
//!
//! ```text
//! echo "openai gpt-4o 1200 300 1000" | cargo run -p honeyhive-examples --example prices
//! cargo run -p honeyhive-examples --example prices -- data.json < calls.txt
//! ```

use std::io::{BufRead, Write};

use honeyhive_runtime::llm::{PriceTable, TokenUsage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prices = match std::env::args_os().nth(1) {
        Some(path) => PriceTable::from_path(path)?,
        None => PriceTable::builtin(),
    };
    eprintln!(
        "prices: genai-prices snapshot of {}",
        PriceTable::builtin_date()
    );
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [provider, model, counts @ ..] = fields.as_slice() else {
            continue;
        };
        let n = |i: usize| counts.get(i).map_or(Ok(0), |c| c.parse::<u64>());
        let usage = TokenUsage {
            input: n(0)?,
            output: n(1)?,
            cache_read: n(2)?,
            cache_write: n(3)?,
            reasoning: n(4)?,
        };
        let provider = (*provider != "-").then_some(*provider);
        let counts = counts.join(" ");
        match prices.cost(provider, model, &usage) {
            Some(cost) => writeln!(
                out,
                "{} {model} {counts} -> {} {} {}",
                provider.unwrap_or("-"),
                cost.total,
                cost.prompt.unwrap_or(0.0),
                cost.completion.unwrap_or(0.0)
            )?,
            None => writeln!(out, "{} {model} {counts} -> none", provider.unwrap_or("-"))?,
        }
    }
    Ok(())
}
