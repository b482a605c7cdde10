//! What every span gets from its event type and what was recorded on it, in the chosen
//! conventions, on the export thread after the LLM keys ([`render`](super::render)):
//!
//! - GenAI: `gen_ai.operation.name` (`chat` on model spans, `embeddings`, `invoke_agent` with
//!   `gen_ai.agent.name` on agent spans, `execute_tool` on tool spans with a
//!   [`record_tool_call`](super::record_tool_call), `retrieval` on retriever spans), the session
//!   as `gen_ai.conversation.id` on those spans, and, with
//!   [`Builder::genai_span_names`](crate::Builder::genai_span_names), names such as
//!   `chat gpt-4o` or `execute_tool get_weather`.
//! - OpenInference: the span's `enrich_span` metadata as one `metadata` JSON object, documents
//!   ([`documents`](super::documents)), tools ([`tools`](super::tools)), and
//!   `embedding.model_name` on embedding spans.
//! - Both: every `tags` call merged into one `tag.tags` list.
//!
//! It also tells embedding calls apart from LLM calls for the root totals.

use std::collections::{HashMap, HashSet};

use crate::record::Attr;
use opentelemetry::{Array, KeyValue, StringValue, Value as OtelValue};

use super::{Conventions, Usage, documents, gen_ai, json, openinference, tools};
use crate::span::EventType;

const TAGS: &str = openinference::TAG_TAGS;
const METADATA: &str = openinference::METADATA;
const METADATA_PREFIX: &str = "honeyhive_metadata.";

/// What was recorded through the typed APIs, taken out of the span's attributes.
#[derive(Default)]
struct Raw {
    tool_call: Option<OtelValue>,
    definitions: Option<OtelValue>,
    calls: Option<OtelValue>,
    documents: Vec<OtelValue>,
    scores: Vec<OtelValue>,
}

impl Raw {
    /// Takes the typed APIs' values out of `attrs` (one pass, only when there are any).
    fn take(attrs: &mut Vec<Attr<'_>>) -> Raw {
        let mut raw = Raw::default();
        if !attrs.iter().any(|kv| kv.key.as_str().starts_with('\0')) {
            return raw;
        }
        attrs.retain(|kv| {
            let slot = match kv.key.as_str() {
                tools::RAW_TOOL_CALL => &mut raw.tool_call,
                tools::RAW_DEFINITIONS => &mut raw.definitions,
                tools::RAW_CALLS => &mut raw.calls,
                documents::RAW_DOCUMENTS => {
                    raw.documents.push(kv.value.clone());
                    return false;
                }
                documents::RAW_SCORES => {
                    raw.scores.push(kv.value.clone());
                    return false;
                }
                _ => return true,
            };
            *slot = Some(kv.value.clone());
            false
        });
        raw
    }
}

