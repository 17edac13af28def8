//! `cairn exec`: run one task on its own, the task author's inner loop.
//!
//! Turns flags into [`Capabilities`] and [`Limits`], runs one attempt, prints
//! the task's logs live and a summary at the end, and moves the outputs into
//! the output directory only if the task succeeded: a failed run leaves the
//! directory as it was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::style::{self, Style};
use super::{CliError, Exit};
use crate::digest::Digest;
use crate::name::Name;
use crate::sandbox::{
    Attempt, Capabilities, Clock, Endpoint, EngineSettings, Limits, LogLine, Mount, MountMode,
    Outcome, Program, Resource, Sandbox, TaskSpec,
};
use crate::secrets::SecretSource;
use crate::units::{HumanDuration, Size};

/// Run one task on its own, with exactly the inputs, files, env and secrets given.
///
/// The task is a Cairn task (a component built with the cairn-guest SDK), a
/// WASI command component (wasm32-wasip2 `fn main`), or a WASI core module
/// (wasm32-wasip1 `fn main`). It gets nothing that is not given here: no env,
/// no files, no network, no secrets. With `--net`, it may send HTTP requests
/// to those endpoints and no others (no policy is asked: the flags are the
/// whole grant). Command tasks see their inputs as
/// read-only files under `/inputs/NAME` and write outputs to `/outputs/NAME`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn exec hello.wasm --input name=name.txt --output-dir out/
  cairn exec report.wasm --secret api-token=env:API_TOKEN --timeout 10s
  cairn exec tool.wasm --mount data:/data:ro -- --verbose /data/in.csv
  cairn exec fetch.wasm --net api.example.com:443 --env URL=https://api.example.com/v1/status")]
pub(crate) struct ExecArgs {
    /// The task's .wasm file.
    #[arg(value_name = "TASK.wasm")]
    task: PathBuf,

    /// Arguments for the task, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,

    /// Give the task an input called NAME with the content of FILE.
    #[arg(long = "input", value_name = "NAME=FILE", value_parser = parse_input)]
    inputs: Vec<(Name, PathBuf)>,

    /// Where the task's outputs are written, one file per output (created if
    /// missing; files of the same names are replaced, only on success).
    #[arg(long, value_name = "DIR", default_value = "out")]
    output_dir: PathBuf,

    /// Allow only these outputs (default: any valid name).
    #[arg(long = "output", value_name = "NAME", value_parser = parse_name)]
    outputs: Vec<Name>,

    /// Give the task a secret: SOURCE is `env:VARIABLE` or `file:PATH`.
    #[arg(long = "secret", value_name = "NAME=SOURCE", value_parser = parse_secret)]
    secrets: Vec<(Name, SecretSource)>,

    /// Set an environment variable in the task (nothing is inherited).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// Let the task send HTTP requests to this endpoint (`host:port`; the
    /// only network a task can have). Repeat for more endpoints.
    #[arg(long = "net", value_name = "HOST:PORT")]
    network: Vec<Endpoint>,

    /// Mount a host directory in the task; read-only unless `:rw`.
    #[arg(long = "mount", value_name = "HOST:GUEST[:ro|rw]", value_parser = parse_mount)]
    mounts: Vec<Mount>,

    /// Feed this file to the task's stdin (default: empty).
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,

    /// Refuse to run unless the file's sha256 is this.
    #[arg(long, value_name = "DIGEST")]
    sha256: Option<Digest>,

    /// Wall-clock limit, including time blocked in host calls.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    timeout: HumanDuration,

    /// Limit on time spent running wasm code (default: the timeout).
    #[arg(long, value_name = "DURATION")]
    cpu_time: Option<HumanDuration>,

    /// Linear memory limit.
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    memory: Size,

    /// Most core instances (a component is several; CPython in
    /// componentize-py is 14), 1 to 64.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::sandbox::MAX_INSTANCES as u64,
        value_parser = clap::value_parser!(u64).range(1..=crate::sandbox::MAX_INSTANCES as u64)
    )]
    instances: u64,

    /// Limit on the task's stdout and on its stderr, each.
    #[arg(long, value_name = "SIZE", default_value = "1MiB")]
    max_stdout: Size,

    /// Limit on each output.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    max_output: Size,

    /// Where compiled code is cached [default: $XDG_CACHE_HOME/cairn or ~/.cache/cairn].
    #[arg(long, value_name = "DIR", env = "CAIRN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile from scratch and cache nothing (overrides --cache-dir).
    #[arg(long)]
    no_cache: bool,

    /// Print the result as JSON on stdout (the task's stdout is included in it).
    #[arg(long)]
    json: bool,
}

