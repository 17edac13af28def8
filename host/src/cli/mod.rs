//! The `cairn` command line: argument parsing, output and exit codes.
//!
//! Owns what users see: human output on stderr (machine output, `--json`, on
//! stdout), one-line errors that say what to do, and the exit codes
//! 0 success, 1 the task or check failed, 2 usage or input error, 3 refused by
//! policy. It must never panic on user input and never print a stack trace
//! unless `-v` asks for details.

/// `println!` for a command's output on stdout. A reader that went away
/// (`cairn audit show | head`) ends the command quietly with exit code 141,
/// as a shell reports SIGPIPE, instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

/// `print!` for a command's output on stdout, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if write!(stdout, $($arg)*).and_then(|()| stdout.flush()).is_err() {
            std::process::exit(141);
        }
    }};
}

mod approve;
mod audit;
mod backfill;
mod build;
mod client;
mod exec;
mod logs;
mod policy;
mod run;
mod runs;
mod serve;
mod style;
mod token;
mod workflow;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::policy::bounds::STACK;

/// Exit codes, shared by every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded.
    Success = 0,
    /// The task, run or check failed.
    Failed = 1,
    /// The command line or an input file is wrong.
    Input = 2,
    /// Policy refused.
    Denied = 3,
    /// The run waits at an approval gate (`cairn approve`, then `cairn
    /// resume`).
    Waiting = 4,
    /// Stopped by Ctrl-C (as a shell reports SIGINT).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// An error to show the user: one line, plus details under `-v`.
#[derive(Debug)]
pub struct CliError {
    exit: Exit,
    message: String,
    details: Option<String>,
}

impl CliError {
    /// An input or usage error (exit 2) from anything displayable.
    pub fn input(error: impl std::fmt::Display) -> Self {
        Self {
            exit: Exit::Input,
            message: error.to_string(),
            details: None,
        }
    }

    /// An input error that keeps the source chain of `error` for `-v`.
    pub fn input_with_sources(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut details = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            details.push(format!("caused by: {cause}"));
            source = cause.source();
        }
        Self {
            exit: Exit::Input,
            message: error.to_string(),
            details: (!details.is_empty()).then(|| details.join("\n")),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Run workflows of sandboxed WebAssembly tasks, authorized by policy, with a verifiable audit trail",
    long_about = "Cairn runs tasks compiled to WebAssembly (wasm32-wasip2 components, or wasm32-wasip1 \
modules) each in its own sandbox: a task gets only the inputs, outputs, files, env and secrets it is \
given, and is held to hard limits on time, memory and output. Its only network is HTTP to the \
endpoints it declares, each request authorized by policy as it is sent; a secret can be given to it \
as a placeholder that the host swaps for the value only in requests to hosts policy allows.\n\n\
`cairn run` runs a workflow: everything it would do is authorized by its Cedar policies first \
(`cairn plan` shows the decisions), then each task runs in its sandbox, and every event goes to a \
signed, tamper-evident audit log that `cairn audit verify` checks offline with only the public key. \
`cairn exec` runs one task on its own; `cairn validate` and `cairn graph` check and draw manifests; \
`cairn policy test` checks policies against expected decisions.\n\n\
`cairn serve` runs workflows as a service: runs start on authenticated API requests, the \
manifest's schedules and signed webhook deliveries, each decided by policy and recorded first (`cairn token` makes API \
tokens; `cairn trigger`, `cairn schedules` and `cairn runs --server` are its client).\n\n\
`cairn backfill` runs a schedule's past ticks (here, or on a server), each nominal time once.\n\n\
`cairn build` runs the tasks' build commands (`cairn run --build` builds, then runs); \
`cairn resume` finishes a run that was killed or stopped, or that waited at an approval gate \
until `cairn approve` (or `cairn reject`) decided it; `cairn completions` prints shell \
completions.",
    after_help = "Exit codes: 0 success, 1 the run, task or check failed, 2 usage or input error, 3 refused by policy, 4 the run waits for approval.\n\
Set NO_COLOR to disable colour. Use -v for details on errors (traps show a wasm backtrace)."
)]
struct Cli {
    /// Show details: error causes, wasm backtraces, debug logs of the host.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Build(build::BuildArgs),
    Resume(run::ResumeArgs),
    Approve(approve::ApproveArgs),
    Reject(approve::RejectArgs),
    /// Look at runs: list them, show one, print its tasks' logs; a server's too (--server), and cancel them.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    Serve(serve::ServeArgs),
    Trigger(client::TriggerArgs),
    Backfill(Box<backfill::BackfillArgs>),
    /// A server's backfills: list them, show one, cancel one.
    #[command(subcommand)]
    Backfills(backfill::BackfillsCommand),
    /// A server's schedules: list them, pause or resume one.
    #[command(subcommand)]
    Schedules(client::SchedulesCommand),
    Exec(Box<exec::ExecArgs>),
    Validate(workflow::ValidateArgs),
    Graph(workflow::GraphArgs),
    Plan(policy::PlanArgs),
    /// Work with a workflow's Cedar policies: validate, test, format, print the schema.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    Keygen(audit::KeygenArgs),
    /// API tokens for `cairn serve`: create, list, revoke.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The audit trail: verify it offline, show it, export a bundle, prove a record.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Print the JSON Schema of workflow manifests, for editors.
    ///
    /// Save it and point your editor at it, e.g. with Taplo / Even Better
    /// TOML: `#:schema ./cairn.schema.json` as the manifest's first line.
    Schema,
    Completions(CompletionsArgs),
}

