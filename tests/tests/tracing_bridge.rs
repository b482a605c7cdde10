//! The `tracing` bridge (`HoneyHiveLayer`): `tracing` spans and events in our traces, both ways
//! round, with real crates that emit them (reqwest-tracing, tower-http) and the `gen_ai.*`
//! fields rig emits.

use std::sync::Once;

use honeyhive_runtime::testing::{FinishedSpan, Recorder, Spans};
use honeyhive_runtime::tracing::{FOLLOWS_FROM, HoneyHiveLayer};
use honeyhive_runtime::{SpanKind, enrich_span, trace};
use opentelemetry::Value;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Installs the layer as the process's subscriber, once for every test here.
fn bridge() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(HoneyHiveLayer::new()),
        )
        .expect("no other subscriber in this test binary");
    });
}

fn parent_name<'a>(spans: &'a Spans, span: &FinishedSpan) -> Option<&'a str> {
    spans.parent_of(span).map(|p| p.name.as_ref())
}

fn event_str<'a>(event: &'a opentelemetry::trace::Event, key: &str) -> Option<&'a str> {
    match FinishedSpan::event_attr(event, key)? {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

#[trace]
fn leaf() -> u8 {
    1
}

#[trace(event_type = "chain")]
fn traced_with_a_tracing_span() -> u8 {
    let span = tracing::info_span!(
        "lookup",
        db.system = "postgresql",
        rows = 3u64,
        cached = false,
        timeout = ?std::time::Duration::from_millis(2),
        latency_ms = tracing::field::Empty,
    );
    let _entered = span.enter();
    span.record("latency_ms", 1.5);
    enrich_span().metadata("tenant", "acme");
    leaf()
}

#[test]
fn a_tracing_span_in_a_traced_call_is_its_child_and_a_traced_call_in_it_is_the_spans_child() {
    bridge();
    let rec = Recorder::start();
    assert_eq!(traced_with_a_tracing_span(), 1);
    let spans = rec.spans();
    let outer = spans.get("traced_with_a_tracing_span");
    let lookup = spans.get("lookup");
    let leaf = spans.get("leaf");
    assert_eq!(
        parent_name(&spans, lookup),
        Some("traced_with_a_tracing_span")
    );
    assert_eq!(parent_name(&spans, leaf), Some("lookup"));
    assert_eq!(lookup.trace_id(), outer.trace_id());
    assert_eq!(lookup.str("db.system"), Some("postgresql"));
    assert_eq!(lookup.i64("rows"), Some(3));
    assert_eq!(lookup.bool("cached"), Some(false));
    assert_eq!(lookup.str("timeout"), Some("2ms"));
    assert_eq!(
        lookup.f64("latency_ms"),
        Some(1.5),
        "recorded after it opened"
    );
    assert_eq!(lookup.str("honeyhive_metadata.tenant"), Some("acme"));
    assert_eq!(lookup.kind(), SpanKind::Internal);
}

#[test]
fn a_tracing_span_under_no_span_is_a_root_and_its_tracing_children_join_it() {
    bridge();
    let rec = Recorder::start();
    {
        let job = tracing::info_span!("job");
        let _job = job.enter();
        let step = tracing::info_span!("step");
        let _step = step.enter();
        leaf();
    }
    #[trace]
    fn detaches() {
        let _detached = tracing::info_span!(parent: None, "detached").entered();
    }
    detaches();
    let spans = rec.spans();
    let job = spans.get("job");
    assert!(job.is_root());
    assert_eq!(parent_name(&spans, spans.get("step")), Some("job"));
    assert_eq!(parent_name(&spans, spans.get("leaf")), Some("step"));
    let detached = spans.get("detached");
    assert!(detached.is_root());
    assert_ne!(detached.trace_id(), spans.get("detaches").trace_id());
}

/// A `tracing` span opened in a call that is never sampled, so it is not recorded either.
#[trace(sample_rate = 0.0)]
fn unsampled_cause() -> tracing::Span {
    tracing::info_span!("unsampled_cause")
}

#[test]
fn follows_from_lists_the_causes_span_ids_on_the_span() {
    bridge();
    let rec = Recorder::start();
    {
        let first = tracing::info_span!("request_a");
        let second = tracing::info_span!("request_b");
        let unrecorded = unsampled_cause();
        let batch = tracing::info_span!(parent: None, "batch");
        batch.follows_from(&first);
        batch.follows_from(&second);
        batch.follows_from(&first);
        batch.follows_from(&unrecorded);
        // A cause may close before the span that follows it.
        drop(first);
        let _batch = batch.entered();
        leaf();
    }
    let spans = rec.spans();
    let (a, b) = (spans.get("request_a"), spans.get("request_b"));
    let batch = spans.get("batch");
    let (a_id, b_id) = (a.span_id().to_string(), b.span_id().to_string());
    // Each cause once, in the order given; the unrecorded one is left out.
    assert_eq!(
        batch.strings(FOLLOWS_FROM),
        Some(vec![a_id.as_str(), b_id.as_str()])
    );
    assert_eq!(a_id.len(), 16);
    // Following is not parenthood: the batch is a root of its own trace.
    assert!(batch.is_root());
    assert_ne!(batch.trace_id(), a.trace_id());
    assert_eq!(parent_name(&spans, spans.get("leaf")), Some("batch"));
    assert_eq!(a.attr(FOLLOWS_FROM), None);
    assert!(!spans.names().contains(&"unsampled_cause"));
}

#[test]
fn a_tracing_root_is_sampled_as_a_root_and_its_decision_covers_what_runs_inside() {
    bridge();
    let rec = Recorder::with(|b| b.sampler(honeyhive_runtime::sampling::Sampler::AlwaysOff));
    {
        let _root = tracing::info_span!("unsampled root").entered();
        let _child = tracing::info_span!("child").entered();
        tracing::info!("not kept");
        assert_eq!(leaf(), 1);
    }
    let spans = rec.spans();
    assert!(spans.is_empty(), "{:?}", spans.names());
}

#[test]
fn an_explicit_tracing_parent_wins_over_the_current_span() {
    bridge();
    let rec = Recorder::start();
    let request = tracing::info_span!("request");
    let other = tracing::info_span!("other").entered();
    drop(tracing::info_span!(parent: &request, "step"));
    drop(other);
    drop(request);
    let spans = rec.spans();
    assert_eq!(parent_name(&spans, spans.get("step")), Some("request"));
}

#[trace]
async fn traced_async() -> u8 {
    tokio::task::yield_now().await;
    leaf()
}

#[test]
fn a_traced_call_in_an_instrumented_future_is_its_child_across_awaits_and_threads() {
    bridge();
    let rec = Recorder::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let out = runtime.block_on(async {
        let span = tracing::info_span!("handler");
        tokio::spawn(
            async {
                tokio::task::yield_now().await;
                traced_async().await + traced_async().await
            }
            .instrument(span),
        )
        .await
        .expect("task")
    });
    drop(runtime);
    assert_eq!(out, 2);
    let spans = rec.spans();
    let handler = spans.get("handler");
    let children: Vec<_> = spans.all("traced_async").collect();
    assert_eq!(children.len(), 2);
    for child in children {
        assert_eq!(child.parent_span_id, handler.span_id());
        assert_eq!(child.trace_id(), handler.trace_id());
    }
    assert_eq!(spans.all("leaf").count(), 2);
}

#[trace]
fn logs() {
    tracing::warn!(user = "ada", attempt = 2u64, "cache miss");
    tracing::error!("upstream refused");
    let span = tracing::info_span!("inner");
    let _entered = span.enter();
    tracing::info!(target: "app::db", rows = 3, "query done");
}

#[test]
fn tracing_events_become_events_of_the_innermost_span_and_errors_mark_nothing() {
    bridge();
    let rec = Recorder::start();
    logs();
    tracing::info!("outside any span");
    let spans = rec.spans();
    let logs = spans.get("logs");
    let miss = logs.events_named("cache miss").next().expect("an event");
    assert_eq!(event_str(miss, "level"), Some("WARN"));
    assert_eq!(event_str(miss, "message"), Some("cache miss"));
    assert_eq!(event_str(miss, "user"), Some("ada"));
    assert_eq!(
        FinishedSpan::event_attr(miss, "attempt"),
        Some(&Value::I64(2))
    );
    assert_eq!(event_str(miss, "target"), Some(module_path!()));
    let refused = logs
        .events_named("upstream refused")
        .next()
        .expect("an event");
    assert_eq!(event_str(refused, "level"), Some("ERROR"));
    assert!(!logs.is_error(), "an ERROR event leaves the status alone");
    let inner = spans.get("inner");
    let done = inner.events_named("query done").next().expect("an event");
    assert_eq!(event_str(done, "target"), Some("app::db"));
    assert_eq!(logs.events_named("query done").count(), 0);
    assert!(
        spans
            .iter()
            .all(|s| s.events_named("outside any span").count() == 0)
    );
}

#[test]
fn a_span_entered_on_two_threads_at_once_parents_both_and_may_close_elsewhere() {
    bridge();
    let rec = Recorder::start();
    let shared = tracing::info_span!("shared");
    let both = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let _entered = shared.enter();
                // Both threads are inside the span at the same time.
                both.wait();
                leaf()
            });
        }
    });
    // Re-entered on this thread, then closed on another one.
    {
        let _outer = shared.enter();
        let _again = shared.enter();
        leaf();
    }
    leaf();
    std::thread::spawn(move || drop(shared))
        .join()
        .expect("thread");
    let spans = rec.spans();
    let shared = spans.get("shared");
    let leaves: Vec<_> = spans.all("leaf").collect();
    assert_eq!(leaves.len(), 4);
    assert_eq!(
        leaves
            .iter()
            .filter(|l| l.parent_span_id == shared.span_id())
            .count(),
        3
    );
    assert_eq!(
        leaves.iter().filter(|l| l.is_root()).count(),
        1,
        "after the last exit nothing stays current"
    );
}

