//! What auditors take away: a self-contained bundle of one run, its SLSA
//! provenance in a DSSE envelope, and inclusion proofs of single records.
//!
//! A bundle is a folder: `log.jsonl` (the log up to the checkpoint that
//! ends the run), `checkpoint` (that checkpoint), `key.pub`, `workflow.toml`,
//! `policies/` and `entities.json` (as recorded), `artifacts/sha256/<hex>`
//! (the run's inputs and outputs), `provenance.dsse.json`, `SHA256SUMS` and
//! a `README.txt` saying how to check it. Everything in it is derived from
//! the log; nothing is trusted because it is in the bundle — the verifier
//! brings the public key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::log::hex;
use super::merkle::{self, Hash};
use super::note::{Signer, Verifier, parse_checkpoint};
use super::record::{Event, MountDigest, Record};
use super::verify::sha256_tag;

/// The DSSE payload type of in-toto statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Problems exporting or proving.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("no run `{0}` in the audit log; `cairn audit show --kind run-started` lists them")]
    NoRun(String),
    #[error("run `{0}` has no checkpoint after it yet (still running, or crashed before the end)")]
    Unsigned(String),
    #[error("record {0} is not in the log, or no checkpoint covers it yet")]
    NoRecord(u64),
    #[error("the audit log is damaged at record {0}; run `cairn audit verify`")]
    Damaged(u64),
    #[error("`{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` already exists; choose another --out", .0.display())]
    Exists(PathBuf),
}

/// DSSE's pre-authentication encoding.
#[must_use]
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Sign `statement` into a DSSE envelope.
#[must_use]
pub fn envelope(signer: &Signer, statement: &serde_json::Value) -> serde_json::Value {
    let payload = statement.to_string().into_bytes();
    let signature = signer.sign_raw(&pae(PAYLOAD_TYPE, &payload));
    serde_json::json!({
        "payloadType": PAYLOAD_TYPE,
        "payload": B64.encode(&payload),
        "signatures": [{ "keyid": signer.verifier().note_key(), "sig": B64.encode(signature) }],
    })
}

/// Open a DSSE envelope signed by `key`: its statement.
///
/// # Errors
///
/// A malformed envelope or no valid signature by `key`.
pub fn open_envelope(
    key: &Verifier,
    envelope: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
    if payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "payload type `{payload_type}` is not an in-toto statement"
        ));
    }
    let payload = envelope["payload"]
        .as_str()
        .and_then(|p| B64.decode(p).ok())
        .ok_or("the payload is not base64")?;
    let message = pae(payload_type, &payload);
    let signed = envelope["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| B64.decode(s["sig"].as_str()?).ok())
        .any(|sig| key.verify_raw(&message, &sig));
    if !signed {
        return Err("no signature by this key verifies".into());
    }
    serde_json::from_slice(&payload).map_err(|e| format!("the statement is not JSON: {e}"))
}

struct Line<'a> {
    bytes: &'a [u8],
    record: Record,
}

fn parse(log: &[u8]) -> Result<Vec<Line<'_>>, BundleError> {
    let mut lines = Vec::new();
    for (i, piece) in log.split_inclusive(|b| *b == b'\n').enumerate() {
        let Some(bytes) = piece.strip_suffix(b"\n") else {
            break;
        };
        let record = Record::decode(bytes)
            .map(|(r, _)| r)
            .map_err(|_| BundleError::Damaged(i as u64))?;
        lines.push(Line { bytes, record });
    }
    Ok(lines)
}

/// The buildType of Cairn's provenance: what its fields mean is documented
/// at this URI's page (host/docs/workflow-run-v1.md in the source).
pub const BUILD_TYPE: &str = "https://cairn.dev/workflow-run/v1";

/// `descriptor` with the RFC 6920 Named Information URI of `digest`
/// (`sha256:<hex>`) as its `uri`: a name for content that holds wherever
/// the content is kept. A digest that is not one (a damaged record) gets
/// no URI.
fn with_ni_uri(mut descriptor: serde_json::Value, digest: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if let (Ok(digest), Some(fields)) = (
        digest.parse::<crate::digest::Digest>(),
        descriptor.as_object_mut(),
    ) {
        let uri = format!(
            "ni:///sha-256;{}",
            URL_SAFE_NO_PAD.encode(digest.as_bytes())
        );
        fields.insert("uri".into(), uri.into());
    }
    descriptor
}

