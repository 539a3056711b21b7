//! `fake-claude`: stands in for the Claude Code CLI in tests of the process plumbing.
//!
//! It plays a script of JSON lines, the format of the recorded driver transcripts
//! (`{"dir":"out","msg":…}` is printed, `{"dir":"in","msg":…}` waits for a stdin line of
//! the same `type`, and the same `response.request_id` and `response.response.behavior`
//! when the record has them, `{"dir":"exit","rc":N,"stderr":…}` waits for the end of stdin, then
//! exits), plus what the recordings cannot show: `{"dir":"crash","rc":N,"stderr":…}` exits
//! at once, `{"dir":"raw","line":…}` prints a line as it is, `{"dir":"hang"}` stops
//! answering, `{"dir":"tell","addr":"127.0.0.1:PORT"}` connects to that address and
//! hangs up (a signal to a test that the script got there), and
//! `{"dir":"steal","files":[…],"to":PATH}` plays an agent after the runner's secrets: it
//! reads its parent's `/proc/<pid>/environ` and each of `files`, and writes what it got
//! (or the error) to `to`. For the bounds on what a child may print and start:
//! `{"dir":"flood","to":"stdout"|"stderr","lines":N,"bytes":B}` prints N lines of B bytes,
//! `{"dir":"endless"}` prints one stdout line that never ends, `{"dir":"spawn","argv":[…],
//! "output":"inherit","wait":false,"pids":PATH}` starts a child (holding the fake's output
//! when inherited), and `{"dir":"pid","to":PATH}` writes the fake's own pid. Request ids the script recorded are swapped for the live ones. It writes
//! its argv, one argument a line, to the file `CLAUDE_FAKE_ARGV` names. Its settings
//! start with `CLAUDE_` because the runner passes the CLI no other variables of its own.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::exit,
    reason = "a stand-in for a command-line program prints and exits"
)]

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    path::PathBuf,
    process::ExitCode,
};

use serde_json::Value;

/// The fake CLI.
#[derive(Debug, clap::Parser)]
#[command(disable_version_flag = true, disable_help_flag = true)]
struct Fake {
    /// The script to play.
    #[arg(long, env = "CLAUDE_FAKE_SCRIPT")]
    script: Option<PathBuf>,
    /// Where to write the argv.
    #[arg(long, env = "CLAUDE_FAKE_ARGV")]
    argv_file: Option<PathBuf>,
    /// Print the version, as the CLI does.
    #[arg(long)]
    version: bool,
    /// Everything else: the CLI's own flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let fake: Fake = match clap::Parser::try_parse_from(
        // The CLI's flags are not the fake's: only its own and `--version` are read.
        args.iter()
            .filter(|a| !a.starts_with("--") || *a == "--version")
            .cloned()
            .collect::<Vec<_>>(),
    ) {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if fake.version {
        println!("2.1.332 (Claude Code)");
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &fake.argv_file
        && std::fs::write(path, args[1..].join("\n")).is_err()
    {
        eprintln!("fake-claude: cannot write {}", path.display());
        return ExitCode::from(2);
    }
    let Some(script) = fake.script else {
        eprintln!("fake-claude: CLAUDE_FAKE_SCRIPT is not set");
        return ExitCode::from(2);
    };
    let Ok(script) = std::fs::read_to_string(&script) else {
        eprintln!("fake-claude: cannot read {}", script.display());
        return ExitCode::from(2);
    };
    play(&script)
}

fn play(script: &str) -> ExitCode {
    let stdin = std::io::stdin();
    let mut input = stdin.lock().lines();
    let mut stdout = std::io::stdout().lock();
    let mut live_ids: HashMap<String, String> = HashMap::new();
    for record in script
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or_default();
        match text("dir") {
            "out" => {
                let mut message = record.get("msg").cloned().unwrap_or(Value::Null);
                if let Some(id) = message.pointer_mut("/response/request_id")
                    && let Some(live) = id.as_str().and_then(|recorded| live_ids.get(recorded))
                {
                    *id = Value::String(live.clone());
                }
                let _written = writeln!(stdout, "{message}");
                let _flushed = stdout.flush();
            }
            "in" => {
                let expected = record.pointer("/msg/type").and_then(Value::as_str);
                let Some(Ok(line)) = input.next() else {
                    eprintln!("fake-claude: stdin ended while a {expected:?} line was due");
                    return ExitCode::from(1);
                };
                let Ok(got) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("Error parsing streaming input line: {line}");
                    return ExitCode::from(1);
                };
                if got.get("type").and_then(Value::as_str) != expected {
                    eprintln!("fake-claude: expected a {expected:?} line, got {line}");
                    return ExitCode::from(1);
                }
                // An answer to one of the fake's own requests must name it, and say what
                // the script expects.
                for pointer in ["/response/request_id", "/response/response/behavior"] {
                    let want = record
                        .pointer(&format!("/msg{pointer}"))
                        .and_then(Value::as_str);
                    if want.is_some() && got.pointer(pointer).and_then(Value::as_str) != want {
                        eprintln!("fake-claude: expected {pointer} {want:?}, got {line}");
                        return ExitCode::from(1);
                    }
                }
                if let (Some(recorded), Some(live)) = (
                    record.pointer("/msg/request_id").and_then(Value::as_str),
                    got.get("request_id").and_then(Value::as_str),
                ) {
                    live_ids.insert(recorded.to_owned(), live.to_owned());
                }
            }
            "tell" if std::net::TcpStream::connect(text("addr")).is_err() => {
                eprintln!("fake-claude: nobody listens at {}", text("addr"));
            }
            "steal" => steal(&record),
            "flood" => flood(&record, &mut stdout),
            "endless" => {
                let chunk = vec![b'x'; 64 << 10];
                let _started = stdout.write_all(b"{\"endless\":\"");
                // Until the runner stops reading (or stops the fake).
                while stdout.write_all(&chunk).is_ok() {}
                return ExitCode::from(1);
            }
            "spawn" => spawn(&record),
            "pid" => {
                let to = text("to");
                if std::fs::write(to, std::process::id().to_string()).is_err() {
                    eprintln!("fake-claude: cannot write {to}");
                }
            }
            "raw" => {
                let _written = writeln!(stdout, "{}", text("line"));
                let _flushed = stdout.flush();
            }
            "crash" => {
                eprintln!("{}", text("stderr"));
                return exit_code(&record);
            }
            "hang" => loop {
                std::thread::park();
            },
            "exit" => {
                // Like the CLI: finish once stdin ends.
                for _ in input.by_ref() {}
                eprint!("{}", text("stderr"));
                return exit_code(&record);
            }
            _ => {}
        }
    }
    ExitCode::SUCCESS
}