#[test]
fn spans_exited_out_of_order_leave_the_right_span_current() {
    bridge();
    let rec = Recorder::start();
    let a = tracing::info_span!("a").entered();
    let b = tracing::info_span!("b").entered();
    let a = a.exit();
    // `b` is still entered.
    leaf();
    drop(b);
    #[trace]
    fn after() {}
    after();
    drop(a);
    let spans = rec.spans();
    assert_eq!(parent_name(&spans, spans.get("leaf")), Some("b"));
    assert!(spans.get("after").is_root());
}

#[test]
fn otel_fields_name_kind_and_fail_the_span() {
    bridge();
    let rec = Recorder::start();
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = "GET /users",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
    );
    span.record("otel.status_code", "ERROR");
    drop(span);
    let spans = rec.spans();
    let span = spans.get("GET /users");
    assert_eq!(span.kind(), SpanKind::Client);
    assert!(span.is_error());
    assert!(span.attr("otel.name").is_none());
}

/// Emits what rig-core's OpenAI provider and agent emit (`rig::completions` `chat` spans and
/// `invoke_agent` spans, field for field), without pulling rig-core and its HTTP stack into
/// the test build.
mod rig_like {
    pub(crate) fn prompt_agent(prompt: &str) -> String {
        let agent = tracing::info_span!(
            "invoke_agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "geographer",
            gen_ai.system_instructions = "Answer in one word.",
            gen_ai.prompt = tracing::field::Empty,
            gen_ai.completion = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
        );
        agent.record("gen_ai.prompt", prompt);
        let answer = agent.in_scope(|| completion(prompt));
        agent.record("gen_ai.completion", answer.as_str());
        agent.record("gen_ai.usage.input_tokens", 1_000_000u64);
        agent.record("gen_ai.usage.output_tokens", 1_000_000u64);
        answer
    }

