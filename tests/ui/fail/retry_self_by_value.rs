use honeyhive_runtime::retry;

struct Request;

impl Request {
    #[retry]
    fn send(self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
