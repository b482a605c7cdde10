use honeyhive_runtime::trace;

#[trace]
struct Retriever {
    top_k: usize,
}

fn main() {
    let r = Retriever { top_k: 3 };
    assert_eq!(r.top_k, 3);
}
