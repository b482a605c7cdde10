use honeyhive_runtime::evaluate::EvalInput;
use honeyhive_runtime::trace;

/// A sync evaluator, listed as async.
fn relevance(_: &EvalInput, output: &String) -> f64 {
    output.len() as f64
}

#[trace(evaluate(async relevance))]
fn answer(question: &str) -> String {
    question.to_owned()
}

fn main() {
    answer("hi");
}