/// What an agent could read of the runner's: its parent's environment, and `files`.
fn steal(record: &Value) {
    let parent = std::os::unix::process::parent_id();
    let files = record
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let mut loot = String::new();
    for path in std::iter::once(format!("/proc/{parent}/environ")).chain(files.map(str::to_owned)) {
        let got = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).replace('\0', "\n"),
            Err(error) => format!("refused: {error}"),
        };
        loot.push_str(&format!("== {path}\n{got}\n"));
    }
    let to = record
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or("loot.txt");
    if std::fs::write(to, loot).is_err() {
        eprintln!("fake-claude: cannot write {to}");
    }
}

/// Prints `lines` lines of `bytes` bytes each to `to` (`stdout`: JSON lines the runner
/// must read; `stderr`: plain text), a piece at a time, so that the fake itself stays
/// small whatever it prints.
fn flood(record: &Value, stdout: &mut std::io::StdoutLock<'_>) {
    let number = |key: &str| {
        record
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    };
    let (lines, bytes) = (number("lines"), number("bytes"));
    let to_stderr = record.get("to").and_then(Value::as_str) == Some("stderr");
    let mut stderr = std::io::stderr().lock();
    let out: &mut dyn Write = if to_stderr { &mut stderr } else { stdout };
    let chunk = vec![b'x'; 64 << 10];
    for _ in 0..lines {
        let (open, close): (&[u8], &[u8]) = if to_stderr {
            (b"", b"\n")
        } else {
            (b"{\"type\":\"flood\",\"pad\":\"", b"\"}\n")
        };
        let mut left = bytes.saturating_sub(open.len() + close.len());
        let mut written = out.write_all(open);
        while left > 0 && written.is_ok() {
            let piece = left.min(chunk.len());
            written = out.write_all(&chunk[..piece]);
            left -= piece;
        }
        if written.and_then(|()| out.write_all(close)).is_err() {
            return;
        }
    }
    let _flushed = out.flush();
}

/// Starts `argv` as a child of the fake, stdin closed and the output as `output` says
/// (`inherit`: the fake's own stdout and stderr, which the child then holds open;
/// otherwise none), waits for it when `wait` is true, and writes its pid to `pids`.
fn spawn(record: &Value) {
    let argv: Vec<&str> = record
        .get("argv")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some((program, args)) = argv.split_first() else {
        eprintln!("fake-claude: spawn without argv");
        return;
    };
    let inherit = record.get("output").and_then(Value::as_str) == Some("inherit");
    let output = || {
        if inherit {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        }
    };
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(output())
        .stderr(output())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            eprintln!("fake-claude: cannot start {program}: {error}");
            return;
        }
    };
    if let Some(to) = record.get("pids").and_then(Value::as_str)
        && std::fs::write(to, child.id().to_string()).is_err()
    {
        eprintln!("fake-claude: cannot write {to}");
    }
    if record.get("wait").and_then(Value::as_bool) == Some(true) {
        let _waited = child.wait();
    }
}

fn exit_code(record: &Value) -> ExitCode {
    let rc = record.get("rc").and_then(Value::as_u64).unwrap_or(0);
    ExitCode::from(u8::try_from(rc).unwrap_or(1))
}
