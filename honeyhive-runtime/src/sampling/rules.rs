//! Sampling rules: a rate for the roots whose name or event type match.

use std::borrow::Cow;

use crate::record::{EventType, Meta};

/// A sampling rate for root spans matching a name and/or an event type.
///
/// Rules are given to [`Builder::sampling_rule`](crate::Builder::sampling_rule) in order; the
/// first rule that matches a root decides its rate. Roots no rule matches fall back to the
/// declared `sample_rate`, then the adaptive sampler, then the [`Sampler`](super::Sampler).
/// A rule with neither a name nor an event type matches every root.
///
/// A name ending in `*` matches every name that starts with what precedes it.
///
/// ```
/// use honeyhive_runtime::EventType;
/// use honeyhive_runtime::sampling::Rule;
///
/// let _guard = honeyhive_runtime::Builder::new()
///     .sampling_rule(Rule::new(1.0).name("checkout"))         // every checkout
///     .sampling_rule(Rule::new(0.0).name("health*"))          // no health checks
///     .sampling_rule(Rule::new(0.05).event_type(EventType::Model)) // 5% of bare LLM calls
///     .install();
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Rule {
    name: Option<Cow<'static, str>>,
    event_type: Option<EventType>,
    rate: f64,
}

impl Rule {
    /// A rule keeping `rate` (clamped to `[0, 1]`; not a number is 1, see
    /// [Rates](crate::sampling#rates)) of the roots it matches.
    pub fn new(rate: f64) -> Rule {
        Rule {
            name: None,
            event_type: None,
            rate: super::clamp_rate(rate),
        }
    }

    /// Matches roots with this span name (a trailing `*` matches a prefix).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Rule {
        self.name = Some(name.into());
        self
    }

    /// Matches roots of this event type.
    pub fn event_type(mut self, event_type: EventType) -> Rule {
        self.event_type = Some(event_type);
        self
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    pub(crate) fn matches(&self, meta: &Meta) -> bool {
        self.event_type.is_none_or(|t| t == meta.event_type)
            && self
                .name
                .as_deref()
                .is_none_or(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => meta.name.starts_with(prefix),
                    None => meta.name == pattern,
                })
    }
}
