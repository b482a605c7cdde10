use honeyhive_runtime::retry;

struct Request {
    body: String,
}

impl Request {
    // `self` by value is shared by the attempts: a body that consumes it is reported at the move.
    #[retry]
    fn send(self) -> Result<String, String> {
        Ok(self.body)
    }

    // Each attempt would need its own `mut self`.
    #[retry]
    fn send_mut(mut self) -> Result<usize, String> {
        self.body.push('!');
        Ok(self.body.len())
    }
}

fn main() {}