    fn completion(prompt: &str) -> String {
        let messages = serde_json::json!([
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": prompt},
        ])
        .to_string();
        let span = tracing::info_span!(
            target: "rig::completions",
            "chat",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = "gpt-4o-mini",
            gen_ai.system_instructions = tracing::field::Empty,
            gen_ai.response.id = tracing::field::Empty,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.input.messages = messages,
            gen_ai.output.messages = tracing::field::Empty,
        );
        let _entered = span.enter();
        let answer = "Paris".to_owned();
        span.record("gen_ai.response.id", "chatcmpl-123");
        span.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
        span.record("gen_ai.usage.input_tokens", 1_000_000u64);
        span.record("gen_ai.usage.output_tokens", 1_000_000u64);
        span.record(
            "gen_ai.output.messages",
            serde_json::json!([{"role": "assistant", "content": answer}]).to_string(),
        );
        answer
    }
}

#[trace(event_type = "chain")]
fn ask() -> String {
    rig_like::prompt_agent("Capital of France?")
}

#[test]
fn gen_ai_fields_make_an_llm_span_with_cost_and_totals_counted_once() {
    bridge();
    let rec = Recorder::start();
    assert_eq!(ask(), "Paris");
    let spans = rec.spans();
    let chat = spans.get("chat");
    let agent = spans.get("invoke_agent");
    assert_eq!(parent_name(&spans, chat), Some("invoke_agent"));
    assert_eq!(parent_name(&spans, agent), Some("ask"));
    assert_eq!(chat.str("honeyhive_event_type"), Some("model"));
    assert_eq!(chat.kind(), SpanKind::Client);
    assert_eq!(chat.str("openinference.span.kind"), Some("LLM"));
    assert_eq!(chat.str("gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(chat.str("llm.provider"), Some("openai"));
    assert_eq!(chat.i64("llm.token_count.prompt"), Some(1_000_000));
    assert_eq!(chat.str("gen_ai.response.id"), Some("chatcmpl-123"));
    assert_eq!(
        chat.str("llm.input_messages.1.message.content"),
        Some("Capital of France?")
    );
    assert_eq!(
        chat.str("llm.output_messages.0.message.content"),
        Some("Paris")
    );
    let input: serde_json::Value =
        serde_json::from_str(chat.str("gen_ai.input.messages").expect("messages")).unwrap();
    assert_eq!(
        input[1],
        serde_json::json!({"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]})
    );
    // gpt-4o-mini at $0.15 / $0.60 per million tokens, priced from the built-in table.
    let cost = chat.f64("llm.cost.total").expect("a cost");
    assert!((cost - 0.75).abs() < 1e-9, "{cost}");

    assert_eq!(agent.str("honeyhive_event_type"), Some("agent"));
    assert_eq!(agent.str("input.value"), Some("Capital of France?"));
    assert_eq!(agent.str("output.value"), Some("Paris"));
    assert_eq!(
        agent.i64("honeyhive_metrics.gen_ai.usage.input_tokens"),
        Some(1_000_000)
    );
    assert!(agent.attr("llm.token_count.prompt").is_none());

    let root = spans.get("ask");
    assert_eq!(root.i64("honeyhive.total.input_tokens"), Some(1_000_000));
    assert_eq!(root.i64("honeyhive.total.llm_calls"), Some(1));
    let total = root.f64("honeyhive.total.cost_usd").expect("a total");
    assert!((total - 0.75).abs() < 1e-9, "{total}");
}

async fn server(
    router: axum::Router,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (base, stop, task)
}

#[trace(event_type = "tool")]
async fn fetch_both(client: &reqwest_middleware::ClientWithMiddleware, base: &str) -> (u16, u16) {
    let ok = client.get(format!("{base}/ok")).send().await.unwrap();
    let failed = client.get(format!("{base}/fail")).send().await.unwrap();
    (ok.status().as_u16(), failed.status().as_u16())
}

#[test]
fn reqwest_tracing_client_spans_are_children_of_the_traced_call() {
    bridge();
    let rec = Recorder::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let statuses = runtime.block_on(async {
        let router = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/fail",
                axum::routing::get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "no") }),
            );
        let (base, stop, task) = server(router).await;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(reqwest_tracing::TracingMiddleware::default())
            .build();
        let statuses = fetch_both(&client, &base).await;
        drop(client);
        let _ = stop.send(());
        task.await.unwrap();
        statuses
    });
    drop(runtime);
    assert_eq!(statuses, (200, 502));
    let spans = rec.spans();
    let call = spans.get("fetch_both");
    let requests: Vec<_> = spans.all("GET").collect();
    assert_eq!(requests.len(), 2, "{:?}", spans.names());
    for request in &requests {
        assert_eq!(request.parent_span_id, call.span_id());
        assert_eq!(request.trace_id(), call.trace_id());
        assert_eq!(request.kind(), SpanKind::Client);
        assert_eq!(request.str("http.request.method"), Some("GET"));
        assert_eq!(request.str("server.address"), Some("127.0.0.1"));
    }
    let ok = requests
        .iter()
        .find(|r| r.i64("http.response.status_code") == Some(200))
        .expect("the 200");
    assert!(!ok.is_error());
    let failed = requests
        .iter()
        .find(|r| r.i64("http.response.status_code") == Some(502))
        .expect("the 502");
    assert!(failed.is_error());
}

