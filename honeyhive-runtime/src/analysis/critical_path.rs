//! The critical path of a trace: the chain of spans that decided when its root ended.
//!
//! Walking back from the root's end: the child that ended last before that point is on the
//! path, and so, inside it, is its own last-ending child; before that child started, the
//! parent's child that ended last before *that* point, and so on. The parent's time in the
//! gaps between the children on the path is its own time on the path. Children that ran
//! concurrently with one on the path and ended earlier are off it, however long they ran: a
//! long retrieval that overlapped a later model call did not make the request slower than the
//! model call did.
//!
//! A child that ends after its parent (a detached task) counts as ending with its parent.

use std::collections::HashMap;

use super::{Span, Trace};

/// One span on a critical path.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct PathStep<'a> {
    /// The span.
    pub span: &'a Span,
    /// Its depth under the root (0 for the root).
    pub depth: usize,
    /// Its own time on the path, in nanoseconds: the part of its time on the path that no
    /// child on the path covers (the gaps between them).
    pub self_nanos: u64,
    /// When its part of the path ends, in nanoseconds since the Unix epoch: its end, or its
    /// parent's end if it ran past it.
    pub end_unix_nanos: u64,
}

/// A span being walked: its children on the path are found from `cursor` backwards, among
/// its children from `next` on (the ones before are on the path already, or can no longer
/// be: the cursor only moves back).
struct Frame {
    span: usize,
    depth: usize,
    step: usize,
    cursor: u64,
    next: usize,
    self_nanos: u64,
}

