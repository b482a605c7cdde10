//! The W3C Trace Context (test/test.py of w3c/trace-context) and Baggage (test/ of w3c/baggage)
//! test cases, as tables: each request is sent through both carriers (`HashMap` and
//! `http::HeaderMap`), extracted, handled by a traced function that injects into the next
//! request, and what goes out is checked as the suites check it. Both carriers must decide the
//! same.

// The cases are tables: one long literal per suite reads better than pieces of one.
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;

use honeyhive_runtime::propagation::{BaggageEntry, Remote, extract, inject};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{Scope, trace};

/// The headers of a request, in order, names as sent (a name may repeat).
type Headers<'a> = &'a [(&'a str, &'a str)];

/// Headers to send, and the `tracestate` expected to go out.
type TracestateCase = (Vec<(&'static str, String)>, Option<String>);

/// A `HashMap` carrier: a repeated name becomes keys that differ in case, whose sorted order
/// is the order sent (the carrier reads repeats in the order of their names).
fn hash_map(headers: Headers) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (i, (name, value)) in headers.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let repeats = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count();
        let key = if repeats == 1 {
            (*name).to_owned()
        } else {
            let nth = headers[..i]
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count();
            let upper = lower.len() - nth;
            format!("{}{}", lower[..upper].to_ascii_uppercase(), &lower[upper..])
        };
        assert!(out.insert(key, (*value).to_owned()).is_none());
    }
    out
}

/// An `http::HeaderMap` carrier, if `http` can hold these values at all (it refuses CR, LF
/// and other control characters).
fn header_map(headers: Headers) -> Option<http::HeaderMap> {
    let mut out = http::HeaderMap::new();
    for (name, value) in headers {
        out.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.as_bytes()).ok()?,
        );
    }
    Some(out)
}

#[trace]
fn next_hop() -> HashMap<String, String> {
    let mut out = HashMap::new();
    inject(&mut out);
    out
}

/// What a service receiving `headers` extracts and passes on, through each carrier; asserts
/// that both carriers decided the same.
fn hop(headers: Headers) -> (Remote, HashMap<String, String>) {
    let map = hash_map(headers);
    let from_map = extract(&map);
    let out = from_map.run(next_hop);
    if let Some(hm) = header_map(headers) {
        let from_hm = extract(&hm);
        assert_eq!(
            comparable(&from_hm),
            comparable(&from_map),
            "carriers differ on {headers:?}"
        );
        let out_hm = from_hm.run(next_hop);
        assert_eq!(
            out_hm.get("tracestate"),
            out.get("tracestate"),
            "{headers:?}"
        );
        assert_eq!(out_hm.get("baggage"), out.get("baggage"), "{headers:?}");
    }
    (from_map, out)
}

/// A `Remote` without what is generated afresh each time (a replacement request id).
fn comparable(r: &Remote) -> Remote {
    let mut r = r.clone();
    if r.request_id_invalid {
        r.request_id = None;
    }
    r
}

const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";

/// The fields of an outbound `traceparent`, checked for the W3C form.
fn traceparent(out: &HashMap<String, String>) -> (String, String, String) {
    let tp = &out["traceparent"];
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && hex(parts[2], 16)
            && hex(parts[3], 2),
        "{tp}"
    );
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    (parts[1].into(), parts[2].into(), parts[3].into())
}

#[derive(Clone, Copy, Debug)]
enum Tp {
    /// The caller's trace is continued, under a new parent id.
    Continues,
    /// A new trace is started: the trace id sent is ignored.
    Restarts,
}

