//! The CI/CD example's tasks, one component with a step per `STEP`:
//!
//! - `build`: packs the app's sources (mounted read-only at `/src`) into
//!   one `artifact`, and writes its `version`;
//! - `test`: checks the artifact (every file present and non-empty, a
//!   version of the form `X.Y.Z`) and writes a `report`;
//! - `deploy`: asks the deployment API (`API`) to deploy the version to
//!   `TARGET`, authenticated with the `deploy_token` secret — which it only
//!   holds as a placeholder: the host writes the token into the request;
//! - `rollback`: asks the API to roll `TARGET` back (runs when deploy fails).
#![forbid(unsafe_code)]

use cairn_guest::{Error, Task, http, info, input, output, secret};

struct Step;

impl Task for Step {
    fn run() -> cairn_guest::Result<()> {
        let step = std::env::var("STEP").unwrap_or_default();
        match step.as_str() {
            "build" => build(),
            "test" => test(),
            "deploy" => deploy(),
            "rollback" => rollback(),
            other => Err(Error::permanent(format!(
                "unknown STEP `{other}`: build, test, deploy or rollback"
            ))),
        }
    }
}

cairn_guest::export!(Step);

/// Every file under `dir`, sorted, as (path relative to `dir`, bytes).
fn files(
    dir: &std::path::Path,
    prefix: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type()?.is_dir() {
            files(&entry.path(), &format!("{name}/"), out)?;
        } else {
            out.push((name, std::fs::read(entry.path())?));
        }
    }
    Ok(())
}

fn build() -> cairn_guest::Result<()> {
    let mut sources = Vec::new();
    files(std::path::Path::new("/src"), "", &mut sources)?;
    let version = sources
        .iter()
        .find(|(name, _)| name == "VERSION")
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).trim().to_owned())
        .ok_or_else(|| Error::permanent("the app has no VERSION file"))?;
    let mut artifact = Vec::new();
    for (name, bytes) in &sources {
        artifact.extend_from_slice(format!("== {name} {}\n", bytes.len()).as_bytes());
        artifact.extend_from_slice(bytes);
        artifact.push(b'\n');
    }
    info!("packed {} files of version {version}", sources.len());
    output::write("artifact", artifact)?;
    output::write("version", version)?;
    Ok(())
}

fn test() -> cairn_guest::Result<()> {
    let artifact = input::string("artifact")?;
    let version = input::string("version")?;
    let mut checks = Vec::new();
    for header in artifact.lines().filter(|l| l.starts_with("== ")) {
        let mut parts = header.split_whitespace().skip(1);
        let (Some(name), Some(size)) = (parts.next(), parts.next()) else {
            return Err(Error::permanent(format!(
                "malformed artifact entry `{header}`"
            )));
        };
        if size == "0" {
            return Err(Error::permanent(format!("test failed: `{name}` is empty")));
        }
        checks.push(format!("ok {name} ({size} bytes)"));
    }
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
        return Err(Error::permanent(format!(
            "test failed: version `{version}` is not X.Y.Z"
        )));
    }
    checks.push(format!("ok version {version}"));
    info!("{} checks passed", checks.len());
    output::write("report", checks.join("\n") + "\n")?;
    Ok(())
}

/// POST `body` to `API/v1/TARGET/what` with the deploy token.
fn call(what: &str, body: String) -> cairn_guest::Result<http::Response> {
    let api = std::env::var("API").map_err(|_| Error::permanent("no API variable"))?;
    let target = std::env::var("TARGET").unwrap_or_else(|_| "staging".into());
    // With `inject`, this is a placeholder, not the token: printing it,
    // logging it or sending it elsewhere gives nothing away.
    let token = secret("deploy_token")?;
    let url = format!("{api}/v1/{target}/{what}");
    info!("POST {url}");
    let response = http::post(&url).bearer(token.expose()).json(body).send()?;
    let text = response.text().unwrap_or("<binary>").trim().to_owned();
    if response.is_success() {
        info!("{} {text}", response.status);
        Ok(response)
    } else if response.status >= 500 {
        Err(Error::permanent(format!(
            "{url} answered {}: {text}",
            response.status
        )))
    } else {
        Err(Error::permanent(format!(
            "{url} refused: {} {text}",
            response.status
        )))
    }
}

fn deploy() -> cairn_guest::Result<()> {
    let version = input::string("version")?;
    let report = input::string("report")?;
    let body = format!(
        r#"{{"version":"{version}","checks":{}}}"#,
        report.lines().count()
    );
    let response = call("deployments", body)?;
    output::write("deployment", response.body)?;
    Ok(())
}

fn rollback() -> cairn_guest::Result<()> {
    let response = call("rollbacks", "{}".to_owned())?;
    output::write("rollback", response.body)?;
    Ok(())
}
