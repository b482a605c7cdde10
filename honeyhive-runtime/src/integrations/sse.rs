//! Server-sent events, parsed incrementally from the chunks of a response body as they pass on
//! to the caller: the parser keeps only the unfinished line and the event being built.

/// One server-sent event: its `event:` name (empty when none was given) and its `data:` lines,
/// joined with `\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: String,
    /// The `data:` field.
    pub data: String,
}

/// An incremental parser of `text/event-stream` bodies (the WHATWG rules that matter for LLM
/// APIs: `event`, `data`, comments, CRLF / LF / CR line ends, a blank line ends an event).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The last chunk ended in `\r`: a `\n` that starts the next one belongs to that line end.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    /// Lines longer than this are dropped: an event stream is read for its small JSON events, and
    /// a line with no end must not grow without bound.
    max_line: usize,
    overlong: bool,
}

/// The longest line kept by default (1 MiB).
const DEFAULT_MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// A parser that keeps lines up to 1 MiB.
    pub fn new() -> SseParser {
        SseParser {
            max_line: DEFAULT_MAX_LINE,
            ..SseParser::default()
        }
    }

    /// Feeds a chunk of the body; `on_event` is called for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let [b'\n', tail @ ..] = rest {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.push(&rest[..end]);
            self.end_line(&mut on_event);
            let crlf = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if crlf {
                match rest {
                    [b'\n', tail @ ..] => rest = tail,
                    [] => self.after_cr = true,
                    _ => {}
                }
            }
        }
        self.push(rest);
    }

    /// The body ended: an event without its closing blank line is still delivered, as
    /// browsers do not, but LLM servers that close the connection right after the last `data:`
    /// line exist.
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent)) {
        if !self.line.is_empty() {
            self.end_line(&mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > self.max_line {
            self.overlong = true;
            self.line.clear();
        } else if !self.overlong {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        let overlong = std::mem::take(&mut self.overlong);
        let line = std::mem::take(&mut self.line);
        if overlong {
            return;
        }
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // Comments (`: keep-alive`), `id`, `retry` and unknown fields carry nothing we
            // record.
            _ => {}
        }
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        if self.has_data {
            on_event(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        } else {
            self.event.clear();
        }
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| out.push(e));
        }
        parser.finish(|e| out.push(e));
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let body = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let whole = events_of(&[body]);
        assert_eq!(
            whole,
            vec![
                ev("message_start", "{\"a\":1}"),
                ev("", "x\ny"),
                ev("", "[DONE]")
            ]
        );
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(events_of(&[a, b]), whole, "split at {split}");
        }
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let body = b"data: one\r\n\r\ndata: two\r\rdata:three\n\n";
        let want = vec![ev("", "one"), ev("", "two"), ev("", "three")];
        assert_eq!(events_of(&[body]), want);
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(events_of(&[a, b]), want, "split at {split}");
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_delivered() {
        assert_eq!(events_of(&[b"data: end"]), vec![ev("", "end")]);
    }

    #[test]
    fn overlong_lines_are_dropped_not_kept() {
        let mut parser = SseParser {
            max_line: 8,
            ..SseParser::new()
        };
        let mut out = Vec::new();
        parser.feed(b"data: 0123456789", |e| out.push(e));
        parser.feed(b"abcdef\n\ndata: ok\n\n", |e| out.push(e));
        assert_eq!(out, vec![ev("", "ok")]);
        assert!(parser.line.capacity() <= 64);
    }
}
