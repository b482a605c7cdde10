//! Generic fns with where clauses, `impl Trait` arguments and `impl Iterator` returns.

use std::fmt::Debug;

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[trace]
fn largest<T>(items: &[T]) -> Option<&T>
where
    T: Ord + Debug,
{
    items.iter().max()
}

#[trace]
fn total<I: IntoIterator<Item = u32> + Debug>(items: I) -> u32 {
    items.into_iter().sum()
}

#[trace(skip(items))]
fn count(items: impl IntoIterator<Item = u8>) -> usize {
    items.into_iter().count()
}

#[trace]
fn join(parts: impl AsRef<[&'static str]> + Debug, sep: &str) -> String {
    parts.as_ref().join(sep)
}

#[trace]
fn tokens(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split_whitespace()
}

#[trace]
fn evens(limit: u32) -> Box<dyn Iterator<Item = u32>> {
    Box::new((0..limit).filter(|n| n % 2 == 0))
}

#[trace]
async fn fetch<K, V>(key: K, value: V) -> Result<(K, V), String>
where
    K: Debug + Send,
    V: Debug + Send,
{
    Ok((key, value))
}

#[trace]
async fn describe(value: impl Debug + Send) -> String {
    format!("{value:?}")
}

#[trace]
async fn opaque(n: u8) -> impl Debug + Send {
    (n, "opaque")
}

#[trace]
async fn words(text: String) -> impl Iterator<Item = String> {
    text.split(' ')
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

struct Store<T> {
    items: Vec<T>,
}

impl<T: Clone + Debug> Store<T> {
    #[trace]
    fn get(&self, index: usize) -> Option<T> {
        self.items.get(index).cloned()
    }

    #[trace]
    fn push<U>(&mut self, item: U) -> &mut Self
    where
        U: Into<T> + Debug,
    {
        self.items.push(item.into());
        self
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recorder = Recorder::start();
    assert_eq!(largest(&[3, 9, 2]), Some(&9));
    assert_eq!(total(vec![1, 2, 3]), 6);
    assert_eq!(count([1u8, 2, 3]), 3);
    assert_eq!(join(["a", "b"], "-"), "a-b");
    assert_eq!(tokens("a b  c").collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(evens(5).collect::<Vec<_>>(), [0, 2, 4]);
    assert_eq!(fetch("k", 1).await, Ok(("k", 1)));
    assert_eq!(describe(3).await, "3");
    assert_eq!(format!("{:?}", opaque(1).await), "(1, \"opaque\")");
    assert_eq!(words("a b".to_owned()).await.count(), 2);
    let mut store = Store { items: vec![1u64] };
    store.push(2u32).push(3u8);
    assert_eq!(store.get(2), Some(3));

    let spans = recorder.spans();
    assert_eq!(
        spans.get("largest").str("honeyhive_inputs.items"),
        Some("[3, 9, 2]")
    );
    assert_eq!(spans.get("total").i64("honeyhive_outputs.result"), Some(6));
    assert!(spans.get("count").attr("honeyhive_inputs.items").is_none());
    assert_eq!(spans.get("get").i64("honeyhive_inputs.index"), Some(2));
    assert_eq!(spans.all("push").count(), 2);
    spans.get("tokens");
    spans.get("evens");
    spans.get("fetch");
    assert_eq!(
        spans.get("opaque").str("honeyhive_outputs.result"),
        Some("(1, \"opaque\")")
    );
    spans.get("words");
}
