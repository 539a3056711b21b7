//! What every runner binary shares, so that a binary is its adapter's flags and one call.
//!
//! A runner binary declares its clap `Cli` with [`CommonArgs`] flattened in, parses it with
//! [`parse`], builds its adapter from its own flags, and hands both to [`execute`]:
//!
//! ```no_run
//! use ambient_cli::{CommonArgs, execute, parse};
//!
//! #[derive(Debug, clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: CommonArgs,
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let cli: Cli = match parse() {
//!         Ok(cli) => cli,
//!         Err(code) => return code,
//!     };
//!     let adapter = ambient_adapter_echo_like();
//!     execute(cli.common, Ok::<_, std::convert::Infallible>(adapter))
//! }
//! # fn ambient_adapter_echo_like() -> impl ambient_adapter::Adapter { Nothing }
//! # struct Nothing;
//! # impl ambient_adapter::Adapter for Nothing {
//! #     type Error = std::convert::Infallible;
//! #     async fn run(&mut self, _: &mut ambient_adapter::Session) -> Result<ambient_adapter::Outcome, Self::Error> {
//! #         Ok(ambient_adapter::Outcome::Completed { result: None })
//! #     }
//! # }
//! ```
//!
//! [`execute`] installs the redacting log subscriber, catches SIGTERM and SIGINT, and runs
//! the session: against the backend the pod environment names, or with `--local` against
//! a local backend started in-process, printing the conversation as the UI shows it.
//!
//! This is the one library that installs a subscriber and signal handlers: it exists to be
//! the binaries' shared `main`.

mod local;
pub mod otel;
pub mod supervisor;

use std::{ffi::OsString, fmt::Display, process::ExitCode};

use ambient_adapter::Adapter;
use ambient_host::{RedactingWriter, Redactor, RunnerArgs, RunnerExit};
pub use ambient_serve::ServeIdentity;
use ambient_serve::{ServeArgs, serve};
use ambient_websocket::{RunnerConfig, run_session};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, filter::LevelFilter};

/// The flags every runner has: the platform's settings, the serve mode's, local mode, and
/// the log format.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The platform's settings (the pod environment).
    #[command(flatten)]
    pub runner: RunnerArgs,
    /// The AG-UI serve mode: an HTTP server instead of the backend's WebSocket.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Start a local backend in-process, run the session against it, and print the
    /// conversation and the final status.
    #[arg(long, env = "RUNNER_LOCAL")]
    pub local: bool,
    /// How log lines are written to stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The session's trace, over OTLP (OpenTelemetry's standard variables).
    #[command(flatten)]
    pub otel: otel::OtelArgs,
}

impl CommonArgs {
    /// Whether the runner serves AG-UI: `AGUI_LISTEN`, or the platform operator's
    /// `USE_AGUI`/`AGUI_PORT` with no `WEBSOCKET_URL` (which keeps the WebSocket mode).
    pub fn serves(&self) -> bool {
        let has_websocket_url = self
            .runner
            .websocket_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty());
        self.serve.is_on(has_websocket_url)
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses the command line and environment. On `--help` and `--version` it prints them
/// and gives exit code 0; on a usage error it prints clap's message (which names the flag
/// and its variable) and gives the configuration-error code.
///
/// As PID 1 it first becomes the container's init and runs the rest as its child
/// ([`supervisor`]); `Err` then carries that child's exit code.
pub fn parse<Cli: clap::Parser>() -> Result<Cli, ExitCode> {
    if let Some(code) = supervisor::supervise_if_init() {
        return Err(code);
    }
    // First, so that an adapter the binary builds from its flags can have its HTTP client.
    install_crypto();
    Cli::try_parse().map_err(|error| {
        let code = if error.use_stderr() {
            RunnerExit::ConfigError.code()
        } else {
            0
        };
        let _printed = error.print();
        ExitCode::from(code)
    })
}

/// Variables of the runner's own environment that any child may see: the system's, never
/// a credential. Each child gets these and what its binary adds, and nothing else.
pub const SYSTEM_VARIABLES: [&str; 20] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "NO_PROXY",
    "no_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
];

/// The runner's own credentials: no child gets them, whatever a binary asks for.
const NEVER_TO_A_CHILD: [&str; 7] = [
    "BOT_TOKEN",
    "BOT_TOKEN_FILE",
    "AGUI_TOKEN",
    "LANGGRAPH_API_KEY",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
];