/// What the provenance says of one run, gathered from its records.
#[derive(Default)]
struct Facts<'a> {
    user: &'a str,
    workflow: &'a str,
    manifest: &'a str,
    policy_set: &'a str,
    parameters: Option<&'a BTreeMap<String, String>>,
    started: &'a str,
    finished: &'a str,
    status: &'a str,
    /// Component digest → (file name, manifest paths, tasks).
    components: BTreeMap<&'a str, (String, Vec<&'a str>, Vec<&'a str>)>,
    /// `task:guest` → the mount as its last attempt started.
    mounts: BTreeMap<String, &'a MountDigest>,
    /// `task.output` → digest, of outputs the run made or reused.
    outputs: BTreeMap<String, &'a str>,
    /// `task.output`s that flowed into a task of the run.
    consumed: std::collections::BTreeSet<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(lines: &'a [Line<'_>], run: &str) -> Self {
        let mut facts = Self::default();
        for line in lines.iter().filter(|l| l.record.run == run) {
            match &line.record.event {
                Event::RunStarted {
                    user,
                    workflow,
                    manifest,
                    policy_set,
                    parameters,
                    ..
                } => {
                    facts.user = user;
                    facts.workflow = workflow;
                    facts.manifest = &manifest.sha256;
                    facts.policy_set = policy_set;
                    facts.parameters = Some(parameters);
                    facts.started = &line.record.time;
                }
                Event::RunResumed {
                    manifest,
                    policy_set,
                    ..
                } => (facts.manifest, facts.policy_set) = (&manifest.sha256, policy_set),
                Event::DataFlow { from, .. } => {
                    facts.consumed.insert(from);
                }
                Event::TaskStarted {
                    task,
                    component,
                    mounts,
                    ..
                } => {
                    let file = Path::new(&component.path).file_name().map_or_else(
                        || component.path.clone(),
                        |n| n.to_string_lossy().into_owned(),
                    );
                    let entry = facts
                        .components
                        .entry(&component.sha256)
                        .or_insert_with(|| (file, Vec::new(), Vec::new()));
                    if !entry.1.contains(&component.path.as_str()) {
                        entry.1.push(&component.path);
                    }
                    if !entry.2.contains(&task.as_str()) {
                        entry.2.push(task);
                    }
                    for mount in mounts {
                        facts
                            .mounts
                            .insert(format!("{task}:{}", mount.guest), mount);
                    }
                }
                Event::TaskFinished { task, outputs, .. }
                | Event::CacheHit { task, outputs, .. } => {
                    for output in outputs {
                        facts
                            .outputs
                            .insert(format!("{task}.{}", output.name), &output.sha256);
                    }
                }
                Event::RunFinished { status, .. } => {
                    facts.status = status;
                    facts.finished = &line.record.time;
                }
                _ => {}
            }
        }
        facts
    }
}