#[trace(event_type = "chain")]
async fn handle(id: u32) -> String {
    tokio::task::yield_now().await;
    format!("user {id}")
}

#[test]
fn a_traced_handler_under_tower_http_is_a_child_of_the_request_span() {
    bridge();
    let rec = Recorder::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = runtime.block_on(async {
        let router = axum::Router::new()
            .route(
                "/users/{id}",
                axum::routing::get(|axum::extract::Path(id): axum::extract::Path<u32>| handle(id)),
            )
            .layer(tower_http::trace::TraceLayer::new_for_http());
        let (base, stop, task) = server(router).await;
        let client = reqwest::Client::new();
        let body = client
            .get(format!("{base}/users/42"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        drop(client);
        // Graceful shutdown waits for the connection, and so for the request span, to end.
        let _ = stop.send(());
        task.await.unwrap();
        body
    });
    drop(runtime);
    assert_eq!(body, "user 42");
    let spans = rec.spans();
    let request = spans.get("request");
    let handler = spans.get("handle");
    assert!(request.is_root());
    assert_eq!(handler.parent_span_id, request.span_id());
    assert_eq!(handler.trace_id(), request.trace_id());
    assert_eq!(handler.i64("honeyhive_inputs.id"), Some(42));
    assert_eq!(request.str("method"), Some("GET"));
    assert_eq!(request.str("uri"), Some("/users/42"));
    let finished = request
        .events_named("finished processing request")
        .next()
        .expect("tower-http's response event");
    assert_eq!(event_str(finished, "level"), Some("DEBUG"));
    assert_eq!(
        event_str(finished, "target"),
        Some("tower_http::trace::on_response")
    );
}

/// A value whose `Debug` writes ten million items and counts the ones it got to write.
struct Endless(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl std::fmt::Debug for Endless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for i in 0..10_000_000u64 {
            write!(f, "item {i:07}, ")?;
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}

#[test]
fn fields_read_as_names_or_messages_format_a_huge_value_only_up_to_a_bound() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    bridge();
    let rec = Recorder::start();
    let (named, messages, plain) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let span = tracing::info_span!(
        "chat",
        otel.name = ?Endless(Arc::clone(&named)),
        gen_ai.operation.name = "chat",
        gen_ai.request.model = "gpt-4o-mini",
        gen_ai.input.messages = ?Endless(Arc::clone(&messages)),
        other = ?Endless(Arc::clone(&plain)),
    );
    drop(span);
    let spans = rec.spans();
    assert_eq!(spans.0.len(), 1, "{:?}", spans.names());
    let span = &spans.0[0];
    let cap = 8 * 1024; // the default capture cap
    // Each item is 14 bytes: a name is cut at the cap, a message list at 64 caps; formatting
    // stops there instead of running through ten million items.
    for (what, count, bound) in [
        ("otel.name", &named, cap),
        ("gen_ai.input.messages", &messages, 64 * cap),
        ("other", &plain, cap),
    ] {
        let items = count.load(Ordering::Relaxed);
        assert!(
            items > 0 && items <= bound / 14 + 100,
            "{what}: {items} items formatted"
        );
    }
    assert!(span.name.len() <= cap + 64, "{}", span.name.len());
    let content = span
        .str("llm.input_messages.0.message.content")
        .or_else(|| span.str("gen_ai.input.messages"))
        .expect("the messages");
    assert!(content.len() <= cap + 64, "{}", content.len());
}

#[trace]
fn returns_entered() -> tracing::span::EnteredSpan {
    tracing::info_span!("entered_out").entered()
}

#[test]
fn an_entered_span_returned_from_a_traced_call_is_current_until_dropped_and_then_nothing_is() {
    bridge();
    let rec = Recorder::start();
    let entered = returns_entered();
    leaf();
    drop(entered);
    #[trace]
    fn after() {}
    after();
    let spans = rec.spans();
    assert_eq!(parent_name(&spans, spans.get("leaf")), Some("entered_out"));
    let after = spans.get("after");
    assert!(after.is_root(), "parent {:?}", parent_name(&spans, after));
    assert_ne!(after.trace_id(), spans.get("returns_entered").trace_id());
}

#[trace]
fn drops_the_guard(entered: tracing::span::EnteredSpan) -> u8 {
    drop(entered);
    leaf()
}

#[test]
fn a_guard_dropped_inside_a_traced_call_leaves_nothing_current_after_it() {
    bridge();
    let rec = Recorder::start();
    assert_eq!(
        drops_the_guard(tracing::info_span!("handed_in").entered()),
        1
    );
    #[trace]
    fn after() {}
    after();
    let spans = rec.spans();
    assert_eq!(
        parent_name(&spans, spans.get("drops_the_guard")),
        Some("handed_in")
    );
    assert_eq!(
        parent_name(&spans, spans.get("leaf")),
        Some("drops_the_guard")
    );
    let after = spans.get("after");
    assert!(after.is_root(), "parent {:?}", parent_name(&spans, after));
}

#[test]
fn a_guard_dropped_on_another_thread_leaves_its_span_current_nowhere() {
    bridge();
    let rec = Recorder::start();
    // As a guard held across an `.await` that resumes on another worker.
    let open = tracing::info_span!("exited_elsewhere");
    let entered = open.enter();
    std::thread::scope(|s| {
        s.spawn(move || drop(entered));
    });
    #[trace]
    fn while_open() {}
    while_open();
    drop(open);
    // The same, with the span closed before this thread opens another one.
    let closed = tracing::info_span!("closed_elsewhere");
    let entered = closed.enter();
    std::thread::scope(|s| {
        s.spawn(move || drop(entered));
    });
    drop(closed);
    #[trace]
    fn once_closed() {}
    once_closed();
    let spans = rec.spans();
    for name in ["while_open", "once_closed"] {
        let span = spans.get(name);
        assert!(
            span.is_root(),
            "{name}: parent {:?}",
            parent_name(&spans, span)
        );
    }
}
