use honeyhive_runtime::trace;

#[trace(evaluate = "relevance")]
fn answer(question: &str) -> String {
    question.to_owned()
}

#[trace(evaluate(relevance, 0.5))]
fn answer_again(question: &str) -> String {
    question.to_owned()
}

fn main() {
    answer("hi");
    answer_again("hi");
}