/// A child's environment, from this process's: the [`SYSTEM_VARIABLES`], `names`, the
/// variables whose names start with one of `prefixes`, and `LC_*`; never the runner's own
/// credentials.
pub fn child_environment(names: &[&str], prefixes: &[&str]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(key, _)| {
            let key = key.to_string_lossy();
            let key = key.as_ref();
            !NEVER_TO_A_CHILD.contains(&key)
                && (SYSTEM_VARIABLES.contains(&key)
                    || names.contains(&key)
                    || key.starts_with("LC_")
                    || prefixes.iter().any(|prefix| key.starts_with(prefix)))
        })
        .collect()
}

/// The environment of the runner's own git: the system's variables only.
pub(crate) fn git_environment() -> Vec<(OsString, OsString)> {
    child_environment(&[], &[])
}

/// Closes this process to its children and to anything else running as the same user:
/// not dumpable, so its `/proc/<pid>/environ`, `mem` and ptrace are the kernel's and
/// root's only. It holds the bot token, the git tokens and the serve token, and the agent
/// it hosts runs whatever commands a model chooses.
fn close_to_children() -> Result<(), nix::Error> {
    nix::sys::prctl::set_dumpable(false)
}

/// Picks the process's TLS crypto provider. The HTTP and TLS libraries are built without
/// a default one, so that no C toolchain is needed; this is the one place a runner
/// process chooses ring. A second call does nothing.
fn install_crypto() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// A program or file path as the runner's own working directory sees it: the framework's
/// process runs in the workspace, where a relative path (`.venv/bin/python`) would mean
/// something else. A bare name (`python3`) is left to the `PATH` search.
pub fn program_path(path: &std::path::Path) -> std::path::PathBuf {
    if path.components().count() > 1 && path.is_relative() {
        std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    }
}

/// Runs the session with `adapter` and gives the process's exit code. An adapter that
/// could not be built (`Err`) is a configuration error, reported before anything
/// connects. In the serve mode, `/capabilities` names the agent after the program.
pub fn execute<A: Adapter, E: Display>(common: CommonArgs, adapter: Result<A, E>) -> ExitCode {
    let name = std::env::args()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| String::from("ambient-runner"));
    let identity = ServeIdentity {
        framework: name.clone(),
        name,
        version: String::from(env!("CARGO_PKG_VERSION")),
        ..ServeIdentity::default()
    };
    execute_as(common, adapter, identity)
}