#[test]
fn traceparent_cases_of_the_w3c_suite() {
    let _rec = Recorder::start();
    let valid = format!("00-{TRACE}-{PARENT}-01");
    let with = |prefix: &str, suffix: &str| format!("{prefix}{valid}{suffix}");
    let cases: Vec<(Vec<(&str, String)>, Tp)> = vec![
        // test_traceparent_included_tracestate_missing
        (vec![("traceparent", valid.clone())], Tp::Continues),
        // test_traceparent_duplicated
        (
            vec![
                (
                    "traceparent",
                    format!("00-12345678901234567890123456789011-{PARENT}-01"),
                ),
                ("traceparent", valid.clone()),
            ],
            Tp::Restarts,
        ),
        // Repeated with the same value: still two headers, still refused.
        (
            vec![
                ("traceparent", valid.clone()),
                ("traceparent", valid.clone()),
            ],
            Tp::Restarts,
        ),
        // test_traceparent_header_name
        (vec![("trace-parent", valid.clone())], Tp::Restarts),
        (vec![("trace.parent", valid.clone())], Tp::Restarts),
        // test_traceparent_header_name_valid_casing
        (vec![("TraceParent", valid.clone())], Tp::Continues),
        (vec![("TrAcEpArEnT", valid.clone())], Tp::Continues),
        (vec![("TRACEPARENT", valid.clone())], Tp::Continues),
        // test_traceparent_version_0x00
        (vec![("traceparent", with("", "."))], Tp::Restarts),
        (
            vec![("traceparent", with("", "-what-the-future-will-be-like"))],
            Tp::Restarts,
        ),
        // test_traceparent_version_0xcc
        (
            vec![("traceparent", format!("cc-{TRACE}-{PARENT}-01"))],
            Tp::Continues,
        ),
        (
            vec![(
                "traceparent",
                format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
            )],
            Tp::Continues,
        ),
        (
            vec![(
                "traceparent",
                format!("cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"),
            )],
            Tp::Restarts,
        ),
        // test_traceparent_version_0xff
        (
            vec![("traceparent", format!("ff-{TRACE}-{PARENT}-01"))],
            Tp::Restarts,
        ),
        // test_traceparent_version_illegal_characters, _too_long, _too_short
        (
            vec![("traceparent", format!(".0-{TRACE}-{PARENT}-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("0.-{TRACE}-{PARENT}-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("000-{TRACE}-{PARENT}-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("0000-{TRACE}-{PARENT}-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("0-{TRACE}-{PARENT}-01"))],
            Tp::Restarts,
        ),
        // test_traceparent_trace_id_all_zero, _illegal_characters, _too_long, _too_short
        (
            vec![("traceparent", format!("00-{}-{PARENT}-01", "0".repeat(32)))],
            Tp::Restarts,
        ),
        (
            vec![(
                "traceparent",
                format!("00-.2345678901234567890123456789012-{PARENT}-01"),
            )],
            Tp::Restarts,
        ),
        (
            vec![(
                "traceparent",
                format!("00-1234567890123456789012345678901.-{PARENT}-01"),
            )],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}3-{PARENT}-01"))],
            Tp::Restarts,
        ),
        (
            vec![(
                "traceparent",
                format!("00-1234567890123456789012345678901-{PARENT}-01"),
            )],
            Tp::Restarts,
        ),
        // test_traceparent_parent_id_all_zero, _illegal_characters, _too_long, _too_short
        (
            vec![("traceparent", format!("00-{TRACE}-{}-01", "0".repeat(16)))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-.234567890123456-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-123456789012345.-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-{PARENT}7-01"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-123456789012345-01"))],
            Tp::Restarts,
        ),
        // test_traceparent_trace_flags_illegal_characters, _too_long, _too_short
        (
            vec![("traceparent", format!("00-{TRACE}-{PARENT}-.0"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-{PARENT}-0."))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-{PARENT}-001"))],
            Tp::Restarts,
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-{PARENT}-1"))],
            Tp::Restarts,
        ),
        // test_traceparent_ows_handling
        (vec![("traceparent", with(" ", ""))], Tp::Continues),
        (vec![("traceparent", with("\t", ""))], Tp::Continues),
        (vec![("traceparent", with("", " "))], Tp::Continues),
        (vec![("traceparent", with("", "\t"))], Tp::Continues),
        (vec![("traceparent", with("\t ", " \t"))], Tp::Continues),
        // The specification's grammar, beyond the suite: lowercase hex only; no CR or LF.
        (
            vec![("traceparent", format!("00-{}-{PARENT}-01", "A".repeat(32)))],
            Tp::Restarts,
        ),
        (vec![("traceparent", with("", "\r\n"))], Tp::Restarts),
        (
            vec![("traceparent", with("", "\r\nx-evil: 1"))],
            Tp::Restarts,
        ),
        (vec![("traceparent", with("", "\u{0}"))], Tp::Restarts),
    ];
    for (headers, expected) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (remote, out) = hop(&headers);
        let (trace, parent, flags) = traceparent(&out);
        match expected {
            Tp::Continues => {
                assert_eq!(trace, TRACE, "{headers:?}");
                assert_ne!(parent, PARENT, "{headers:?}: a parent id of our own");
                assert_eq!(flags, "01", "{headers:?}: the sampled flag is kept");
                assert!(remote.parent.is_some());
            }
            Tp::Restarts => {
                for (_, value) in &headers {
                    assert!(!value.contains(&trace), "{headers:?}: a new trace id");
                }
                assert_eq!(remote.parent, None, "{headers:?}");
            }
        }
    }
}

