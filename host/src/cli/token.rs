//! `cairn token create|list|revoke`: the API tokens `cairn serve` will
//! authenticate requests with (the service itself is not built yet).

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Subcommand;

use super::style::{self, Style};
use super::{CliError, Exit};
use crate::serve::tokens;
use crate::state::State;
use crate::units::HumanDuration;

/// Manage API tokens (stored in `STATE/state.db`, as digests only).
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a token for a user and print it, once, on stdout.
    ///
    /// The token is the only place the secret exists: store it now (a
    /// secret manager, `CAIRN_TOKEN`). Requests made with it act as USER,
    /// whatever they say, and policy decides what USER may do.
    #[command(after_help = "Examples:
  cairn token create --user alice --expires 30d
  export CAIRN_TOKEN=$(cairn token create --user ci-bot --expires 90d)")]
    Create {
        /// The principal the token authenticates (`Cairn::User::\"NAME\"` in policies).
        #[arg(long, value_name = "NAME")]
        user: String,
        /// How long it is valid, e.g. `30d`, `12h`; never expires if left out.
        #[arg(long, value_name = "DURATION")]
        expires: Option<HumanDuration>,
        /// The state directory.
        #[arg(long, value_name = "DIR", default_value = ".cairn")]
        state_dir: PathBuf,
        /// Print the token and its details as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (ids, users, dates and status; never secrets).
    List {
        /// The state directory.
        #[arg(long, value_name = "DIR", default_value = ".cairn")]
        state_dir: PathBuf,
        /// Print the tokens as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (`cairn token list`); it stops working at once.
    Revoke {
        /// The token's id.
        #[arg(value_name = "ID")]
        id: String,
        /// The state directory.
        #[arg(long, value_name = "DIR", default_value = ".cairn")]
        state_dir: PathBuf,
        /// Print the token's id, user and revocation time as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn token(command: &TokenCommand) -> Result<Exit, CliError> {
    let now = SystemTime::now();
    match command {
        TokenCommand::Create {
            user,
            expires,
            state_dir,
            json,
        } => {
            // Refused before anything is made on disk.
            tokens::check_user(user).map_err(CliError::input)?;
            let mut state = State::open(state_dir).map_err(CliError::input)?;
            let issued = tokens::issue(&mut state, user, expires.map(|d| d.0), now)
                .map_err(CliError::input)?;
            if *json {
                outln!(
                    "{:#}",
                    serde_json::json!({
                        "token": issued.token,
                        "id": issued.row.id,
                        "user": issued.row.user,
                        "created": issued.row.created,
                        "expires": issued.row.expires,
                    })
                );
            } else {
                outln!("{}", issued.token);
                eprintln!(
                    "{} token {} for {}, {}; it is shown only this once: store it now",
                    Style::stderr().good("created"),
                    issued.row.id,
                    style::printable(user.as_bytes()),
                    issued
                        .row
                        .expires
                        .as_deref()
                        .map_or_else(|| "never expires".to_owned(), |e| format!("expires {e}")),
                );
            }
            Ok(Exit::Success)
        }
        TokenCommand::List { state_dir, json } => {
            // Reading makes nothing: no state directory, no tokens.
            let rows = if state_dir.join("state.db").is_file() {
                let state = State::open(state_dir).map_err(CliError::input)?;
                state.tokens().map_err(CliError::input)?
            } else {
                Vec::new()
            };
            if *json {
                let rows: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id,
                            "user": r.user,
                            "created": r.created,
                            "expires": r.expires,
                            "revoked": r.revoked,
                            "status": tokens::status(r, now),
                        })
                    })
                    .collect();
                outln!("{:#}", serde_json::Value::Array(rows));
                return Ok(Exit::Success);
            }
            for r in &rows {
                outln!(
                    "{:<12}  {:<8}  {:<20}  created {}  expires {}",
                    r.id,
                    tokens::status(r, now),
                    style::printable(r.user.as_bytes()),
                    r.created,
                    r.expires.as_deref().unwrap_or("never"),
                );
            }
            if rows.is_empty() {
                eprintln!("no tokens yet: `cairn token create --user NAME` issues one");
            }
            Ok(Exit::Success)
        }
        TokenCommand::Revoke {
            id,
            state_dir,
            json,
        } => {
            let unknown = || {
                CliError::input(format!(
                    "no token `{}` in `{}`; `cairn token list` shows the ids",
                    style::printable(id.as_bytes()),
                    state_dir.display()
                ))
            };
            if !state_dir.join("state.db").is_file() {
                return Err(unknown());
            }
            let mut state = State::open(state_dir).map_err(CliError::input)?;
            let Some(row) = state.token(id).map_err(CliError::input)? else {
                return Err(unknown());
            };
            let when = crate::audit::record::rfc3339(now);
            let revoked_now = state.revoke_token(id, &when).map_err(CliError::input)?;
            if *json {
                outln!(
                    "{:#}",
                    serde_json::json!({
                        "id": row.id,
                        "user": row.user,
                        "revoked": row.revoked.unwrap_or(when),
                        "already": !revoked_now,
                    })
                );
            } else if revoked_now {
                eprintln!(
                    "{} token {id} of {}",
                    Style::stderr().good("revoked"),
                    style::printable(row.user.as_bytes())
                );
            } else {
                eprintln!(
                    "token {id} was already revoked ({})",
                    row.revoked.as_deref().unwrap_or("earlier")
                );
            }
            Ok(Exit::Success)
        }
    }
}