/// [`execute`], with what the serve mode's `/capabilities` says about the agent.
pub fn execute_as<A: Adapter, E: Display>(
    common: CommonArgs,
    adapter: Result<A, E>,
    identity: ServeIdentity,
) -> ExitCode {
    // First, before any child can start.
    let closed = close_to_children();
    // One redactor for the process: the log's, and every front's, so that a secret the
    // runner learns later is scrubbed everywhere.
    let mut secrets = common.runner.secret_values();
    secrets.extend(common.serve.secret_values());
    secrets.extend(common.otel.secret_values());
    let redactor = Redactor::new(&secrets);
    init_logging(&common, redactor.clone());
    if let Err(error) = closed {
        tracing::warn!(%error, "the process could not be made non-dumpable: its children can read its environment");
    }
    install_crypto();
    let adapter = match adapter {
        Ok(adapter) => adapter,
        Err(error) => {
            tracing::error!("configuration error: {error}");
            return ExitCode::from(RunnerExit::ConfigError.code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the async runtime could not start");
            return ExitCode::from(RunnerExit::ConfigError.code());
        }
    };
    let exit = runtime.block_on(Box::pin(run(common, adapter, identity, redactor)));
    ExitCode::from(exit.code())
}

/// Logs to stderr through the redactor: human-readable, or JSON lines with
/// `LOG_FORMAT=json`; `RUST_LOG` filters.
fn init_logging(common: &CommonArgs, redactor: Redactor) {
    let default_level = if common.local { "warn" } else { "info" };
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // The WebSocket and HTTP libraries trace payloads as hex or raw bytes, which no
    // redactor can read; where tracing is on, their trace level is held back.
    if filter
        .max_level_hint()
        .is_none_or(|level| level >= LevelFilter::TRACE)
    {
        for directive in [
            "tungstenite=debug",
            "tokio_tungstenite=debug",
            "hyper_util=debug",
            "reqwest=debug",
        ] {
            if let Ok(directive) = directive.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let writer = RedactingWriter::new(redactor, std::io::stderr);
    // Colours only for a person at a terminal: a file or a log collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let installed = match common.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second call (a test harness that already has a subscriber) keeps the first.
    drop(installed);
}

/// Runs the session with its trace exported where the variables say, and flushed at the
/// end.
async fn run<A: Adapter>(
    common: CommonArgs,
    adapter: A,
    identity: ServeIdentity,
    redactor: Redactor,
) -> RunnerExit {
    let tracing_installed = match common.otel.install(
        &identity.name,
        redactor.clone(),
        tokio::runtime::Handle::current(),
    ) {
        Ok(installed) => installed,
        Err(error) => {
            tracing::error!(%error, "configuration error");
            return RunnerExit::ConfigError;
        }
    };
    let exit = Box::pin(run_front(common, adapter, identity, redactor)).await;
    if let Some(installed) = tracing_installed {
        installed.shutdown().await;
    }
    exit
}

/// The runner's name and framework on the session's trace.
fn name_on_trace(config: &mut ambient_host::HostConfig, identity: &ServeIdentity) {
    config.trace_identity.runner.clone_from(&identity.name);
    config
        .trace_identity
        .framework
        .clone_from(&identity.framework);
}

async fn run_front<A: Adapter>(
    common: CommonArgs,
    adapter: A,
    identity: ServeIdentity,
    redactor: Redactor,
) -> RunnerExit {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    if common.serves() {
        if common.local {
            tracing::error!(
                "configuration error: --local and AGUI_LISTEN (--serve) exclude each other"
            );
            return RunnerExit::ConfigError;
        }
        let initial_prompt = common
            .runner
            .session_id
            .as_deref()
            .map_or(Ok(None), |session| {
                common.serve.initial_prompt(&common.runner, session.trim())
            });
        let initial_prompt = match initial_prompt {
            Ok(prompt) => prompt,
            Err(error) => {
                tracing::error!(%error, "configuration error");
                return RunnerExit::ConfigError;
            }
        };
        let mut settings = match common.serve.into_settings() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(%error, "configuration error");
                return RunnerExit::ConfigError;
            }
        };
        let mut config = match common
            .runner
            .host_config(Some(ambient_serve::DEFAULT_SESSION), redactor)
        {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(%error, "configuration error");
                return RunnerExit::ConfigError;
            }
        };
        config.workspace_settings.git.env = git_environment();
        name_on_trace(&mut config, &identity);
        settings.initial_prompt = initial_prompt;
        return Box::pin(serve(settings, config, identity, adapter, shutdown)).await;
    }
    if common.local {
        return match Box::pin(local::run(
            common.runner,
            adapter,
            redactor,
            &identity,
            shutdown,
        ))
        .await
        {
            Ok(exit) => exit,
            Err(error) => {
                tracing::error!("{error:#}");
                RunnerExit::ConfigError
            }
        };
    }
    let mut config = match RunnerConfig::from_args(&common.runner, redactor) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "configuration error");
            return RunnerExit::ConfigError;
        }
    };
    config.host.workspace_settings.git.env = git_environment();
    name_on_trace(&mut config.host, &identity);
    let report = run_session(config, adapter, shutdown).await;
    tracing::info!(end = ?report.end, status_written = report.status_written, "session over");
    report.exit()
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "SIGTERM cannot be caught");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM: stopping"),
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => tracing::info!("SIGINT: stopping"),
            Err(error) => {
                tracing::warn!(%error, "SIGINT cannot be caught");
                std::future::pending::<()>().await;
            }
        },
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::program_path;

    #[test]
    fn a_relative_path_is_made_absolute_and_a_bare_name_is_left_to_the_path_search() {
        assert_eq!(program_path(Path::new("python3")), Path::new("python3"));
        assert_eq!(
            program_path(Path::new("/usr/bin/python3")),
            Path::new("/usr/bin/python3")
        );
        let made = program_path(Path::new(".venv/bin/python"));
        assert!(made.is_absolute(), "{}", made.display());
        assert!(made.ends_with(".venv/bin/python"));
    }
}
