use honeyhive_runtime::trace;

#[trace]
fn count(items: impl Iterator<Item = u8>) -> usize {
    items.count()
}

#[trace]
fn first<T: Clone>(items: Vec<T>) -> Option<T> {
    items.first().cloned()
}

fn main() {
    count([1u8].into_iter());
    first(vec![1]);
}
