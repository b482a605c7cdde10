use honeyhive_runtime::retry;

#[derive(Debug)]
struct Busy;

struct Conn {
    attempts: u32,
}

impl Conn {
    #[retry]
    fn reconnect(&mut self) -> Result<&mut Self, Busy> {
        self.attempts += 1;
        Ok(self)
    }

    // A named lifetime, from a `&mut` argument.
    #[retry]
    fn first<'a>(&self, items: &'a mut Vec<u32>) -> Result<&'a mut u32, Busy> {
        items.first_mut().ok_or(Busy)
    }
}

fn main() {
    let mut c = Conn { attempts: 0 };
    let _ = c.reconnect();
}
