use honeyhive_runtime::retry;

#[retry]
struct Client;

fn main() {}