#[cfg(test)]
thread_local! {
    /// Children looked at by the walks on this thread, for the test that each is looked at
    /// once.
    static LOOKED_AT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Trace {
    /// The critical path from the root: the root first, then the spans on the path in the
    /// order they started (a parent before its first child on the path). Empty without a
    /// root. The root is [`Trace::root`]: a span under a remote parent that is in the trace
    /// too is that parent's child (both sides of a call in one trace), so the path starts at
    /// the caller and goes through the callee.
    ///
    /// It takes time about linear in the trace's spans (each child is looked at once, after
    /// sorting each parent's children), so it suits traces of any width or depth.
    ///
    /// ```
    /// # use honeyhive_runtime::analysis::Trace;
    /// # fn show(trace: &Trace) {
    /// for step in trace.critical_path() {
    ///     println!("{:indent$}{} {}ns", "", step.span.name, step.self_nanos, indent = step.depth * 2);
    /// }
    /// # }
    /// ```
    pub fn critical_path(&self) -> Vec<PathStep<'_>> {
        let roots = super::roots(&self.spans);
        let Some(root) = (0..self.spans.len())
            .filter(|&i| roots[i])
            .min_by_key(|&i| self.spans[i].start_unix_nanos)
        else {
            return Vec::new();
        };
        // Children hang under one span per id (the root for its own id, else the first):
        // with duplicate ids, the spans reachable from the root still form a tree, so each
        // is walked at most once.
        let mut index_of: HashMap<u64, usize> = HashMap::with_capacity(self.spans.len());
        index_of.insert(self.spans[root].span_id, root);
        for (i, span) in self.spans.iter().enumerate() {
            index_of.entry(span.span_id).or_insert(i);
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.spans.len()];
        for (i, span) in self.spans.iter().enumerate() {
            if !roots[i]
                && let Some(&parent) = index_of.get(&span.parent_span_id)
            {
                children[parent].push(i);
            }
        }
        // Each parent's children, latest end first (then the earlier start: the longer one).
        for list in &mut children {
            list.sort_by_key(|&i| {
                let s = &self.spans[i];
                (std::cmp::Reverse(s.end_unix_nanos), s.start_unix_nanos)
            });
        }
        let root_span = &self.spans[root];
        let mut steps = vec![PathStep {
            span: root_span,
            depth: 0,
            self_nanos: 0,
            end_unix_nanos: root_span.end_unix_nanos,
        }];
        // An explicit stack: a trace read from a file may nest deeper than the thread's stack.
        let mut stack = vec![Frame {
            span: root,
            depth: 0,
            step: 0,
            cursor: root_span.end_unix_nanos,
            next: 0,
            self_nanos: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let span = &self.spans[frame.span];
            let start = span.start_unix_nanos;
            let until = steps[frame.step].end_unix_nanos;
            let list = &children[frame.span];
            let mut found = None;
            // The first child that ended by the cursor and started before it. One skipped
            // now is skipped for good: the cursor only moves back, so a child that ended
            // after it, or started at or after it, never qualifies later.
            while frame.cursor > start
                && let Some(&c) = list.get(frame.next)
            {
                frame.next += 1;
                #[cfg(test)]
                LOOKED_AT.with(|n| n.set(n.get() + 1));
                let child = &self.spans[c];
                if child.start_unix_nanos < frame.cursor
                    && child.end_unix_nanos.min(until) <= frame.cursor
                {
                    found = Some(c);
                    break;
                }
            }
            let Some(c) = found else {
                frame.self_nanos += frame.cursor.saturating_sub(start);
                steps[frame.step].self_nanos = frame.self_nanos;
                stack.pop();
                continue;
            };
            let child = &self.spans[c];
            let end = child.end_unix_nanos.min(until);
            frame.self_nanos += frame.cursor - end;
            frame.cursor = child.start_unix_nanos.max(start);
            let depth = frame.depth + 1;
            steps.push(PathStep {
                span: child,
                depth,
                self_nanos: 0,
                end_unix_nanos: end,
            });
            stack.push(Frame {
                span: c,
                depth,
                step: steps.len() - 1,
                cursor: end,
                next: 0,
                self_nanos: 0,
            });
        }
        steps.sort_by_key(|s| (s.span.start_unix_nanos, s.depth));
        steps
    }

    /// The span ids on the critical path (see [`Trace::critical_path`]).
    pub fn critical_path_ids(&self) -> Vec<u64> {
        self.critical_path()
            .iter()
            .map(|s| s.span.span_id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Span, Status, Trace};
    use crate::record::SpanKind;

    const MS: u64 = 1_000_000;

    fn span(id: u64, parent: u64, name: &str, start_ms: u64, end_ms: u64) -> Span {
        Span {
            trace_id: 7,
            span_id: id,
            parent_span_id: parent,
            parent_remote: false,
            name: name.to_owned(),
            kind: SpanKind::Internal,
            start_unix_nanos: start_ms * MS,
            end_unix_nanos: end_ms * MS,
            status: Status::Unset,
            attributes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn path(trace: &Trace) -> Vec<(&str, usize, u64)> {
        trace
            .critical_path()
            .iter()
            .map(|s| (s.span.name.as_str(), s.depth, s.self_nanos / MS))
            .collect()
    }

    #[test]
    fn the_longest_concurrent_child_is_off_the_path_when_another_ends_later() {
        // request 0..100: `slow_search` runs 5..80 (the longest child), `quick_cache` 10..20
        // and `model` 30..95 run alongside it. `model` ends last, so it decided the end;
        // before it started, `quick_cache` is the last to have ended (`slow_search` was
        // still running at 30, so it decided nothing).
        let trace = Trace::new(vec![
            span(2, 1, "slow_search", 5, 80),
            span(3, 1, "quick_cache", 10, 20),
            span(4, 1, "model", 30, 95),
            span(1, 0, "request", 0, 100),
        ]);
        assert_eq!(
            path(&trace),
            [
                ("request", 0, 10 + 10 + 5),
                ("quick_cache", 1, 10),
                ("model", 1, 65),
            ]
        );
        assert!(!trace.critical_path_ids().contains(&2));
    }

    #[test]
    fn the_path_goes_down_into_the_children_of_a_span_on_it() {
        // agent 0..100 > [plan 0..20, act 20..90 > [tool_a 25..60, tool_b 30..85 (longest
        // end), tool_c 22..28]].
        let trace = Trace::new(vec![
            span(1, 0, "agent", 0, 100),
            span(2, 1, "plan", 0, 20),
            span(3, 1, "act", 20, 90),
            span(4, 3, "tool_a", 25, 60),
            span(5, 3, "tool_b", 30, 85),
            span(6, 3, "tool_c", 22, 28),
        ]);
        assert_eq!(
            path(&trace),
            [
                ("agent", 0, 10),
                ("plan", 1, 20),
                ("act", 1, 2 + 2 + 5),
                ("tool_c", 2, 6),
                ("tool_b", 2, 55),
            ]
        );
    }

    #[test]
    fn a_child_that_outlives_its_parent_counts_until_the_parent_ends() {
        let trace = Trace::new(vec![
            span(1, 0, "root", 0, 50),
            span(2, 1, "detached", 40, 200),
        ]);
        let steps = trace.critical_path();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].end_unix_nanos, 50 * MS);
        assert_eq!(steps[1].self_nanos, 10 * MS);
        assert_eq!(steps[0].self_nanos, 40 * MS);
    }

    #[test]
    fn the_path_goes_through_a_remote_call_whose_caller_is_in_the_trace() {
        let mut server = span(3, 2, "server", 0, 30);
        server.parent_remote = true;
        let trace = Trace::new(vec![
            server,
            span(2, 1, "call", 0, 40),
            span(1, 0, "client", 0, 50),
        ]);
        let names: Vec<&str> = path(&trace).iter().map(|s| s.0).collect();
        assert_eq!(names, ["client", "call", "server"]);
    }

    #[test]
    fn each_child_is_looked_at_once_however_wide_the_trace() {
        // A batch job: 10,000 calls one after another, all on the path. A walk that looked
        // again at the children already on the path, at each step, would look about 50
        // million times (what made the console stall on such a trace).
        let n: u64 = 10_000;
        let mut spans = vec![span(1, 0, "batch", 0, 10 * n + 10)];
        for i in 0..n {
            spans.push(span(i + 2, 1, "item", 10 * i + 1, 10 * i + 9));
        }
        // And a fan-out: 10,000 calls at once under one of them, one of which is on the
        // path; the others are looked at once each, when the walk passes them.
        for i in 0..n {
            spans.push(span(n + 2 + i, 2, "part", 2, 8));
        }
        let trace = Trace::new(spans);
        super::LOOKED_AT.with(|count| count.set(0));
        let steps = trace.critical_path();
        assert_eq!(steps.len(), usize::try_from(n).unwrap() + 2);
        assert_eq!(
            super::LOOKED_AT.with(std::cell::Cell::get),
            usize::try_from(2 * n).unwrap()
        );
    }

    #[test]
    fn odd_traces_end_the_walk() {
        // No root.
        assert!(
            Trace::new(vec![span(2, 1, "orphan", 0, 5)])
                .critical_path()
                .is_empty()
        );
        // Duplicate ids, a span its own parent, zero-length children.
        let trace = Trace::new(vec![
            span(1, 0, "root", 0, 10),
            span(1, 1, "same id", 2, 8),
            span(3, 3, "own parent", 1, 2),
            span(4, 1, "instant", 5, 5),
        ]);
        let steps = trace.critical_path();
        assert_eq!(steps[0].span.name, "root");
        assert!(steps.len() <= 4);
        // A chain deeper than a thread's stack would allow recursion for.
        let mut spans = vec![span(1, 0, "root", 0, 1_000_000)];
        for i in 2..200_000 {
            spans.push(span(i, i - 1, "deep", i, 1_000_000 - i));
        }
        assert_eq!(Trace::new(spans).critical_path().len(), 199_999);
    }
}
