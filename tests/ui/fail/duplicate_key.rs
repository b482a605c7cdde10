use honeyhive_runtime::trace;

#[trace(name = "first", event_type = "tool", name = "second")]
fn lookup(city: &str) -> usize {
    city.len()
}

#[trace(skip_output, skip_output)]
fn paint() {}

fn main() {
    lookup("Paris");
    paint();
}
