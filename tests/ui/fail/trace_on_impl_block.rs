use honeyhive_runtime::trace;

struct Retriever;

#[trace]
impl Retriever {
    fn search(&self, query: &str) -> usize {
        query.len()
    }
}

fn main() {
    Retriever.search("q");
}
