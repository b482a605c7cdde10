use honeyhive_runtime::trace;

#[trace]
#[trace(name = "again")]
fn lookup(city: &str) -> usize {
    city.len()
}

fn main() {
    lookup("Paris");
}