/// The SLSA provenance statement of run `run` from its records: the final
/// outputs (those no task of the run took in) as subjects; components by
/// digest and mounted data by `dirHash` as resolved dependencies; the
/// workflow, its manifest, the user and the parameters as external
/// parameters; intermediate outputs and the run's status as byproducts.
fn statement(lines: &[Line<'_>], run: &str) -> serde_json::Value {
    let facts = Facts::of(lines, run);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let digest = |d: &str| serde_json::json!({ "sha256": hex(d) });
    let artifact = |name: &str, d: &str| {
        with_ni_uri(serde_json::json!({ "name": name, "digest": digest(d) }), d)
    };
    let (finals, intermediates): (Vec<_>, Vec<_>) = facts
        .outputs
        .iter()
        .partition(|(name, _)| !facts.consumed.contains(name.as_str()));
    let components = facts.components.iter().map(|(d, (file, paths, tasks))| {
        let component = serde_json::json!({
            "name": file,
            "digest": digest(d),
            "mediaType": "application/wasm",
            "annotations": { "tasks": tasks, "manifestPaths": paths },
        });
        with_ni_uri(component, d)
    });
    let mounts = facts.mounts.iter().map(|(name, m)| {
        serde_json::json!({
            "name": name,
            "digest": { "dirHash": m.dir_hash },
            "annotations": {
                "host": m.host, "guest": m.guest, "mode": m.mode,
                "files": m.files, "bytes": m.bytes,
            },
        })
    });
    let mut byproducts: Vec<serde_json::Value> = intermediates
        .iter()
        .map(|(name, d)| artifact(name, d))
        .collect();
    byproducts.push(serde_json::json!({
        "name": "status",
        "content": B64.encode(facts.status),
        "mediaType": "text/plain",
    }));
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": finals.iter().map(|(name, d)| artifact(name, d)).collect::<Vec<_>>(),
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "workflow": facts.workflow,
                    "manifest": digest(facts.manifest),
                    "user": facts.user,
                    "parameters": facts.parameters,
                },
                "internalParameters": { "policySet": digest(facts.policy_set), "cairn": env!("CARGO_PKG_VERSION") },
                "resolvedDependencies": components.chain(mounts).collect::<Vec<_>>(),
            },
            "runDetails": {
                "builder": { "id": format!("https://cairn.dev/cairn@{}", env!("CARGO_PKG_VERSION")) },
                "metadata": { "invocationId": run, "startedOn": facts.started, "finishedOn": facts.finished },
                "byproducts": byproducts,
            },
        },
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| BundleError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| BundleError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Write the bundle of run `run` of `log` into the new folder `out`,
/// copying artifacts from `store` and signing provenance with `signer`.
///
/// # Errors
///
/// No such run, a run without a final checkpoint, a damaged log, I/O.
pub fn export(
    log: &[u8],
    run: &str,
    store: &Path,
    signer: &Signer,
    out: &Path,
) -> Result<Vec<PathBuf>, BundleError> {
    if out.exists() {
        return Err(BundleError::Exists(out.to_owned()));
    }
    let lines = parse(log)?;
    let last = lines
        .iter()
        .rposition(|l| l.record.run == run)
        .ok_or_else(|| BundleError::NoRun(run.to_owned()))?;
    let Some(end) = lines.get(last..).and_then(|rest| {
        rest.iter()
            .position(|l| matches!(l.record.event, Event::Checkpoint { .. }))
            .map(|p| last + p)
    }) else {
        return Err(BundleError::Unsigned(run.to_owned()));
    };
    let mut files = Vec::new();
    // A resumed or expanded run records its policy set again: the last
    // one, a file once.
    let mut put = |name: &str, bytes: &[u8]| -> Result<(), BundleError> {
        write(&out.join(name), bytes)?;
        let name = PathBuf::from(name);
        if !files.contains(&name) {
            files.push(name);
        }
        Ok(())
    };
    let kept: Vec<u8> = lines
        .iter()
        .take(end + 1)
        .flat_map(|l| l.bytes.iter().copied().chain(std::iter::once(b'\n')))
        .collect();
    put("log.jsonl", &kept)?;
    if let Some(Event::Checkpoint { note, .. }) = lines.get(end).map(|l| &l.record.event) {
        put("checkpoint", note.as_bytes())?;
    }
    put("key.pub", signer.verifier().pem().as_bytes())?;
    let mut artifacts = std::collections::BTreeSet::new();
    for line in lines.iter().filter(|l| l.record.run == run) {
        match &line.record.event {
            Event::RunStarted { source, .. } => put("workflow.toml", source.as_bytes())?,
            Event::PolicySet {
                files: policies,
                entities,
                ..
            } => {
                for file in policies {
                    let name = Path::new(&file.path)
                        .file_name()
                        .map_or_else(|| file.path.clone(), |n| n.to_string_lossy().into_owned());
                    put(&format!("policies/{name}"), file.text.as_bytes())?;
                }
                put(
                    "entities.json",
                    format!("{}\n", entities.pretty()).as_bytes(),
                )?;
            }
            Event::TaskStarted { inputs, .. } => {
                artifacts.extend(inputs.iter().map(|a| a.sha256.clone()))
            }
            Event::TaskFinished { outputs, .. } => {
                artifacts.extend(outputs.iter().map(|a| a.sha256.clone()))
            }
            _ => {}
        }
    }
    for digest in &artifacts {
        let hex = digest.trim_start_matches("sha256:");
        let from = store.join("sha256").join(hex);
        if let Ok(bytes) = std::fs::read(&from) {
            put(&format!("artifacts/sha256/{hex}"), &bytes)?;
        }
    }
    let envelope = envelope(signer, &statement(&lines, run));
    put("provenance.dsse.json", format!("{envelope:#}\n").as_bytes())?;
    put(
        "README.txt",
        format!(
            "Audit bundle of Cairn run {run}.\n\n\
             Verify it with a public key you trust (key.pub is a copy, for convenience):\n\n  \
             cairn audit verify {} --key TRUSTED.pub\n\n\
             This checks the signatures of every checkpoint, the Merkle tree, the hash chain,\n\
             that every step was authorized, every artifact digest, the provenance envelope,\n\
             and decides every recorded policy decision again against policies/ and entities.json.\n",
            out.display()
        )
        .as_bytes(),
    )?;
    let mut sums = String::new();
    for name in &files {
        let bytes = std::fs::read(out.join(name)).map_err(|source| BundleError::Io {
            path: out.join(name),
            source,
        })?;
        sums.push_str(&format!(
            "{}  {}\n",
            sha256_tag(&bytes).trim_start_matches("sha256:"),
            name.display()
        ));
    }
    write(&out.join("SHA256SUMS"), sums.as_bytes())?;
    files.push(PathBuf::from("SHA256SUMS"));
    Ok(files)
}