/// Adds the span-level conventions to `attrs` (rendered by [`super::render`]) and moves an
/// embedding call's usage apart from LLM calls. Returns the GenAI span name when `genai_names`
/// is set and the span has one. Values built here are cut at `cap` bytes.
pub(crate) fn render(
    attrs: &mut Vec<Attr<'_>>,
    usage: &mut Usage,
    name: &str,
    event_type: EventType,
    conventions: Conventions,
    genai_names: bool,
    cap: usize,
) -> Option<String> {
    let raw = Raw::take(attrs);
    let mut added = Vec::new();
    let mut replaced: Vec<&'static str> = Vec::new();

    if let Some(call) = &raw.tool_call {
        replaced.extend(tools::render_tool_span(call, conventions, &mut added));
    }
    if raw.definitions.is_some() || raw.calls.is_some() {
        replaced.extend(tools::render_llm(
            attrs,
            raw.definitions.as_ref(),
            raw.calls.as_ref(),
            conventions,
            &mut added,
        ));
    }
    if !raw.documents.is_empty() {
        let docs: Vec<&OtelValue> = raw.documents.iter().collect();
        let scores: Vec<&OtelValue> = raw.scores.iter().collect();
        documents::render(&docs, &scores, conventions, &mut added);
    }

    let recorded_operation = text(attrs, gen_ai::OPERATION_NAME);
    let embedding =
        event_type == EventType::Embedding || recorded_operation.as_deref() == Some("embeddings");
    let operation = recorded_operation.or_else(|| {
        let default = match event_type {
            EventType::Embedding => "embeddings",
            EventType::Model => "chat",
            EventType::Agent => "invoke_agent",
            EventType::Retriever => "retrieval",
            _ if raw.tool_call.is_some() => "execute_tool",
            _ if usage.llm_calls > 0 => "chat",
            _ => return None,
        };
        Some(default.to_owned())
    });
    if embedding {
        *usage = usage.as_embedding();
    }

    if conventions.gen_ai()
        && let Some(operation) = &operation
    {
        if find(attrs, gen_ai::OPERATION_NAME).is_none()
            && find(&added, gen_ai::OPERATION_NAME).is_none()
        {
            added.push(KeyValue::new(gen_ai::OPERATION_NAME, operation.clone()));
        }
        if operation == "invoke_agent" && find(attrs, gen_ai::AGENT_NAME).is_none() {
            added.push(KeyValue::new(gen_ai::AGENT_NAME, name.to_owned()));
        }
        if let Some(session) = find(attrs, "session.id")
            && find(attrs, gen_ai::CONVERSATION_ID).is_none()
        {
            added.push(KeyValue::new(gen_ai::CONVERSATION_ID, session.clone()));
        }
    }

    if conventions.openinference() {
        if embedding && let Some(model) = find(attrs, openinference::LLM_MODEL_NAME) {
            // OpenInference names an embedding model apart, and gives embedding spans no
            // provider or system.
            added.push(KeyValue::new(
                openinference::EMBEDDING_MODEL_NAME,
                model.clone(),
            ));
            replaced.extend([
                openinference::LLM_MODEL_NAME,
                openinference::LLM_PROVIDER,
                openinference::LLM_SYSTEM,
            ]);
        }
        if let Some(metadata) = metadata_json(attrs) {
            added.push(KeyValue::new(METADATA, metadata));
        }
    }

    merge_tags(attrs);

    super::cut_added(&mut added, cap);
    if !replaced.is_empty() {
        attrs.retain(|kv| !replaced.contains(&kv.key.as_str()));
    }
    attrs.extend(added.into_iter().map(Attr::Owned));

    if !genai_names {
        return None;
    }
    let tool = raw.tool_call.as_ref().and_then(|call| match call {
        OtelValue::Array(Array::String(items)) => items.first().map(|s| s.as_str().to_owned()),
        _ => None,
    });
    genai_name(attrs, operation?, tool, name)
}