fn parse_name(s: &str) -> Result<Name, String> {
    Name::new(s).map_err(|e| e.to_string())
}

fn split_pair<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
    s.split_once('=')
        .ok_or_else(|| format!("expected {what}, e.g. `name=value`"))
}

fn parse_input(s: &str) -> Result<(Name, PathBuf), String> {
    let (name, path) = split_pair(s, "NAME=FILE")?;
    Ok((parse_name(name)?, PathBuf::from(path)))
}

pub(crate) fn parse_secret(s: &str) -> Result<(Name, SecretSource), String> {
    let (name, source) = split_pair(s, "NAME=SOURCE")?;
    Ok((
        parse_name(name)?,
        source
            .parse()
            .map_err(|e: crate::secrets::SecretError| e.to_string())?,
    ))
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (key, value) = split_pair(s, "KEY=VALUE")?;
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        return Err("environment variables need a non-empty name and no NUL bytes".into());
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn parse_mount(s: &str) -> Result<Mount, String> {
    let (rest, mode) = match s.rsplit_once(':') {
        Some((rest, "ro")) => (rest, MountMode::Ro),
        Some((rest, "rw")) => (rest, MountMode::Rw),
        _ => (s, MountMode::Ro),
    };
    let (host, guest) = rest
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:GUEST[:ro|rw], e.g. `data:/data:ro`".to_owned())?;
    crate::sandbox::check_guest_path(guest).map_err(|e| format!("{e}; {}", e.help()))?;
    Ok(Mount {
        host: PathBuf::from(host),
        guest: guest.to_owned(),
        mode,
    })
}

/// The default compile-cache directory, if the environment names a home.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("cairn").join("compiled"))
}

impl ExecArgs {
    /// Check the host-side inputs and build the task's capabilities.
    fn capabilities(&self) -> Result<Capabilities, CliError> {
        let mut inputs = BTreeMap::new();
        for (name, path) in &self.inputs {
            if !path.is_file() {
                return Err(CliError::input(format!(
                    "input `{name}`: `{}` is not a readable file; check the path",
                    path.display()
                )));
            }
            if inputs.insert(name.clone(), path.clone()).is_some() {
                return Err(CliError::input(format!("input `{name}` is given twice")));
            }
        }
        let mut secrets = BTreeMap::new();
        for (name, source) in &self.secrets {
            let value = source
                .resolve()
                .map_err(|e| CliError::input(format!("secret `{name}`: {e}")))?;
            secrets.insert(name.clone(), value);
        }
        for mount in &self.mounts {
            if !mount.host.is_dir() {
                return Err(CliError::input(format!(
                    "mount `{}`: `{}` is not a directory; create it or fix the path",
                    mount.guest,
                    mount.host.display()
                )));
            }
        }
        let stdin = match &self.stdin {
            Some(path) => std::fs::read(path).map_err(|e| {
                CliError::input(format!("cannot read stdin file `{}`: {e}", path.display()))
            })?,
            None => Vec::new(),
        };
        Ok(Capabilities {
            args: self.args.clone(),
            env: self.env.clone(),
            inputs,
            outputs: (!self.outputs.is_empty()).then(|| self.outputs.clone()),
            mounts: self.mounts.clone(),
            secrets,
            network: self.network.clone(),
            inject: BTreeMap::new(),
            stdin,
        })
    }

    fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout.0,
            cpu_time: self.cpu_time.unwrap_or(self.timeout).0,
            memory: self.memory.0,
            instances: usize::try_from(self.instances).unwrap_or(crate::sandbox::MAX_INSTANCES),
            stdout: self.max_stdout.0,
            stderr: self.max_stdout.0,
            output: self.max_output.0,
            ..Limits::default()
        }
    }
}

