//! Request ids, sessions and users on every span of a scope; context carried across tasks,
//! threads and futures.

use std::collections::HashMap;

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Carried, FutureExt, RequestIdCarrier, Scope, trace, with_request_id};

mod other_module {
    use honeyhive_runtime::trace;

    #[trace(event_type = "tool")]
    pub fn lookup(key: &str) -> usize {
        key.len()
    }
}

#[with_request_id]
#[trace(event_type = "chain")]
fn handle(query: &str) -> usize {
    other_module::lookup(query) + nested(query)
}

#[with_request_id]
#[trace]
fn nested(query: &str) -> usize {
    other_module::lookup(query)
}

fn rid(span: &FinishedSpan) -> Option<&str> {
    span.str("honeyhive.request_id")
}

fn source(span: &FinishedSpan) -> Option<&str> {
    span.str("honeyhive.request_id.source")
}

#[test]
fn a_generated_id_is_on_every_span_of_the_scope_and_inherited_by_nested_scopes() {
    let rec = Recorder::start();
    handle("abc");
    handle("xyz");
    let spans = rec.spans();
    let roots: Vec<_> = spans.all("handle").collect();
    let first = rid(roots[0]).unwrap().to_owned();
    let second = rid(roots[1]).unwrap().to_owned();
    assert_ne!(first, second, "each request gets its own id");
    assert!(honeyhive_runtime::is_valid_request_id(&first));
    assert_eq!(first.len(), 36, "UUID layout: {first}");
    assert_eq!(&first[14..15], "7", "UUID v7: {first}");
    for span in spans.iter() {
        let root = spans
            .iter()
            .find(|r| r.name == "handle" && r.trace_id() == span.trace_id())
            .unwrap();
        assert_eq!(
            rid(span),
            rid(root),
            "{} carries its own request's id",
            span.name
        );
        assert_eq!(source(span), Some("generated"));
    }
    assert_eq!(
        spans.all("lookup").count(),
        4,
        "spans of other modules carry it too"
    );
}

#[test]
fn spans_outside_any_scope_carry_no_request_id() {
    let rec = Recorder::start();
    other_module::lookup("before");
    handle("in");
    other_module::lookup("after");
    let spans = rec.spans();
    let by_input = |input: &str| {
        spans
            .iter()
            .find(|s| s.name == "lookup" && s.str("honeyhive_inputs.key") == Some(input))
            .unwrap()
    };
    // The scope's id is on its spans, and on none recorded before or after it.
    assert!(rid(by_input("in")).is_some());
    assert_eq!(rid(by_input("before")), None);
    assert_eq!(rid(by_input("after")), None);
}

struct MyRequest {
    id: String,
}

impl RequestIdCarrier for MyRequest {
    fn request_id(&self) -> Option<&str> {
        Some(&self.id)
    }
}

#[with_request_id(from = id)]
#[trace]
fn from_str(id: &str) -> usize {
    other_module::lookup(id)
}

#[with_request_id(from = headers)]
#[trace]
fn from_map(headers: &HashMap<String, String>) -> usize {
    other_module::lookup("m") + headers.len()
}

#[with_request_id(from = headers)]
#[trace(skip(headers))]
fn from_header_map(headers: &http::HeaderMap) -> usize {
    headers.len()
}

#[with_request_id(from = req)]
#[trace(skip(req))]
fn from_request(req: http::Request<()>) -> usize {
    req.headers().len()
}

#[with_request_id(from = req)]
#[trace(skip(req))]
fn from_custom(req: &MyRequest) -> usize {
    req.id.len()
}