#[test]
fn trace_flags_follow_level_2() {
    let _rec = Recorder::start();
    // (flags received, flags passed on): the sampled flag is kept (the default sampler is
    // parent-based), the random-trace-id flag stays with its trace id, other bits are zero.
    for (received, sent) in [
        ("00", "00"),
        ("01", "01"),
        ("02", "02"),
        ("03", "03"),
        ("09", "01"),
        ("fe", "02"),
        ("ff", "03"),
    ] {
        let tp = format!("00-{TRACE}-{PARENT}-{received}");
        let (remote, out) = hop(&[("traceparent", &tp)]);
        assert_eq!(
            remote.parent.unwrap().random_trace_id,
            received == "02" || received == "03" || received == "fe" || received == "ff"
        );
        let (trace, parent, flags) = traceparent(&out);
        assert_eq!((trace.as_str(), flags.as_str()), (TRACE, sent), "{tp}");
        assert_ne!(parent, PARENT);
    }
    // A new trace that carries the caller's correlation (a scope moved to another thread,
    // without the span) has our own random trace id, flagged so, not the caller's.
    let tp = format!("00-{TRACE}-{PARENT}-03");
    let out = extract(&hash_map(&[("traceparent", &tp)])).run(|| {
        let scoped = Scope::session("sess-1").instrument(async { next_hop() });
        std::thread::spawn(move || futures_executor::block_on(scoped))
            .join()
            .unwrap()
    });
    let (trace, _, flags) = traceparent(&out);
    assert_ne!(trace, TRACE, "a trace of its own");
    assert_eq!(flags, "03");
    assert!(out["baggage"].contains("session_id=sess-1"), "{out:?}");
}