/// Check a bundle's provenance envelope: signed by `key`, and naming
/// exactly the outputs its run recorded. Returns how many subjects.
///
/// # Errors
///
/// What is wrong with it.
pub fn check_provenance(log: &[u8], envelope_json: &[u8], key: &Verifier) -> Result<usize, String> {
    let envelope: serde_json::Value =
        serde_json::from_slice(envelope_json).map_err(|e| format!("not JSON: {e}"))?;
    let statement = open_envelope(key, &envelope)?;
    let run = statement
        .pointer("/predicate/runDetails/metadata/invocationId")
        .and_then(serde_json::Value::as_str)
        .ok_or("the statement names no run")?;
    let lines = parse(log).map_err(|e| e.to_string())?;
    let expected = self::statement(&lines, run);
    if expected.pointer("/subject") != statement.pointer("/subject") {
        return Err(format!(
            "its subjects are not the outputs run `{run}` recorded"
        ));
    }
    if expected.pointer("/predicate/buildDefinition")
        != statement.pointer("/predicate/buildDefinition")
    {
        return Err(format!(
            "its build definition is not what run `{run}` recorded"
        ));
    }
    if expected.pointer("/predicate/runDetails/byproducts")
        != statement.pointer("/predicate/runDetails/byproducts")
    {
        return Err(format!(
            "its byproducts are not the intermediate outputs run `{run}` recorded"
        ));
    }
    Ok(statement
        .pointer("/subject")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len))
}

/// The proof that record `seq` is in a signed checkpoint: the first one
/// after it, or the last one in the log with `latest`.
///
/// # Errors
///
/// A record no checkpoint covers, or a damaged log.
pub fn prove(log: &[u8], seq: u64, latest: bool) -> Result<serde_json::Value, BundleError> {
    let lines = parse(log)?;
    let index = usize::try_from(seq).map_err(|_| BundleError::NoRecord(seq))?;
    let mut checkpoints = lines
        .iter()
        .enumerate()
        .skip(index.saturating_add(1))
        .filter(|(_, l)| matches!(l.record.event, Event::Checkpoint { .. }));
    let found = if latest {
        checkpoints.next_back()
    } else {
        checkpoints.next()
    };
    let Some((
        size,
        Line {
            record:
                Record {
                    event: Event::Checkpoint { note, .. },
                    ..
                },
            ..
        },
    )) = found
    else {
        return Err(BundleError::NoRecord(seq));
    };
    let leaves: Vec<Hash> = lines
        .iter()
        .take(size)
        .map(|l| merkle::leaf_hash(l.bytes))
        .collect();
    let proof = merkle::Stored::of(&leaves)
        .inclusion_proof(seq, size as u64)
        .ok_or(BundleError::NoRecord(seq))?;
    let record = lines.get(index).ok_or(BundleError::NoRecord(seq))?;
    Ok(serde_json::json!({
        "record": String::from_utf8_lossy(record.bytes),
        "index": seq,
        "tree_size": size,
        "proof": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        "checkpoint": note,
    }))
}

/// Check a proof made by [`prove`] with `key`: the record it shows.
///
/// # Errors
///
/// What is wrong with it.
pub fn check_proof(proof: &serde_json::Value, key: &Verifier) -> Result<String, String> {
    let note = proof["checkpoint"].as_str().ok_or("no checkpoint")?;
    let (_, size, root) = parse_checkpoint(key.open_note(note)?)?;
    let record = proof["record"].as_str().ok_or("no record")?;
    let index = proof["index"].as_u64().ok_or("no index")?;
    if proof["tree_size"].as_u64() != Some(size) {
        return Err("the tree size is not the checkpoint's".into());
    }
    let path: Vec<Hash> = proof["proof"]
        .as_array()
        .ok_or("no proof")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| B64.decode(h).ok())
                .and_then(|b| Hash::try_from(b.as_slice()).ok())
                .ok_or_else(|| "a proof hash is not base64 SHA-256".to_owned())
        })
        .collect::<Result<_, _>>()?;
    if merkle::verify_inclusion(
        &merkle::leaf_hash(record.as_bytes()),
        index,
        size,
        &path,
        &root,
    ) {
        Ok(format!(
            "record {index} is in the tree of {size} records signed by {} (root {})",
            key.name(),
            hex(&root)
        ))
    } else {
        Err(format!(
            "record {index} is not in the signed tree of {size} records"
        ))
    }
}
