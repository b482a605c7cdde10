use honeyhive_runtime::evaluate::EvalInput;
use honeyhive_runtime::trace;

/// Takes the output by value and no input.
fn relevance(output: String) -> f64 {
    output.len() as f64
}

#[trace(evaluate = relevance)]
fn answer(question: &str) -> String {
    question.to_owned()
}

/// Returns something that is not a result.
fn labels(_: &EvalInput, output: &String) -> String {
    output.clone()
}

#[trace(evaluate(labels))]
fn answer_again(question: &str) -> String {
    question.to_owned()
}

fn main() {
    answer("hi");
    answer_again("hi");
}
