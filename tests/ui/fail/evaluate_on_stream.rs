use honeyhive_runtime::evaluate::EvalInput;
use honeyhive_runtime::trace;

fn relevance<T>(_: &EvalInput, _: &T) -> f64 {
    1.0
}

#[trace(evaluate = relevance, resources)]
fn tokens(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

fn main() {
    tokens(3).count();
}
