//! Retrieved documents, recorded on a retriever span with [`record_documents`].
//!
//! ```
//! use honeyhive_runtime::{record_documents, trace, Document, Value};
//!
//! #[trace(event_type = "retriever")]
//! fn retrieve(query: &str) -> usize {
//!     let hits = [("d1", "Paris is the capital of France.", 0.92)]; // the vector store
//!     record_documents(hits.iter().map(|&(id, text, score)| {
//!         Document::new(text)
//!             .id(id)
//!             .score(score)
//!             .metadata(Value::map([("source", "wiki")]))
//!     }));
//!     hits.len()
//! }
//! # retrieve("capital of France");
//! ```
//!
//! On the export thread they become OpenInference's
//! `retrieval.documents.N.document.{id,content,score,metadata}` (Phoenix shows them on the span),
//! or, when only GenAI keys are written, `gen_ai.retrieval.documents` (a JSON list of
//! `{"id", "score", "content", "metadata"}`).

use opentelemetry::{Array, KeyValue, StringValue, Value as OtelValue};

use super::{Conventions, gen_ai, json};
use crate::enrich::Value;
use crate::span::{self, Annotation};

/// `[id, content, metadata, ...]`, "" for what is not known.
pub(super) const RAW_DOCUMENTS: &str = "\0retrieval.documents";
/// The documents' scores, NaN for none.
pub(super) const RAW_SCORES: &str = "\0retrieval.scores";

/// A document a retriever returned.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Document {
    content: String,
    id: Option<String>,
    score: Option<f64>,
    metadata: Option<Value>,
}

impl Document {
    /// A document with this text.
    pub fn new(content: impl Into<String>) -> Document {
        Document {
            content: content.into(),
            id: None,
            score: None,
            metadata: None,
        }
    }

    /// Its id in the store.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Its relevance score.
    pub fn score(mut self, score: f64) -> Self {
        self.score = Some(score);
        self
    }

    /// Its metadata (a map: source, page, ...), written as a JSON object.
    pub fn metadata(mut self, metadata: impl Into<Value>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }
}

/// Records the documents a retriever returned on the current span; nothing is read from
/// `documents` when no recorded span is current. Several calls on one span add up.
pub fn record_documents(documents: impl IntoIterator<Item = Document>) {
    if !span::current_is_recording() {
        span::count_lost_under_remote();
        return;
    }
    let cap = crate::capture::capture_cap();
    let mut flat = Vec::new();
    let mut scores = Vec::new();
    for d in documents {
        flat.push(d.id.map_or_else(|| StringValue::from(""), StringValue::from));
        flat.push(crate::capture::truncated_text(&d.content, cap));
        flat.push(
            d.metadata
                .map_or_else(|| StringValue::from(""), |m| m.json_capped(cap)),
        );
        scores.push(d.score.unwrap_or(f64::NAN));
    }
    if scores.is_empty() {
        return;
    }
    span::annotate(|| {
        Annotation::Attr(KeyValue::new(
            RAW_DOCUMENTS,
            OtelValue::Array(Array::String(flat)),
        ))
    });
    span::annotate(|| {
        Annotation::Attr(KeyValue::new(
            RAW_SCORES,
            OtelValue::Array(Array::F64(scores)),
        ))
    });
}

/// The documents of a span, from every [`record_documents`] call on it, in order.
pub(super) fn render(
    raw: &[&OtelValue],
    scores: &[&OtelValue],
    conventions: Conventions,
    added: &mut Vec<KeyValue>,
) {
    let docs: Vec<&[StringValue]> = raw
        .iter()
        .flat_map(|v| match v {
            OtelValue::Array(Array::String(items)) => items.chunks_exact(3),
            _ => [].chunks_exact(3),
        })
        .collect();
    let scores: Vec<f64> = scores
        .iter()
        .flat_map(|v| match v {
            OtelValue::Array(Array::F64(items)) => items.as_slice(),
            _ => &[],
        })
        .copied()
        .collect();
    let score = |i: usize| scores.get(i).copied().filter(|s| !s.is_nan());
    if conventions.openinference() {
        for (i, d) in docs.iter().enumerate() {
            let key = |field: &str| format!("retrieval.documents.{i}.document.{field}");
            if !d[0].as_str().is_empty() {
                added.push(KeyValue::new(key("id"), OtelValue::String(d[0].clone())));
            }
            added.push(KeyValue::new(
                key("content"),
                OtelValue::String(d[1].clone()),
            ));
            if let Some(score) = score(i) {
                added.push(KeyValue::new(key("score"), score));
            }
            if !d[2].as_str().is_empty() {
                added.push(KeyValue::new(
                    key("metadata"),
                    OtelValue::String(d[2].clone()),
                ));
            }
        }
    } else if conventions.gen_ai() {
        let indexed: Vec<(usize, &[StringValue])> = docs.iter().copied().enumerate().collect();
        let mut text = String::new();
        json::list(&mut text, &indexed, |out, &(i, d)| {
            let mut o = json::Object::new(out);
            json::string(o.key("id"), d[0].as_str());
            match score(i) {
                Some(s) => json::value(o.key("score"), &OtelValue::F64(s)),
                None => o.key("score").push_str("null"),
            }
            json::string(o.key("content"), d[1].as_str());
            if !d[2].as_str().is_empty() {
                let metadata = d[2].as_str();
                if serde_json::from_str::<serde_json::Value>(metadata).is_ok() {
                    o.key("metadata").push_str(metadata);
                } else {
                    json::string(o.key("metadata"), metadata);
                }
            }
            o.end();
        });
        added.push(KeyValue::new(gen_ai::RETRIEVAL_DOCUMENTS, text));
    }
}
