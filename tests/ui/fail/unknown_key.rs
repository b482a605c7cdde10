use honeyhive_runtime::trace;

#[trace(nmae = "lookup")]
fn lookup(city: &str) -> usize {
    city.len()
}

#[trace(colour = "blue")]
fn paint() {}

fn main() {
    lookup("Paris");
    paint();
}
