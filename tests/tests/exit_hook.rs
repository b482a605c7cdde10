//! A process that calls `std::process::exit`, or returns from `main` with its guard leaked,
//! still flushes its spans within the deadline; `HH_EXIT_HOOK=false` opts out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// A receiver on 127.0.0.1 that sends the span names of every request it gets.
fn receiver() -> (String, mpsc::Receiver<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                    let names = req
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                        .map(|s| s.name.clone())
                        .collect();
                    let _ = tx.send(names);
                    let mut w = &stream;
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, rx)
}

fn run(how: &str, hook: bool) -> Vec<String> {
    let (url, rx) = receiver();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exit_without_guard"));
    cmd.arg(how)
        .env_clear()
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url);
    if !hook {
        cmd.env("HH_EXIT_HOOK", "false");
    }
    let status = cmd.status().expect("the program runs");
    assert!(status.success(), "{status}");
    // The process has exited: whatever it sent has arrived.
    let mut names: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_millis(200)).ok())
            .flatten()
            .collect();
    names.sort();
    names
}

#[test]
fn process_exit_still_flushes() {
    assert_eq!(run("exit", true), ["job", "step", "step"]);
}

#[test]
fn returning_from_main_with_the_guard_leaked_still_flushes() {
    assert_eq!(run("leak", true), ["job", "step", "step"]);
}

#[test]
fn the_exit_hook_can_be_turned_off() {
    assert!(run("exit", false).is_empty());
}
