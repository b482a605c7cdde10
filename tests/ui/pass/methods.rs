//! Methods: `self`, `&self`, `&mut self` (including returning a borrow of it), associated fns,
//! trait impl methods and trait default methods.

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[derive(Debug, Clone, Default)]
struct Agent {
    name: String,
    turns: u32,
}

impl Agent {
    #[trace]
    fn new(name: &str) -> Self {
        Agent {
            name: name.to_owned(),
            turns: 0,
        }
    }

    #[trace]
    fn name(&self) -> &str {
        &self.name
    }

    #[trace]
    fn name_mut(&mut self) -> &mut String {
        &mut self.name
    }

    #[trace]
    fn letters(&self) -> std::str::Chars<'_> {
        self.name.chars()
    }

    #[trace]
    fn longest<'a>(&'a self, other: &'a str) -> &'a str {
        if other.len() > self.name.len() {
            return other;
        }
        &self.name
    }

    #[trace]
    fn turn(&mut self, by: u32) -> u32 {
        self.turns += by;
        self.turns
    }

    #[trace]
    fn into_name(self) -> String {
        self.name
    }

    #[trace]
    fn first_word(&self) -> Option<&str> {
        let word = self.name.split(' ').next()?;
        Some(word)
    }

    #[trace]
    async fn turn_async(&mut self, by: u32) -> &mut u32 {
        self.turns += by;
        &mut self.turns
    }

    #[trace]
    async fn name_async(&self) -> &str {
        &self.name
    }

    #[trace]
    async fn into_turns(self) -> u32 {
        self.turns
    }
}

trait Tool {
    fn call(&self, input: &str) -> String;

    #[trace]
    fn describe(&self) -> String {
        "a tool".to_owned()
    }
}

impl Tool for Agent {
    #[trace(event_type = "tool")]
    fn call(&self, input: &str) -> String {
        format!("{} got {input}", self.name)
    }
}

/// Native `async fn` in traits, with a default body.
trait Planner {
    async fn plan(&self, goal: &str) -> Vec<String>;

    #[trace]
    async fn first_step(&self, goal: &str) -> Option<String> {
        self.plan(goal).await.into_iter().next()
    }
}

impl Planner for Agent {
    #[trace(event_type = "agent")]
    async fn plan(&self, goal: &str) -> Vec<String> {
        vec![format!("{} thinks about {goal}", self.name)]
    }
}

impl std::fmt::Display for Agent {
    #[trace(skip(f))]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agent {}", self.name)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recorder = Recorder::start();
    let mut agent = Agent::new("ada lovelace");
    assert_eq!(agent.name(), "ada lovelace");
    agent.name_mut().push('!');
    assert_eq!(agent.turn(2), 2);
    assert_eq!(agent.letters().next(), Some('a'));
    assert_eq!(agent.longest("x"), "ada lovelace!");
    assert_eq!(agent.longest("a much longer name"), "a much longer name");
    assert_eq!(agent.first_word(), Some("ada"));
    *agent.turn_async(1).await += 10;
    assert_eq!(agent.turns, 13);
    assert_eq!(agent.name_async().await, "ada lovelace!");
    assert_eq!(agent.call("x"), "ada lovelace! got x");
    assert_eq!(agent.describe(), "a tool");
    assert_eq!(
        agent.first_step("tea").await.as_deref(),
        Some("ada lovelace! thinks about tea")
    );
    assert_eq!(agent.to_string(), "agent ada lovelace!");
    assert_eq!(agent.clone().into_turns().await, 13);
    assert_eq!(agent.into_name(), "ada lovelace!");

    let spans = recorder.spans();
    assert_eq!(
        spans.get("new").str("honeyhive_inputs.name"),
        Some("ada lovelace")
    );
    assert_eq!(spans.get("turn").i64("honeyhive_inputs.by"), Some(2));
    assert_eq!(
        spans.get("name_mut").str("honeyhive_outputs.result"),
        Some("ada lovelace")
    );
    assert_eq!(spans.get("call").str("honeyhive_inputs.input"), Some("x"));
    spans.get("describe");
    let first_step = spans.get("first_step");
    assert_eq!(spans.children_of(first_step)[0].name, "plan");
    assert_eq!(spans.get("plan").str("honeyhive_event_type"), Some("agent"));
    spans.get("fmt");
    spans.get("into_name");
    spans.get("into_turns");
    spans.get("turn_async");
}
