//! `#[retry]` on fns that return borrows it can give out: of `&self`, of a shared argument
//! next to `&mut self`, `'static`.

use honeyhive_runtime::retry;

#[derive(Debug)]
struct Busy;

struct Conn {
    name: String,
    attempts: u32,
}

impl Conn {
    #[retry(backoff = constant(1ms))]
    fn name(&self) -> Result<&str, Busy> {
        Ok(&self.name)
    }

    #[retry(backoff = constant(1ms))]
    fn echo<'a>(&mut self, text: &'a str) -> Result<&'a str, Busy> {
        self.attempts += 1;
        if self.attempts < 2 { Err(Busy) } else { Ok(text) }
    }

    #[retry(backoff = constant(1ms))]
    fn label(&mut self) -> Result<&'static str, Busy> {
        self.attempts += 1;
        Ok("conn")
    }
}

fn main() {
    let mut c = Conn { name: "db".to_owned(), attempts: 0 };
    assert_eq!(c.name().unwrap(), "db");
    assert_eq!(c.echo("hi").unwrap(), "hi");
    assert_eq!(c.label().unwrap(), "conn");
}