#[test]
fn ids_are_taken_from_arguments_of_many_kinds_and_validated() {
    let rec = Recorder::start();
    from_str("req-1");
    from_map(&HashMap::from([(
        "X-Request-Id".to_owned(),
        "req-2".to_owned(),
    )]));
    let mut hm = http::HeaderMap::new();
    hm.insert("x-request-id", "req-3".parse().unwrap());
    from_header_map(&hm);
    from_request(
        http::Request::builder()
            .header("x-request-id", "req-4")
            .body(())
            .unwrap(),
    );
    from_custom(&MyRequest { id: "req-5".into() });
    // Invalid inbound ids are replaced, never trusted.
    from_str("bad id with spaces");
    from_str(&"x".repeat(500));
    let spans = rec.spans();
    let ids: Vec<_> = spans
        .iter()
        .filter(|s| s.name != "lookup")
        .map(|s| {
            (
                s.name.to_string(),
                rid(s).unwrap().to_owned(),
                source(s).unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ids[0],
        ("from_str".into(), "req-1".into(), "argument".into())
    );
    assert_eq!(
        ids[1],
        ("from_map".into(), "req-2".into(), "argument".into())
    );
    assert_eq!(ids[2].1, "req-3");
    assert_eq!(ids[3].1, "req-4");
    assert_eq!(ids[4].1, "req-5");
    for (name, id, src) in &ids[5..] {
        assert_eq!(name, "from_str");
        assert_eq!(src, "generated");
        assert!(honeyhive_runtime::is_valid_request_id(id));
    }
    let replaced: Vec<_> = spans
        .iter()
        .filter(|s| s.bool("honeyhive.request_id.replaced_invalid") == Some(true))
        .collect();
    assert_eq!(replaced.len(), 4, "two requests, each with its lookup span");
    // A nested span of a request with an id from an argument carries it too.
    let lookup = spans.all("lookup").next().unwrap();
    assert_eq!(rid(lookup), Some("req-1"));
}

#[with_request_id(new)]
#[trace]
fn background_job() -> usize {
    other_module::lookup("job")
}

#[with_request_id(from = id)]
#[trace]
fn starts_job(id: &str) -> usize {
    background_job()
}

#[test]
fn new_forces_a_fresh_id_and_records_the_previous_one() {
    let rec = Recorder::start();
    starts_job("outer-1");
    let spans = rec.spans();
    assert_eq!(rid(spans.get("starts_job")), Some("outer-1"));
    let job = spans.get("background_job");
    let fresh = rid(job).unwrap();
    assert_ne!(fresh, "outer-1");
    assert_eq!(source(job), Some("generated"));
    assert_eq!(job.str("honeyhive.request_id.previous"), Some("outer-1"));
    assert_eq!(rid(spans.get("lookup")), Some(fresh));
}

// Both orders of the two attributes give the function's own span the id.
#[trace]
#[with_request_id(from = id)]
fn trace_above(id: &str) -> usize {
    other_module::lookup(id)
}

#[with_request_id(from = id)]
#[trace]
async fn async_request_above(id: String) -> usize {
    tokio::task::yield_now().await;
    other_module::lookup(&id)
}

#[trace]
#[with_request_id(from = id)]
async fn async_trace_above(id: String) -> Result<usize, String> {
    tokio::task::yield_now().await;
    if id.is_empty() {
        return Err("empty".into());
    }
    Ok(other_module::lookup(&id))
}

#[test]
fn both_attribute_orders_put_the_functions_own_span_in_the_scope() {
    let rec = Recorder::start();
    trace_above("o-1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async_request_above("o-2".into()));
    rt.block_on(async_trace_above("o-3".into())).unwrap();
    let spans = rec.spans();
    assert_eq!(rid(spans.get("trace_above")), Some("o-1"));
    assert_eq!(rid(spans.get("async_request_above")), Some("o-2"));
    assert_eq!(rid(spans.get("async_trace_above")), Some("o-3"));
    let lookups: Vec<_> = spans.all("lookup").map(|s| rid(s).unwrap()).collect();
    assert_eq!(lookups, ["o-1", "o-2", "o-3"]);
}

#[trace(event_type = "session")]
fn chat_session(user: &str) -> usize {
    other_module::lookup(user) + turn()
}

#[trace(event_type = "chain")]
fn turn() -> usize {
    other_module::lookup("turn")
}

#[test]
fn session_roots_put_a_session_id_on_every_span_below() {
    let rec = Recorder::start();
    chat_session("ann");
    chat_session("bob");
    turn();
    let spans = rec.spans();
    let sessions: Vec<_> = spans.all("chat_session").collect();
    let s1 = sessions[0].str("honeyhive.session_id").unwrap();
    let s2 = sessions[1].str("honeyhive.session_id").unwrap();
    assert_ne!(s1, s2);
    for span in spans.iter() {
        let root = spans
            .iter()
            .find(|r| r.is_root() && r.trace_id() == span.trace_id())
            .unwrap();
        if root.name == "chat_session" {
            assert_eq!(
                span.str("honeyhive.session_id"),
                root.str("honeyhive.session_id")
            );
            assert_eq!(span.str("session.id"), root.str("honeyhive.session_id"));
        } else {
            assert_eq!(span.str("honeyhive.session_id"), None, "the session ended");
        }
    }
}

#[test]
fn scope_guards_restore_the_previous_state_on_drop_panic_and_early_return() {
    fn early(flag: bool) -> usize {
        let _guard = Scope::session("s-early").enter();
        if flag {
            return other_module::lookup("early");
        }
        0
    }
    let rec = Recorder::start();
    Scope::session("s-1").user("u-1").run(|| {
        other_module::lookup("in");
        Scope::user_only("u-2").run(|| other_module::lookup("inner"));
        other_module::lookup("back");
    });
    other_module::lookup("after");
    let caught = std::panic::catch_unwind(|| {
        Scope::session("s-panic").run(|| {
            other_module::lookup("before-panic");
            panic!("boom");
        })
    });
    assert!(caught.is_err());
    other_module::lookup("after-panic");
    early(true);
    other_module::lookup("after-early");
    assert_eq!(honeyhive_runtime::current_session_id(), None);
    let spans = rec.spans();
    let by_input = |input: &str| {
        spans
            .iter()
            .find(|s| s.str("honeyhive_inputs.key") == Some(input))
            .unwrap_or_else(|| panic!("no span for {input}"))
    };
    let pairs = |s: &FinishedSpan| {
        (
            s.str("session.id").map(str::to_owned),
            s.str("user.id").map(str::to_owned),
        )
    };
    let some = |a: &str, b: Option<&str>| (Some(a.to_owned()), b.map(str::to_owned));
    assert_eq!(pairs(by_input("in")), some("s-1", Some("u-1")));
    assert_eq!(pairs(by_input("inner")), some("s-1", Some("u-2")));
    assert_eq!(pairs(by_input("back")), some("s-1", Some("u-1")));
    assert_eq!(pairs(by_input("after")), (None, None));
    assert_eq!(pairs(by_input("before-panic")), some("s-panic", None));
    assert_eq!(pairs(by_input("after-panic")), (None, None));
    assert_eq!(pairs(by_input("early")), some("s-early", None));
    assert_eq!(pairs(by_input("after-early")), (None, None));
}

#[with_request_id(from = id)]
#[trace(event_type = "chain")]
fn fan_out_threads(id: &str) -> usize {
    let carried = Carried::current();
    let a = std::thread::spawn(honeyhive_runtime::bind_current(|| {
        other_module::lookup("t1")
    }));
    let b = std::thread::spawn(move || carried.run(|| other_module::lookup("t2")));
    // Not carried: a plain thread starts with nothing.
    let c = std::thread::spawn(|| other_module::lookup("t3"));
    a.join().unwrap() + b.join().unwrap() + c.join().unwrap()
}

#[test]
fn bind_current_and_carried_cross_threads_plain_threads_do_not() {
    let rec = Recorder::start();
    Scope::session("s-threads").run(|| fan_out_threads("thr-1"));
    let spans = rec.spans();
    let root = spans.get("fan_out_threads");
    for input in ["t1", "t2"] {
        let span = spans
            .iter()
            .find(|s| s.str("honeyhive_inputs.key") == Some(input))
            .unwrap();
        assert_eq!(span.parent_span_id, root.span_id(), "{input}");
        assert_eq!(rid(span), Some("thr-1"));
        assert_eq!(span.str("session.id"), Some("s-threads"));
    }
    let loose = spans
        .iter()
        .find(|s| s.str("honeyhive_inputs.key") == Some("t3"))
        .unwrap();
    assert!(loose.is_root());
    assert_eq!(rid(loose), None);
}

#[with_request_id(from = id)]
#[trace(event_type = "chain")]
async fn request(id: String, n: usize) -> usize {
    event(true);
    let mut handles = Vec::new();
    for i in 0..2 {
        handles.push(honeyhive_runtime::spawn(subtask(i)));
    }
    let adapted = tokio::spawn(subtask(n).in_current_context());
    let mut total = adapted.await.unwrap();
    for h in handles {
        total += h.await.unwrap();
    }
    total
}

/// Requests starting (`true`) and subtasks resuming after their yield (`false`), with the
/// request id current there, in order.
static EVENTS: std::sync::Mutex<Vec<(bool, String)>> = std::sync::Mutex::new(Vec::new());

fn event(start: bool) {
    let id = honeyhive_runtime::current_request_id().map_or_else(String::new, |r| r.id.to_string());
    EVENTS.lock().unwrap().push((start, id));
}

#[trace(event_type = "tool")]
async fn subtask(i: usize) -> usize {
    tokio::task::yield_now().await;
    event(false);
    other_module::lookup(&"x".repeat(i)) + i
}

async fn bystander() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
        assert_eq!(honeyhive_runtime::current_request_id(), None);
        assert_eq!(honeyhive_runtime::current_span_ids(), None);
    }
}

#[test]
fn a_thousand_concurrent_requests_never_mix_ids_or_parents() {
    let rec = Recorder::with(|b| b.queue_capacity(1 << 20));
    // One thread, so the interleaving is the same on every run: every yield hands the thread
    // to another request's task, which is where a leaked scope would show.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let handles: Vec<_> = (0..1000)
            .map(|n| tokio::spawn(request(format!("req-{n}"), n % 7)))
            .collect();
        // Tasks with no scope of their own, run between the requests' polls: a scope left
        // behind by a request would show here.
        let bystanders: Vec<_> = (0..100).map(|_| tokio::spawn(bystander())).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        for b in bystanders {
            b.await.unwrap();
        }
        out
    });
    drop(rt);
    assert_eq!(results.len(), 1000);
    // The requests did run interleaved on the thread: many were in flight at once.
    let events = std::mem::take(&mut *EVENTS.lock().unwrap());
    assert_eq!(events.len(), 4000);
    let mut in_flight: HashMap<&str, usize> = HashMap::new();
    let mut most = 0;
    for (start, id) in &events {
        if *start {
            in_flight.insert(id, 3);
        } else {
            let left = in_flight
                .get_mut(id.as_str())
                .expect("a subtask saw its request's id");
            *left -= 1;
            if *left == 0 {
                in_flight.remove(id.as_str());
            }
        }
        most = most.max(in_flight.len());
    }
    assert!(most > 100, "at most {most} requests in flight at once");
    let spans = rec.spans();
    assert_eq!(rec.guard().dropped_spans(), 0);
    // 1000 requests × (request + 3 subtasks + 3 lookups)
    assert_eq!(spans.len(), 7000);
    let mut by_id: HashMap<String, Vec<&FinishedSpan>> = HashMap::new();
    for span in spans.iter() {
        by_id
            .entry(rid(span).expect("every span has an id").to_owned())
            .or_default()
            .push(span);
    }
    assert_eq!(by_id.len(), 1000);
    for (id, group) in &by_id {
        let roots: Vec<_> = group.iter().filter(|s| s.name == "request").collect();
        assert_eq!(roots.len(), 1, "{id}");
        let root = roots[0];
        assert_eq!(root.str("honeyhive_inputs.id"), Some(id.as_str()));
        assert_eq!(group.len(), 7, "{id}");
        for span in group {
            assert_eq!(span.trace_id(), root.trace_id(), "{id}: {}", span.name);
            if span.name == "subtask" {
                assert_eq!(span.parent_span_id, root.span_id(), "{id}");
            }
            if span.name == "lookup" {
                let parent = spans.parent_of(span).expect("lookup's parent was recorded");
                assert_eq!(parent.name, "subtask");
                assert_eq!(rid(parent), Some(id.as_str()));
            }
        }
    }
}