/// Print a shell completion script for cairn.
///
/// Load it in the current shell, or install it where your shell looks.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  source <(cairn completions bash)
  cairn completions zsh > \"${fpath[1]}/_cairn\"
  cairn completions fish > ~/.config/fish/completions/cairn.fish")]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Run the CLI with the process's arguments; returns the exit code.
///
/// The command runs on a thread of its own with [`STACK`] of stack, as do
/// the async runtime's threads: Cedar recurses on policies, and
/// `policy::bounds` sizes what it accepts to that stack.
#[must_use]
pub fn main() -> ExitCode {
    let command = std::thread::Builder::new()
        .name("cairn".into())
        .stack_size(STACK)
        .spawn(command);
    match command.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // The panic message is already printed (a bug in Cairn).
        Ok(Err(_)) => {
            eprintln!(
                "error: cairn stopped on an internal error (a bug); please report it with the message above"
            );
            ExitCode::from(101)
        }
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            Exit::Input.into()
        }
    }
}

fn command() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap renders help, versions and usage errors itself.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Input.into()
            } else {
                Exit::Success.into()
            };
        }
    };
    let json_logs = match &cli.command {
        Command::Serve(args) => {
            init_tracing(cli.verbose, args.log_format, "cairn=info,warn");
            args.log_format == LogFormat::Json
        }
        _ => {
            init_tracing(cli.verbose, LogFormat::Text, "warn");
            false
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return report(
                &CliError::input(format!("cannot start the async runtime: {e}")),
                cli.verbose,
            );
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(&args).await,
            Command::Build(args) => build::build(&args),
            Command::Resume(args) => run::resume(&args).await,
            Command::Approve(args) => approve::approve(&args),
            Command::Reject(args) => approve::reject(&args),
            Command::Runs(command) => runs::command(&command).await,
            Command::Serve(args) => serve::serve(&args).await,
            Command::Trigger(args) => client::trigger(&args).await,
            Command::Backfill(args) => backfill::backfill(&args).await,
            Command::Backfills(command) => backfill::backfills(&command).await,
            Command::Schedules(command) => client::schedules(&command).await,
            Command::Exec(args) => exec::exec(*args, cli.verbose).await,
            Command::Keygen(args) => audit::keygen_command(&args),
            Command::Token(command) => token::token(&command),
            Command::Audit(command) => audit::audit(&command),
            Command::Validate(args) => workflow::validate(&args),
            Command::Graph(args) => workflow::graph(&args),
            Command::Plan(args) => policy::plan(&args),
            Command::Policy(command) => policy::policy(&command),
            Command::Schema => Ok(workflow::schema()),
            Command::Completions(args) => Ok(completions(args.shell)),
        }
    });
    match result {
        Ok(exit) => exit.into(),
        // A service writing JSON lines says why it stopped in one too.
        Err(error) if json_logs => {
            tracing::error!(target: "cairn::serve", "{}", error.message);
            error.exit.into()
        }
        Err(error) => report(&error, cli.verbose),
    }
}

fn completions(shell: clap_complete::Shell) -> Exit {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Exit::Success
}

fn report(error: &CliError, verbose: bool) -> ExitCode {
    let style = style::Style::stderr();
    eprintln!("{}: {}", style.error("error"), error.message);
    if verbose && let Some(details) = &error.details {
        eprintln!("{details}");
    }
    error.exit.into()
}

/// How log messages are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people: `warning: ...`, `error: ...`, the rest as is.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, the
    /// message and its fields), for log shippers.
    Json,
}

/// Send log messages to stderr as `format` says, at `default`'s levels
/// unless `CAIRN_LOG` says otherwise (`-v`: debug).
fn init_tracing(verbose: bool, format: LogFormat, default: &str) {
    let default = if verbose { "cairn=debug,warn" } else { default };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(logs::Plain)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