pub(crate) async fn exec(args: ExecArgs, verbose: bool) -> Result<Exit, CliError> {
    let caps = args.capabilities()?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    let sandbox = Sandbox::new(&EngineSettings::default(), cache_dir.as_deref())
        .map_err(|e| CliError::input_with_sources(&e))?;
    let program = sandbox
        .load(&args.task, args.sha256.as_ref())
        .map_err(|e| CliError::input_with_sources(&e))?;

    std::fs::create_dir_all(&args.output_dir).map_err(|e| {
        CliError::input(format!(
            "cannot create output directory `{}`: {e}",
            args.output_dir.display()
        ))
    })?;
    let staging = tempfile::Builder::new()
        .prefix(".cairn-staging-")
        .tempdir_in(&args.output_dir)
        .map_err(|e| {
            CliError::input(format!(
                "cannot write in `{}`: {e}",
                args.output_dir.display()
            ))
        })?;

    let style = Style::stderr();
    let task_name = program.name().to_owned();
    let sink_name = task_name.clone();
    let sink: crate::sandbox::LogSink = Arc::new(move |line: &LogLine| {
        let level = line.level.as_str();
        let level = match line.level {
            crate::sandbox::Level::Error => style.error(level),
            crate::sandbox::Level::Warn => style.warn(level),
            _ => style.dim(level),
        };
        eprintln!(
            "[{sink_name}] {level}: {}",
            style::printable(line.message.as_bytes())
        );
    });
    let spec = TaskSpec {
        caps,
        limits: args.limits(),
        outputs_dir: staging.path().to_owned(),
        log_sink: Some(sink),
        exchange_sink: None,
        // `exec` is the author's loop: the flags are the whole grant.
        gate: None,
    };
    let mut attempt = sandbox
        .run(&program, &spec)
        .await
        .map_err(|e| CliError::input_with_sources(&e))?;

    if attempt.outcome.is_success() {
        for output in &mut attempt.outputs {
            let target = args.output_dir.join(output.name.as_str());
            std::fs::rename(&output.path, &target).map_err(|e| {
                CliError::input(format!(
                    "cannot move output `{}` to `{}`: {e}",
                    output.name,
                    target.display()
                ))
            })?;
            output.path = target;
        }
    }
    drop(staging);

    if args.json {
        print_json(&args, &program, &attempt);
    } else {
        print_human(&program, &attempt, verbose, style);
    }
    Ok(if attempt.outcome.is_success() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn print_human(program: &Program, attempt: &Attempt, verbose: bool, style: Style) {
    style::write_guest_output(std::io::stdout().lock(), &attempt.stdout);
    style::write_guest_output(std::io::stderr().lock(), &attempt.stderr);
    let name = program.name();
    let stats = program.load_stats();
    let compiled = if stats.cache_hit {
        "cached".to_owned()
    } else {
        format!("compiled in {}", ms(stats.compile))
    };
    let about = style.dim(&format!(
        "({}, sha256:{}, {compiled})",
        program.kind().as_str(),
        program.digest().short()
    ));
    for request in attempt.requests.iter().filter(|r| r.allowed) {
        eprintln!("{}", style.dim(&crate::runner::exchange_line(request)));
    }
    for denial in &attempt.denials {
        eprintln!("{}: {denial}", style.warn("denied"));
    }
    if attempt.outcome.is_success() {
        eprintln!(
            "{} {name} succeeded in {} {about}",
            style.good("ok"),
            ms(attempt.duration)
        );
        for output in &attempt.outputs {
            eprintln!(
                "  {} -> {}  {}  sha256:{}",
                output.name,
                output.path.display(),
                crate::sandbox::bytes(output.size),
                output.digest.short()
            );
        }
        return;
    }
    // The outcome can quote the guest (its failure message, a file name).
    let outcome = style::printable(attempt.outcome.to_string().as_bytes());
    eprintln!(
        "{} {name} {outcome} after {} {about}",
        style.error("failed"),
        ms(attempt.duration)
    );
    if let Some(hint) = hint(&attempt.outcome, verbose) {
        eprintln!("  {hint}");
    }
    if verbose
        && let Outcome::Trap {
            backtrace: Some(bt),
            ..
        } = &attempt.outcome
    {
        eprintln!("{bt}");
    }
}

/// What the user can do about an outcome.
fn hint(outcome: &Outcome, verbose: bool) -> Option<&'static str> {
    Some(match outcome {
        Outcome::Timeout {
            clock: Clock::Wall, ..
        } => "raise the limit with --timeout if the task needs longer",
        Outcome::Timeout {
            clock: Clock::Cpu, ..
        } => "raise the limit with --cpu-time if the task needs longer",
        Outcome::ResourceLimit {
            resource: Resource::Memory,
            ..
        } => "raise the limit with --memory",
        Outcome::OutputLimit { stream, .. } if stream == "stdout" || stream == "stderr" => {
            "raise the limit with --max-stdout, or write large results to an output"
        }
        Outcome::OutputLimit { stream, .. } if stream.starts_with("output") => {
            "raise the limit with --max-output"
        }
        Outcome::Instantiation { message } if message.contains("instance count") => {
            "raise the limit with --instances (up to 64)"
        }
        Outcome::Trap { .. } if !verbose => "run with -v to see the wasm backtrace",
        _ => return None,
    })
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn print_json(args: &ExecArgs, program: &Program, attempt: &Attempt) {
    let stats = program.load_stats();
    let outputs: Vec<_> = attempt
        .outputs
        .iter()
        .map(|o| {
            serde_json::json!({
                "name": o.name.as_str(),
                "path": o.path,
                "size": o.size,
                "sha256": o.digest.to_string(),
            })
        })
        .collect();
    let logs: Vec<_> = attempt
        .logs
        .iter()
        .map(|l| serde_json::json!({ "level": l.level.as_str(), "message": l.message }))
        .collect();
    let value = serde_json::json!({
        "task": program.name(),
        "path": args.task,
        "kind": program.kind().as_str(),
        "sha256": program.digest().to_string(),
        "cache_hit": stats.cache_hit,
        "compile_ms": stats.compile.as_secs_f64() * 1000.0,
        "outcome": outcome_json(&attempt.outcome),
        "exit_status": attempt.exit_status,
        "duration_ms": attempt.duration.as_secs_f64() * 1000.0,
        "outputs": outputs,
        "logs": logs,
        "denials": attempt.denials,
        "requests": attempt.requests,
        "stdout": String::from_utf8_lossy(&attempt.stdout),
        "stderr": String::from_utf8_lossy(&attempt.stderr),
    });
    outln!("{value:#}");
}

/// The outcome for machines: its kind, message, and the limit or reason
/// that decided it, as separate fields.
fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    let mut value = serde_json::json!({
        "kind": outcome.kind(),
        "message": outcome.to_string(),
        "retriable": outcome.is_retriable(),
    });
    let detail = match outcome {
        Outcome::Success | Outcome::Instantiation { .. } => serde_json::json!({}),
        Outcome::GuestError { transient, .. } => serde_json::json!({ "transient": transient }),
        Outcome::Trap { reason, backtrace } => {
            serde_json::json!({ "reason": reason, "backtrace": backtrace })
        }
        Outcome::Timeout { clock, limit } => serde_json::json!({
            "clock": match clock { Clock::Cpu => "cpu", Clock::Wall => "wall" },
            "limit_ms": limit.as_millis(),
        }),
        Outcome::ResourceLimit { resource, limit } => serde_json::json!({
            "resource": match resource {
                Resource::Memory => "memory",
                Resource::Table => "table",
                Resource::Handles => "handles",
            },
            "limit": limit,
        }),
        Outcome::OutputLimit { stream, limit } => {
            serde_json::json!({ "stream": stream, "limit": limit })
        }
        Outcome::InvalidOutput { name, reason } => {
            serde_json::json!({ "name": name, "reason": reason })
        }
    };
    if let (Some(map), serde_json::Value::Object(detail)) = (value.as_object_mut(), detail) {
        map.extend(detail);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_with_modes_and_refuse_bad_guests() {
        let m = parse_mount("data:/data:rw").ok();
        assert_eq!(
            m.map(|m| (m.host, m.guest, m.mode)),
            Some((PathBuf::from("data"), "/data".into(), MountMode::Rw))
        );
        assert_eq!(
            parse_mount("d:/x").ok().map(|m| m.mode),
            Some(MountMode::Ro)
        );
        for bad in ["d", "d:x", "d:/a/../b", "d:/inputs", "d:/outputs/:rw"] {
            assert!(parse_mount(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn inputs_need_valid_names() {
        assert!(parse_input("orders=o.csv").is_ok());
        assert!(parse_input("../x=o.csv").is_err());
        assert!(parse_input("orders").is_err());
    }
}