/// A request type of the user's own, read by `from = self` in its methods.
struct Incoming {
    id: String,
}

impl RequestIdCarrier for Incoming {
    fn request_id(&self) -> Option<&str> {
        Some(&self.id)
    }
}

impl Incoming {
    #[with_request_id(from = self)]
    #[trace]
    fn by_ref(&self) -> usize {
        other_module::lookup(&self.id)
    }

    #[with_request_id(from = self)]
    #[trace]
    fn by_mut(&mut self) -> usize {
        self.id.push('!');
        other_module::lookup(&self.id)
    }

    #[with_request_id(from = self)]
    #[trace(skip_all)]
    fn by_value(self) -> usize {
        other_module::lookup(&self.id)
    }

    #[with_request_id(from = self)]
    #[trace]
    async fn by_ref_async(&self) -> usize {
        other_module::lookup(&self.id)
    }

    #[with_request_id(from = self)]
    #[trace(skip_all)]
    async fn by_value_async(self) -> usize {
        let id = self.id;
        other_module::lookup(&id)
    }
}

#[test]
fn from_self_reads_the_request_id_of_the_methods_receiver() {
    let incoming = |n: u32| Incoming {
        id: format!("req-self-{n}"),
    };
    let rec = Recorder::start();
    incoming(1).by_ref();
    incoming(2).by_mut();
    incoming(3).by_value();
    futures_executor::block_on(incoming(4).by_ref_async());
    futures_executor::block_on(incoming(5).by_value_async());
    let spans = rec.spans();
    let mut ids: Vec<&str> = Vec::new();
    for lookup in spans.all("lookup") {
        let parent = spans.parent_of(lookup).expect("under the method's span");
        assert_eq!(rid(parent), rid(lookup));
        assert_eq!(source(lookup), Some("argument"));
        ids.extend(rid(lookup));
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "req-self-1",
            "req-self-2",
            "req-self-3",
            "req-self-4",
            "req-self-5"
        ]
    );
}