#[test]
fn tracestate_cases_of_the_w3c_suite() {
    let _rec = Recorder::start();
    let tp = format!("00-{TRACE}-{PARENT}-00");
    let key_without_vendor = format!("{}0123456789_-*/", ('a'..='z').collect::<String>());
    let key_with_vendor = format!("{key_without_vendor}@a-z0-9_-*/");
    let all_value_chars: String = (0x20u8..=0x7e)
        .filter(|&b| b != b',' && b != b'=')
        .map(char::from)
        .collect();
    let bars = |from: u32, to: u32| {
        (from..=to)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let thirty_two = bars(1, 32);
    let long = |c: &str| c.repeat(250);
    // (tracestate headers, what goes out)
    let cases: Vec<TracestateCase> = vec![
        // test_tracestate_included_traceparent_included
        (
            vec![("tracestate", "foo=1,bar=2".into())],
            Some("foo=1,bar=2".into()),
        ),
        // test_tracestate_header_name
        (vec![("trace-state", "foo=1".into())], None),
        (vec![("trace.state", "foo=1".into())], None),
        // test_tracestate_header_name_valid_casing
        (vec![("TraceState", "foo=1".into())], Some("foo=1".into())),
        (vec![("TrAcEsTaTe", "foo=1".into())], Some("foo=1".into())),
        (vec![("TRACESTATE", "foo=1".into())], Some("foo=1".into())),
        // test_tracestate_empty_header
        (vec![("tracestate", String::new())], None),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", String::new()),
            ],
            Some("foo=1".into()),
        ),
        (
            vec![
                ("tracestate", String::new()),
                ("tracestate", "foo=1".into()),
            ],
            Some("foo=1".into()),
        ),
        // test_tracestate_multiple_headers_different_keys: combined, in order
        (
            vec![
                ("tracestate", "foo=1,bar=2".into()),
                ("tracestate", "rojo=1,congo=2".into()),
                ("tracestate", "baz=3".into()),
            ],
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3".into()),
        ),
        // test_tracestate_duplicated_keys: discarded
        (vec![("tracestate", "foo=1,foo=1".into())], None),
        (vec![("tracestate", "foo=1,foo=2".into())], None),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", "foo=1".into()),
            ],
            None,
        ),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", "foo=2".into()),
            ],
            None,
        ),
        // test_tracestate_all_allowed_characters
        (
            vec![(
                "tracestate",
                format!("{key_without_vendor}={all_value_chars}"),
            )],
            Some(format!("{key_without_vendor}={all_value_chars}")),
        ),
        (
            vec![("tracestate", format!("{key_with_vendor}={all_value_chars}"))],
            Some(format!("{key_with_vendor}={all_value_chars}")),
        ),
        // test_tracestate_ows_handling
        (
            vec![("tracestate", "foo=1 \t , \t bar=2, \t baz=3".into())],
            Some("foo=1,bar=2,baz=3".into()),
        ),
        (
            vec![("tracestate", "foo=1\t \t,\t \tbar=2,\t \tbaz=3".into())],
            Some("foo=1,bar=2,baz=3".into()),
        ),
        (vec![("tracestate", " foo=1".into())], Some("foo=1".into())),
        (vec![("tracestate", "\tfoo=1".into())], Some("foo=1".into())),
        (vec![("tracestate", "foo=1 ".into())], Some("foo=1".into())),
        (vec![("tracestate", "foo=1\t".into())], Some("foo=1".into())),
        (
            vec![("tracestate", "\t foo=1 \t".into())],
            Some("foo=1".into()),
        ),
        // test_tracestate_key_illegal_characters
        (vec![("tracestate", "foo =1".into())], None),
        (vec![("tracestate", "FOO=1".into())], None),
        (vec![("tracestate", "foo.bar=1".into())], None),
        // test_tracestate_key_illegal_vendor_format
        (vec![("tracestate", "foo@=1,bar=2".into())], None),
        (vec![("tracestate", "@foo=1,bar=2".into())], None),
        (vec![("tracestate", "foo@@bar=1,bar=2".into())], None),
        (vec![("tracestate", "foo@bar@baz=1,bar=2".into())], None),
        // test_tracestate_member_count_limit
        (
            vec![
                ("tracestate", bars(1, 10)),
                ("tracestate", bars(11, 20)),
                ("tracestate", bars(21, 30)),
                ("tracestate", bars(31, 32)),
            ],
            Some(thirty_two.clone()),
        ),
        (
            vec![
                ("tracestate", bars(1, 10)),
                ("tracestate", bars(11, 20)),
                ("tracestate", bars(21, 30)),
                ("tracestate", bars(31, 33)),
            ],
            None,
        ),
        // test_tracestate_key_length_limit
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", format!("{}=1", "z".repeat(256))),
            ],
            Some(format!("foo=1,{}=1", "z".repeat(256))),
        ),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", format!("{}=1", "z".repeat(257))),
            ],
            None,
        ),
        (
            vec![
                ("tracestate", "foo=1".into()),
                (
                    "tracestate",
                    format!("{}@{}=1", "t".repeat(241), "v".repeat(14)),
                ),
            ],
            Some(format!("foo=1,{}@{}=1", "t".repeat(241), "v".repeat(14))),
        ),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", format!("{}@v=1", "t".repeat(242))),
            ],
            None,
        ),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", format!("t@{}=1", "v".repeat(15))),
            ],
            None,
        ),
        // test_tracestate_value_illegal_characters
        (vec![("tracestate", "foo=bar=baz".into())], None),
        (vec![("tracestate", "foo=,bar=3".into())], None),
        // The grammar beyond the suite: a simple key starts with a letter, a tenant may
        // start with a digit; no tab inside a value; a value of 256 characters at most.
        (vec![("tracestate", "1foo=1".into())], None),
        (
            vec![("tracestate", "1foo@bar=1".into())],
            Some("1foo@bar=1".into()),
        ),
        (vec![("tracestate", "foo=a\tb".into())], None),
        (
            vec![("tracestate", format!("foo={}", "v".repeat(256)))],
            Some(format!("foo={}", "v".repeat(256))),
        ),
        (
            vec![("tracestate", format!("foo={}", "v".repeat(257)))],
            None,
        ),
        // Header injection: CR or LF anywhere discards the whole tracestate.
        (vec![("tracestate", "foo=1\r\nx-evil: 1".into())], None),
        (vec![("tracestate", "foo=1,\r\nbar=2".into())], None),
        (
            vec![
                ("tracestate", "foo=1".into()),
                ("tracestate", "bar=2\n".into()),
            ],
            None,
        ),
        // Over 512 characters: members over 128 characters go first, from the end.
        (
            vec![(
                "tracestate",
                format!("a={},b=1,c={},d=1", long("x"), long("y")),
            )],
            Some(format!("a={},b=1,d=1", long("x"))),
        ),
    ];
    for (headers, expected) in &cases {
        let mut all = vec![("traceparent", tp.as_str())];
        all.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
        let (remote, out) = hop(&all);
        let (trace, _, flags) = traceparent(&out);
        assert_eq!(trace, TRACE, "{headers:?}");
        assert_eq!(flags, "00", "{headers:?}");
        assert_eq!(out.get("tracestate"), expected.as_ref(), "{headers:?}");
        assert_eq!(remote.tracestate.as_ref(), expected.as_ref(), "{headers:?}");
        if let Some(ts) = out.get("tracestate") {
            assert!(ts.len() <= 512 && ts.split(',').count() <= 32, "{ts}");
            http::HeaderValue::from_str(ts).unwrap();
        }
    }
    // test_tracestate_included_traceparent_missing: no traceparent, no tracestate read.
    for ts in ["foo=1", "foo=1,bar=2"] {
        let (remote, out) = hop(&[("tracestate", ts)]);
        assert_eq!(remote.tracestate, None);
        assert_eq!(out.get("tracestate"), None);
    }
}