/// `{operation} {model}`, `execute_tool {tool}`, `invoke_agent {agent}`.
fn genai_name(
    attrs: &[Attr<'_>],
    operation: String,
    tool: Option<String>,
    name: &str,
) -> Option<String> {
    let subject = match operation.as_str() {
        "execute_tool" => tool,
        "invoke_agent" => text(attrs, gen_ai::AGENT_NAME).or_else(|| Some(name.to_owned())),
        // Named after a data source we do not know.
        "retrieval" => return None,
        _ => text(attrs, gen_ai::REQUEST_MODEL)
            .or_else(|| text(attrs, openinference::LLM_MODEL_NAME))
            .or_else(|| text(attrs, openinference::EMBEDDING_MODEL_NAME)),
    };
    Some(match subject {
        Some(subject) => format!("{operation} {subject}"),
        None => operation,
    })
}

/// After session enrichment moved into `attrs`: its tags merged with the span's own, and
/// OpenInference's `metadata` rebuilt to hold its metadata too.
pub(crate) fn merge_session(attrs: &mut Vec<Attr<'_>>, conventions: Conventions, cap: usize) {
    merge_tags(attrs);
    if !conventions.openinference() {
        return;
    }
    let metadata_keys = attrs
        .iter()
        .filter(|kv| kv.key.as_str().starts_with(METADATA_PREFIX))
        .count();
    if metadata_keys == 0 {
        return;
    }
    if let Some(metadata) = metadata_json(attrs) {
        attrs.retain(|kv| kv.key.as_str() != METADATA);
        let text = if metadata.len() > cap {
            super::json::cut_rendered(&metadata, cap).0
        } else {
            StringValue::from(metadata)
        };
        attrs.push(Attr::Owned(KeyValue::new(
            METADATA,
            OtelValue::String(text),
        )));
    }
}

/// In the rendered list or in a list of added keys.
fn find<'a, A: std::borrow::Borrow<KeyValue>>(attrs: &'a [A], key: &str) -> Option<&'a OtelValue> {
    attrs
        .iter()
        .map(A::borrow)
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(attrs: &[Attr<'_>], key: &str) -> Option<String> {
    match find(attrs, key)? {
        OtelValue::String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Several `tag.tags` (one per `tags` call) become one list, in order, without repeats.
fn merge_tags(attrs: &mut Vec<Attr<'_>>) {
    if attrs.iter().filter(|kv| kv.key.as_str() == TAGS).count() < 2 {
        return;
    }
    let mut merged: Vec<StringValue> = Vec::new();
    // Repeats are found by a set: a span may carry thousands of tags.
    let mut seen: HashSet<StringValue> = HashSet::new();
    attrs.retain(|kv| {
        if kv.key.as_str() != TAGS {
            return true;
        }
        if let OtelValue::Array(Array::String(tags)) = &kv.value {
            for tag in tags {
                if seen.insert(tag.clone()) {
                    merged.push(tag.clone());
                }
            }
        }
        false
    });
    attrs.push(Attr::Owned(KeyValue::new(
        TAGS,
        OtelValue::Array(Array::String(merged)),
    )));
}

/// A node of the metadata tree rebuilt from the flattened `honeyhive_metadata.*` keys.
enum Node<'a> {
    Leaf(&'a OtelValue),
    Map(Map<'a>),
}

/// A map of the metadata tree: its entries in the order they were given, found by a hash
/// index once there are more than a few (a span may carry thousands of metadata keys, and a
/// scan per key would make rendering it quadratic).
#[derive(Default)]
struct Map<'a> {
    entries: Vec<(&'a str, Node<'a>)>,
    /// The position of each entry's key; empty while the map is small.
    index: HashMap<&'a str, usize>,
}

/// Entries up to which a map is scanned rather than indexed.
const SCANNED_UP_TO: usize = 8;

impl<'a> Map<'a> {
    /// The node under `key`, added (an empty map) if new.
    fn entry(&mut self, key: &'a str) -> &mut Node<'a> {
        if self.entries.len() > SCANNED_UP_TO && self.index.len() < self.entries.len() {
            let from = self.index.len();
            for (i, (k, _)) in self.entries.iter().enumerate().skip(from) {
                self.index.insert(k, i);
            }
        }
        let found = if self.index.is_empty() {
            self.entries.iter().position(|(k, _)| *k == key)
        } else {
            self.index.get(key).copied()
        };
        let at = found.unwrap_or_else(|| {
            self.entries.push((key, Node::Map(Map::default())));
            let at = self.entries.len() - 1;
            if !self.index.is_empty() {
                self.index.insert(key, at);
            }
            at
        });
        &mut self.entries[at].1
    }
}

/// OpenInference's `metadata`: the span's `honeyhive_metadata.*` values as one JSON object,
/// nested back as they were given (`a.b` under `a`; `0, 1, ...` as a list).
fn metadata_json(attrs: &[Attr<'_>]) -> Option<String> {
    let mut root = Map::default();
    for kv in attrs {
        if let Some(path) = kv.key.as_str().strip_prefix(METADATA_PREFIX) {
            insert(&mut root, path, &kv.value);
        }
    }
    if root.entries.is_empty() {
        return None;
    }
    let mut out = String::new();
    write_map(&mut out, &root.entries);
    Some(out)
}

fn insert<'a>(map: &mut Map<'a>, path: &'a str, value: &'a OtelValue) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let node = map.entry(head);
    match rest {
        // A later value under the same key replaces the earlier one, as on a live span.
        None => *node = Node::Leaf(value),
        Some(rest) => {
            if let Node::Leaf(_) = node {
                *node = Node::Map(Map::default());
            }
            if let Node::Map(children) = node {
                insert(children, rest, value);
            }
        }
    }
}

fn write_map(out: &mut String, map: &[(&str, Node<'_>)]) {
    let is_list = !map.is_empty()
        && map
            .iter()
            .enumerate()
            .all(|(i, (k, _))| k.parse::<usize>() == Ok(i));
    if is_list {
        json::list(out, map, |out, (_, node)| write_node(out, node));
        return;
    }
    let mut o = json::Object::new(out);
    for (key, node) in map {
        write_node(o.key(key), node);
    }
    o.end();
}

fn write_node(out: &mut String, node: &Node<'_>) {
    match node {
        Node::Leaf(value) => json::value(out, value),
        Node::Map(children) => write_map(out, &children.entries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_nested_back_into_one_object() {
        let attrs = [
            KeyValue::new("honeyhive_metadata.user", "ada"),
            KeyValue::new("honeyhive_metadata.tags.0", "rag"),
            KeyValue::new("honeyhive_metadata.tags.1", "prod"),
            KeyValue::new("honeyhive_metadata.doc.page", 3),
            KeyValue::new("honeyhive_metadata.doc.score", 0.5),
            KeyValue::new("honeyhive_inputs.q", "not metadata"),
        ];
        let attrs: Vec<Attr<'_>> = attrs.iter().map(Attr::from).collect();
        let text = metadata_json(&attrs).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "user": "ada", "tags": ["rag", "prod"], "doc": {"page": 3, "score": 0.5},
            })
        );
        assert!(metadata_json(&attrs[5..]).is_none());
    }

    #[test]
    fn thousands_of_metadata_keys_keep_their_order_and_last_values() {
        // 2,000 keys at the top and 2,000 under one parent, then the first key again.
        let kvs: Vec<KeyValue> = (0..2000)
            .map(|i| KeyValue::new(format!("honeyhive_metadata.k{i}"), i))
            .chain((0..2000).map(|i| KeyValue::new(format!("honeyhive_metadata.doc.f{i}"), i)))
            .chain([KeyValue::new("honeyhive_metadata.k0", "again")])
            .collect();
        let attrs: Vec<Attr<'_>> = kvs.iter().map(Attr::from).collect();
        let text = metadata_json(&attrs).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["k0"], "again");
        assert_eq!(parsed["k1999"], 1999);
        assert_eq!(parsed["doc"]["f0"], 0);
        assert_eq!(parsed["doc"]["f1999"], 1999);
        assert_eq!(parsed.as_object().unwrap().len(), 2001);
        // In the order given (the replaced `k0` where it first came).
        let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
        assert!(at("k0") < at("k1") && at("k1") < at("k1999") && at("k1999") < at("doc"));
        assert!(at("f0") < at("f1") && at("f1") < at("f1999"));

        // Large maps are found by their index, not by a scan per key (which made a span of
        // many keys quadratic to render); small ones are scanned.
        let mut map = Map::default();
        for kv in &kvs[..2000] {
            map.entry(kv.key.as_str());
        }
        assert_eq!(map.index.len(), map.entries.len());
        let mut small = Map::default();
        for kv in &kvs[..SCANNED_UP_TO] {
            small.entry(kv.key.as_str());
        }
        assert!(small.index.is_empty());
    }

    #[test]
    fn thousands_of_tags_from_several_calls_are_one_list_without_repeats() {
        let list = |tags: Vec<String>| {
            OtelValue::Array(Array::String(
                tags.into_iter().map(StringValue::from).collect(),
            ))
        };
        let attrs = [
            KeyValue::new(TAGS, list((0..3000).map(|i| format!("t{i}")).collect())),
            KeyValue::new(TAGS, list((1500..4500).map(|i| format!("t{i}")).collect())),
        ];
        let mut attrs: Vec<Attr<'_>> = attrs.iter().map(Attr::from).collect();
        merge_tags(&mut attrs);
        assert_eq!(
            attrs[0].value,
            list((0..4500).map(|i| format!("t{i}")).collect())
        );
    }

    #[test]
    fn tags_from_several_calls_are_one_list() {
        let list = |tags: &[&'static str]| {
            OtelValue::Array(Array::String(
                tags.iter().map(|t| StringValue::from(*t)).collect(),
            ))
        };
        let attrs = [
            KeyValue::new(TAGS, list(&["beta", "rag"])),
            KeyValue::new("x", 1),
            KeyValue::new(TAGS, list(&["rag", "eu"])),
        ];
        let mut attrs: Vec<Attr<'_>> = attrs.iter().map(Attr::from).collect();
        merge_tags(&mut attrs);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[1].value, list(&["beta", "rag", "eu"]));
    }
}
