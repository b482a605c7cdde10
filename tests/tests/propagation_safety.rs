//! What goes out is always a valid header within the W3C limits, whatever came in or what the
//! code put in its scope; request ids that arrive invalid or repeated are replaced and marked,
//! on every path; both carriers read requests the same way.

use std::collections::HashMap;
use std::fmt::Write as _;

use honeyhive_runtime::propagation::{Carrier, extract, inject};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Scope, trace, with_request_id};

#[trace]
fn next_hop() -> HashMap<String, String> {
    let mut out = HashMap::new();
    inject(&mut out);
    out
}

#[with_request_id]
#[trace]
fn handler_with_id() -> HashMap<String, String> {
    next_hop()
}

/// Every outbound header is a valid header value, and the W3C limits hold.
fn assert_valid_headers(out: &HashMap<String, String>) {
    for (name, value) in out {
        assert!(
            http::HeaderValue::from_str(value).is_ok()
                && !value.contains(['\r', '\n', '\0'])
                && value.trim() == value,
            "{name}: {value:?}"
        );
    }
    if let Some(b) = out.get("baggage") {
        assert!(b.len() <= 8192, "baggage of {} bytes", b.len());
        assert!(b.split(',').count() <= 180);
    }
    if let Some(ts) = out.get("tracestate") {
        assert!(ts.len() <= 512 && ts.split(',').count() <= 32, "{ts}");
    }
    if let Some(rid) = out.get("x-request-id") {
        assert!(honeyhive_runtime::is_valid_request_id(rid), "{rid:?}");
    }
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn an_inbound_tracestate_with_cr_or_lf_is_never_passed_on() {
    let _rec = Recorder::start();
    for evil in [
        "congo=t61rcWkgMzE,\r\nx-admin: 1",
        "congo=t61rcWkgMzE\r\nx-admin: 1",
        "congo=t61rcWkgMzE,rojo=1\n",
        "\r\ncongo=t61rcWkgMzE",
        "congo=t61r\u{0}cWkgMzE",
    ] {
        let inbound = HashMap::from([
            ("traceparent".to_owned(), TP.to_owned()),
            ("tracestate".to_owned(), evil.to_owned()),
        ]);
        let remote = extract(&inbound);
        assert!(remote.parent.is_some());
        assert_eq!(remote.tracestate, None, "{evil:?}");
        let out = remote.run(next_hop);
        assert_eq!(out.get("tracestate"), None, "{evil:?}");
        assert_valid_headers(&out);
    }
}

#[test]
fn request_ids_set_in_code_go_out_only_when_valid() {
    let _rec = Recorder::start();
    for evil in [
        "rid-1\r\nx-admin: 1",
        "rid\n",
        "has space",
        "\u{0}",
        &"r".repeat(500),
    ] {
        let out = Scope::default().request_id(evil).run(next_hop);
        assert_eq!(out.get("x-request-id"), None, "{evil:?}");
        assert!(
            !out.get("baggage").is_some_and(|b| b.contains("request_id")),
            "{out:?}"
        );
        assert_valid_headers(&out);
    }
    let out = Scope::default().request_id("rid-ok_1").run(next_hop);
    assert_eq!(out["x-request-id"], "rid-ok_1");
    assert_eq!(out["baggage"], "request_id=rid-ok_1");
}

#[test]
fn sessions_users_and_ids_of_any_content_go_out_as_valid_headers() {
    let _rec = Recorder::start();
    let huge = "s".repeat(10_000);
    for (session, user) in [
        ("sess\r\nx-admin: 1", "user,one;two"),
        ("séance ✓", "user \"quoted\" \\ back"),
        ("%41%", "100%"),
        (huge.as_str(), "user-1"),
    ] {
        let out = Scope::session(session)
            .user(user)
            .request_id("rid-9")
            .run(next_hop);
        assert_valid_headers(&out);
        // What fits is read back as it was; the oversized session is left out whole.
        let back = extract(&out);
        assert_eq!(back.request_id.unwrap().id.as_ref(), "rid-9");
        let readable = |s: &str| honeyhive_runtime::is_valid_request_id(s);
        if session.len() < 8000 {
            assert_eq!(
                back.session_id.as_deref(),
                readable(session).then_some(session)
            );
        } else {
            assert_eq!(back.session_id, None);
            assert_eq!(back.user_id.as_deref(), Some("user-1"), "{out:?}");
        }
    }
}

#[test]
fn a_full_baggage_is_passed_on_within_the_limit_with_the_session_and_user() {
    let _rec = Recorder::start();
    // 30 members of about 250 bytes of characters baggage allows unencoded: 7.5 KB.
    let raw = "!#$&'()*+-./:<=>?@[]^_`{|}~";
    let value: String = raw.chars().cycle().take(240).collect();
    let mut baggage = String::from("session_id=sess-7,user_id=user-7,request_id=rid-7");
    for i in 0..30 {
        write!(baggage, ",k{i:02}={value}").unwrap();
    }
    assert!(
        baggage.len() > 7_300 && baggage.len() <= 8192,
        "{}",
        baggage.len()
    );
    let inbound = HashMap::from([
        ("traceparent".to_owned(), TP.to_owned()),
        ("baggage".to_owned(), baggage.clone()),
    ]);
    let remote = extract(&inbound);
    assert_eq!(remote.baggage.len(), 30);
    let out = remote.run(handler_with_id);
    assert_valid_headers(&out);
    assert!(
        out["baggage"].len() <= baggage.len(),
        "passed on at {} bytes, received at {}",
        out["baggage"].len(),
        baggage.len()
    );
    // The next hop gets the session, the user, the request id and every member.
    let next = extract(&out);
    assert_eq!(next.session_id.as_deref(), Some("sess-7"));
    assert_eq!(next.user_id.as_deref(), Some("user-7"));
    assert_eq!(next.request_id.unwrap().id.as_ref(), "rid-7");
    assert_eq!(next.baggage, remote.baggage);

    // When ours do not all fit with what came in, members are left out whole, ours first kept.
    let long = format!("big={}", "v".repeat(8180));
    let inbound = HashMap::from([("baggage".to_owned(), long)]);
    let out = extract(&inbound).run(|| Scope::session("sess-8").run(handler_with_id));
    assert_valid_headers(&out);
    let next = extract(&out);
    assert_eq!(next.session_id.as_deref(), Some("sess-8"));
    assert!(next.request_id.is_some());
    assert!(
        next.baggage.is_empty(),
        "the member that does not fit is dropped whole"
    );
}

fn replaced(span: &FinishedSpan) -> Option<bool> {
    span.bool("honeyhive.request_id.replaced_invalid")
}

#[trace]
fn plain_handler() {}

#[with_request_id]
#[trace]
fn ensuring_handler() {
    plain_handler();
}

#[test]
fn an_invalid_inbound_request_id_is_replaced_and_marked_on_every_extract_path() {
    let rec = Recorder::start();
    let headers = |id: &str| HashMap::from([("x-request-id".to_owned(), id.to_owned())]);
    // Without #[with_request_id]: the replacement stands for the request.
    extract(&headers("bad id")).run(plain_handler);
    // With it: it adopts the replacement, marked.
    extract(&headers("bad\"id")).run(ensuring_handler);
    // Through baggage too.
    let bag = HashMap::from([("baggage".to_owned(), "request_id=bad%20id".to_owned())]);
    extract(&bag).run(plain_handler);
    // A valid one is not marked.
    extract(&headers("good-1")).run(ensuring_handler);
    let spans = rec.spans();
    let all: Vec<_> = spans.iter().collect();
    assert_eq!(all.len(), 6);
    for span in &all[..4] {
        let id = span.str("honeyhive.request_id").unwrap();
        assert!(honeyhive_runtime::is_valid_request_id(id), "{id}");
        assert_eq!(span.str("honeyhive.request_id.source"), Some("generated"));
        assert_eq!(replaced(span), Some(true), "{}", span.name);
    }
    for span in &all[4..] {
        assert_eq!(span.str("honeyhive.request_id"), Some("good-1"));
        assert_eq!(replaced(span), None);
    }
    // The replacement is one id for the whole request, and is what goes downstream.
    assert_eq!(
        all[1].str("honeyhive.request_id"),
        all[2].str("honeyhive.request_id")
    );
    let out = extract(&headers("bad id")).run(handler_with_id);
    assert!(honeyhive_runtime::is_valid_request_id(&out["x-request-id"]));
}

#[test]
fn a_repeated_request_id_is_accepted_only_when_the_repeats_agree() {
    let _rec = Recorder::start();
    let mut same = http::HeaderMap::new();
    same.append("x-request-id", "rid-1".parse().unwrap());
    same.append("x-request-id", "rid-1".parse().unwrap());
    let remote = extract(&same);
    assert_eq!(remote.request_id.unwrap().id.as_ref(), "rid-1");
    assert!(!remote.request_id_invalid);

    let mut differ = http::HeaderMap::new();
    differ.append("x-request-id", "rid-1".parse().unwrap());
    differ.append("x-request-id", "rid-2".parse().unwrap());
    let remote = extract(&differ);
    assert!(remote.request_id_invalid);
    let id = remote.request_id.unwrap();
    assert!(!["rid-1", "rid-2"].contains(&id.id.as_ref()));
    let map = HashMap::from([
        ("x-request-id".to_owned(), "rid-1".to_owned()),
        ("X-Request-Id".to_owned(), "rid-2".to_owned()),
    ]);
    assert!(extract(&map).request_id_invalid);
}

#[with_request_id(from = headers)]
#[trace(skip(headers))]
fn from_headers<C: honeyhive_runtime::RequestIdCarrier>(headers: &C) -> Option<String> {
    honeyhive_runtime::current_request_id().map(|r| r.id.to_string())
}

#[test]
fn both_carriers_read_the_same_request_id_whatever_the_whitespace() {
    let _rec = Recorder::start();
    for (raw, expected) in [
        (" rid-1", Some("rid-1")),
        ("rid-1\t", Some("rid-1")),
        ("\t rid-1 \t", Some("rid-1")),
        ("rid 1", None),
        (" ", None),
    ] {
        let map = HashMap::from([("x-request-id".to_owned(), raw.to_owned())]);
        let mut hm = http::HeaderMap::new();
        hm.insert("x-request-id", http::HeaderValue::from_str(raw).unwrap());
        let from_map = extract(&map).request_id.filter(|_| expected.is_some());
        let from_hm = extract(&hm).request_id.filter(|_| expected.is_some());
        assert_eq!(from_map, from_hm, "{raw:?}");
        assert_eq!(
            from_map.map(|r| r.id.to_string()).as_deref(),
            expected,
            "{raw:?}"
        );
        // `#[with_request_id(from = ..)]` reads them by the same rule.
        let a = from_headers(&map);
        let b = from_headers(&hm);
        match expected {
            Some(id) => {
                assert_eq!(a.as_deref(), Some(id), "{raw:?}");
                assert_eq!(b.as_deref(), Some(id), "{raw:?}");
            }
            None => assert!(a.is_some_and(|a| a != raw) && b.is_some_and(|b| b != raw)),
        }
        assert_eq!(
            Carrier::get_all(&map, "x-request-id").len(),
            Carrier::get_all(&hm, "x-request-id").len()
        );
    }
}

/// `inject` into a `HashMap` and into a `HeaderMap`, with what each carrier held before.
fn inject_both(held: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = held
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    inject(&mut map);
    let mut headers = http::HeaderMap::new();
    for (k, v) in held {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    inject(&mut headers);
    let from_headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(map, from_headers, "the carriers disagree");
    map
}

#[test]
fn a_remote_built_by_hand_sends_only_valid_headers_the_same_from_both_carriers() {
    use honeyhive_runtime::propagation::{BaggageEntry, Remote};
    let _rec = Recorder::start();
    let parent = extract(&HashMap::from([("traceparent".to_owned(), TP.to_owned())])).parent;
    let entry = |key: &str, value: &str, properties: &[(&str, Option<&str>)]| BaggageEntry {
        key: key.to_owned(),
        value: value.to_owned(),
        properties: properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect(),
    };
    let many: Vec<String> = (0..40).map(|i| format!("k{i}=v{i}")).collect();
    let long: Vec<String> = (0..20)
        .map(|i| format!("k{i}={}", "v".repeat(95)))
        .collect();
    for (tracestate, sent) in [
        ("foo=1\r\nx-evil: 1", None),
        ("FOO BAR", None),
        (many.join(",").as_str(), None),
        ("foo=1 , bar=2", Some("foo=1,bar=2")),
    ]
    .into_iter()
    .chain([(long.join(",").as_str(), Some(long[..5].join(",").as_str()))])
    {
        let remote = Remote {
            parent,
            tracestate: Some(tracestate.to_owned()),
            session_id: Some("s1".to_owned()),
            baggage: vec![
                entry("k\r\nx-evil", "v", &[]),
                entry("bad key", "v", &[]),
                entry("crlf", "v", &[("p", Some("x\r\ny"))]),
                entry("comma", "v", &[("p", Some("a,b=c")), ("bad p", None)]),
                entry("ok", "v w", &[("q", None)]),
            ],
            ..Remote::default()
        };
        // Under a span of ours, and with the caller's context only.
        for out in [remote.run(next_hop), remote.run(|| inject_both(&[]))] {
            assert_valid_headers(&out);
            assert_eq!(
                out.get("tracestate").map(String::as_str),
                sent,
                "{tracestate:?}"
            );
            let next = extract(&out);
            assert_eq!(next.session_id.as_deref(), Some("s1"));
            let keys: Vec<&str> = next.baggage.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["crlf", "comma", "ok"], "{out:?}");
            assert_eq!(
                next.baggage[0].properties,
                [("p".to_owned(), Some("x%0D%0Ay".to_owned()))]
            );
            assert_eq!(
                next.baggage[1].properties,
                [("p".to_owned(), Some("a%2Cb=c".to_owned()))]
            );
            assert_eq!(next.baggage[2].value, "v w");
        }
    }
}

#[test]
fn a_tracestate_the_carrier_held_goes_when_the_span_has_none() {
    let _rec = Recorder::start();
    #[trace]
    fn call_out() -> HashMap<String, String> {
        inject_both(&[
            ("tracestate", "stale=1"),
            (
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            ),
            ("baggage", "theirs=1"),
        ])
    }
    let out = call_out();
    assert_eq!(out.get("tracestate"), None, "{out:?}");
    assert_ne!(
        out["traceparent"],
        "00-11111111111111111111111111111111-2222222222222222-01"
    );
    // Baggage is not tied to a span: what the caller set stays when we have none.
    assert_eq!(out["baggage"], "theirs=1");
    // With no span current, the carrier is left as it was.
    let out = inject_both(&[("tracestate", "stale=1")]);
    assert_eq!(out["tracestate"], "stale=1");
}

#[test]
fn baggage_past_the_limits_keeps_the_members_that_fit() {
    let _rec = Recorder::start();
    let members = |n: usize, len: usize| -> String {
        (0..n)
            .map(|i| format!("k{i:02}={}", "v".repeat(len)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let full = format!("a={}", "v".repeat(8190));
    let spaced = format!("a=1{},b=2", " ".repeat(8190));
    let invalid_utf8 = format!("session_id=s-1,a={}", "%FF".repeat(2700));
    for (headers, kept, session) in [
        // An empty or blank repeat adds no bytes.
        (vec![full.as_str(), ""], 1, None),
        (vec!["  ", full.as_str()], 1, None),
        // 64 members of 8,255 bytes: the first 63 fit.
        (vec![members(64, 124).as_str()], 63, None),
        // Whitespace around members is not theirs.
        (vec![spaced.as_str()], 2, None),
        // Each `%FF` reads as U+FFFD, which goes out as 9 bytes: the member no longer fits,
        // the session still goes.
        (vec![invalid_utf8.as_str()], 1, Some("s-1")),
    ] {
        let mut inbound = http::HeaderMap::new();
        for h in &headers {
            inbound.append("baggage", http::HeaderValue::from_str(h).unwrap());
        }
        let remote = extract(&inbound);
        assert_eq!(remote.baggage.len(), kept, "{:?}", &headers[0][..20]);
        let out = remote.run(next_hop);
        assert_valid_headers(&out);
        let next = extract(&out);
        assert_eq!(next.session_id.as_deref(), session);
        if session.is_none() {
            assert_eq!(next.baggage, remote.baggage, "passed on whole");
        }
    }
}