fn entry(key: &str, value: &str, properties: &[(&str, Option<&str>)]) -> BaggageEntry {
    BaggageEntry {
        key: key.into(),
        value: value.into(),
        properties: properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect(),
    }
}

#[test]
fn baggage_cases_of_the_w3c_suite() {
    let _rec = Recorder::start();
    let value = "\t \"';=asdf!@#$%^&*()";
    let cases: Vec<(&str, Vec<BaggageEntry>)> = vec![
        (
            "SomeKey=SomeValue",
            vec![entry("SomeKey", "SomeValue", &[])],
        ),
        (
            "SomeKey=SomeValue,SomeKey2=SomeValue2",
            vec![
                entry("SomeKey", "SomeValue", &[]),
                entry("SomeKey2", "SomeValue2", &[]),
            ],
        ),
        (
            "SomeKey \t = \t SomeValue \t , \t SomeKey2 \t = \t SomeValue2 \t ",
            vec![
                entry("SomeKey", "SomeValue", &[]),
                entry("SomeKey2", "SomeValue2", &[]),
            ],
        ),
        (
            "SomeKey=SomeValue;SomeProp,SomeKey2=SomeValue2;SomeProp2",
            vec![
                entry("SomeKey", "SomeValue", &[("SomeProp", None)]),
                entry("SomeKey2", "SomeValue2", &[("SomeProp2", None)]),
            ],
        ),
        (
            "SomeKey \t = \t SomeValue \t ; \t SomeProp \t , \t SomeKey2 \t = \t SomeValue2 \t ; \t SomeProp2",
            vec![
                entry("SomeKey", "SomeValue", &[("SomeProp", None)]),
                entry("SomeKey2", "SomeValue2", &[("SomeProp2", None)]),
            ],
        ),
        (
            "SomeKey=SomeValue;SomePropKey=SomePropValue,SomeKey2=SomeValue2;SomePropKey2=SomePropValue2",
            vec![
                entry(
                    "SomeKey",
                    "SomeValue",
                    &[("SomePropKey", Some("SomePropValue"))],
                ),
                entry(
                    "SomeKey2",
                    "SomeValue2",
                    &[("SomePropKey2", Some("SomePropValue2"))],
                ),
            ],
        ),
        (
            "SomeKey \t = \t SomeValue \t ; \t SomePropKey=SomePropValue \t , \t SomeKey2 \t = \t SomeValue2 \t ; \t SomePropKey2 \t = \t SomePropValue2",
            vec![
                entry(
                    "SomeKey",
                    "SomeValue",
                    &[("SomePropKey", Some("SomePropValue"))],
                ),
                entry(
                    "SomeKey2",
                    "SomeValue2",
                    &[("SomePropKey2", Some("SomePropValue2"))],
                ),
            ],
        ),
        (
            "SomeKey=SomeValue;SomeProp;SecondProp=PropValue",
            vec![entry(
                "SomeKey",
                "SomeValue",
                &[("SomeProp", None), ("SecondProp", Some("PropValue"))],
            )],
        ),
        (
            "SomeKey \t = \t SomeValue \t ; \t SomeProp \t ; \t SecondProp \t = \t PropValue",
            vec![entry(
                "SomeKey",
                "SomeValue",
                &[("SomeProp", None), ("SecondProp", Some("PropValue"))],
            )],
        ),
        (
            "SomeKey=SomeValue=equals",
            vec![entry("SomeKey", "SomeValue=equals", &[])],
        ),
        (
            "SomeKey=%09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29",
            vec![entry("SomeKey", value, &[])],
        ),
        (
            "SomeKey \t = \t %09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29 \t ",
            vec![entry("SomeKey", value, &[])],
        ),
        // The grammar beyond the suite: an invalid member is dropped, the rest kept.
        (
            "bad key=1,k=v%ZZ,=novalue,k2=a b,ok=%E2%9C%93,empty=",
            vec![entry("ok", "✓", &[]), entry("empty", "", &[])],
        ),
        // Invalid UTF-8 after decoding becomes U+FFFD, as the specification says.
        ("k=%FF", vec![entry("k", "\u{FFFD}", &[])]),
        // CR or LF: the header value is ignored.
        ("k=v\r\nx-evil: 1", vec![]),
    ];
    for (baggage, expected) in &cases {
        let (remote, out) = hop(&[("baggage", baggage)]);
        assert_eq!(&remote.baggage, expected, "{baggage:?}");
        // What goes out reads back as what came in.
        let again = extract(&out);
        assert_eq!(&again.baggage, expected, "{baggage:?} → {out:?}");
        if let Some(b) = out.get("baggage") {
            http::HeaderValue::from_str(b).unwrap();
        }
    }
}

#[test]
fn repeated_baggage_headers_are_combined_in_order() {
    let _rec = Recorder::start();
    let (remote, out) = hop(&[
        ("baggage", "a=1,session_id=sess-1"),
        ("baggage", ""),
        ("baggage", "b=2;p"),
        ("baggage", "user_id=user-1"),
    ]);
    assert_eq!(
        remote.baggage,
        [entry("a", "1", &[]), entry("b", "2", &[("p", None)])]
    );
    assert_eq!(remote.session_id.as_deref(), Some("sess-1"));
    assert_eq!(remote.user_id.as_deref(), Some("user-1"));
    assert_eq!(out["baggage"], "session_id=sess-1,user_id=user-1,a=1,b=2;p");
}

/// `count` members `key<i>=<value>`.
fn members(count: usize, value: &str) -> String {
    (0..count)
        .map(|i| format!("key{i}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn baggage_limits_of_the_w3c_suite() {
    let _rec = Recorder::start();
    // At least 64 members are passed on, all of them.
    let (_, out) = hop(&[("baggage", &members(64, "value"))]);
    assert_eq!(out["baggage"], members(64, "value"));
    // 180 at most.
    let (remote, out) = hop(&[("baggage", &members(200, "value"))]);
    assert_eq!(remote.baggage.len(), 180);
    assert_eq!(out["baggage"].split(',').count(), 180);
    assert_eq!(out["baggage"], members(180, "value"));
    // A member making a value of exactly 8,192 bytes is passed on whole.
    let exact = format!("a={}", "0123456789".repeat(819));
    assert_eq!(exact.len(), 8192);
    let (_, out) = hop(&[("baggage", &exact)]);
    assert_eq!(out["baggage"], exact);
    // Over 8,192 bytes: not read (a partial member is never passed on).
    let over = format!("{exact}0");
    let (remote, out) = hop(&[("baggage", &over)]);
    assert!(remote.baggage.is_empty());
    assert_eq!(out.get("baggage"), None);
}
