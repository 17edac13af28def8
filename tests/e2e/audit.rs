//! `cairn run` and the audit trail: a real run's log verifies with only the
//! public key, other implementations accept its checkpoints, and every
//! mutation of it — a flipped byte anywhere, a deleted, duplicated, swapped
//! or forged record, a truncation, a checkpoint from another log, another
//! key — is detected and the first bad record named.

use std::path::PathBuf;

use cairn::audit::merkle::{self, Hash};
use cairn::audit::note::{Signer, Verifier};
use cairn::audit::record::{Event, Record};
use cairn::audit::verify::{Artifacts, Report, verify, verify_against};

use crate::support::{Scratch, assert_contains, run_in, tool_in};

/// A workflow of four tasks: `first` reads a secret, `second` and `third`
/// pass its output on, `cleanup` runs only on failure. `mode` is the mode of
/// `second` (e.g. `permanent` to make it fail).
fn chain(s: &Scratch, mode: &str) -> PathBuf {
    s.policies();
    let manifest = format!(
        r#"[workflow]
name = "chain"
policies = ["p"]
[tasks.first]
component = {task:?}
env = {{ MODE = "secret" }}
secrets = ["token"]
outputs = ["echo"]
[tasks.second]
component = {task:?}
env = {{ MODE = "{mode}" }}
inputs = {{ text = "first.echo" }}
outputs = ["echo"]
[tasks.third]
component = {task:?}
inputs = {{ text = "second.echo" }}
outputs = ["echo"]
[tasks.cleanup]
component = {task:?}
needs = ["third"]
when = "failure"
outputs = ["echo"]
"#,
        task = cairn_tests::TASK
    );
    s.write("workflow.toml", &manifest)
}

fn run(s: &Scratch, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let out = crate::support::cairn()
        .current_dir(s.path())
        .env("CAIRN_SECRET_TOKEN", "tok-123-secret")
        .args(&all)
        .output()
        .expect("run cairn");
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `cairn audit verify` of the scratch's state directory passes.
fn assert_verifies(s: &Scratch) {
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}", verified.stdout);
}

fn log_of(s: &Scratch) -> PathBuf {
    s.path().join(".cairn/audit/log.jsonl")
}

fn key_of(s: &Scratch) -> Verifier {
    Verifier::load(&s.path().join(".cairn/keys/audit.pub")).unwrap()
}

fn check(s: &Scratch, bytes: &[u8]) -> Report {
    verify(
        bytes,
        &key_of(s),
        &Artifacts::new(vec![s.path().join(".cairn/artifacts")]),
    )
}

/// A log of three runs: a success, a failure with its cleanup, a refusal.
fn three_runs() -> Scratch {
    let s = Scratch::new();
    chain(&s, "echo");
    let ok = run(&s, &["--as", "alice", "--json"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    chain(&s, "permanent");
    let failed = run(&s, &["--as", "alice"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let refused = run(&s, &["--as", "bob"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    s
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|b| *b == b'\n').collect::<Vec<_>>()
}

#[test]
fn a_run_is_recorded_and_verifies_with_only_the_public_key() {
    let s = Scratch::new();
    chain(&s, "echo");
    let first = run(&s, &["--as", "alice", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let summary = first.json();
    assert_eq!(summary["status"], "succeeded");
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks[3]["status"], "skipped");
    assert_eq!(tasks[3]["detail"], "nothing upstream failed");
    // The secret reached the task, masked in what it printed.
    assert_contains(&first.stderr, "[first] token is ***");
    assert!(!first.stderr.contains("tok-123-secret"));

    let second = run(&s, &["--as", "alice"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let verified = run_in(
        s.path(),
        &[
            "audit",
            "verify",
            "--key",
            ".cairn/keys/audit.pub",
            "--json",
        ],
    );
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    let report = verified.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["runs"], 2);
    assert_eq!(report["checkpoints"], 2);
    assert_eq!(report["consistent_pairs"], 1);
    // 3 tasks run per run, and 1 secret read each.
    assert_eq!(report["authorized_steps"], 8);
    assert!(report["decisions_reevaluated"].as_u64().unwrap() >= 20);
    assert!(report["digests_checked"].as_u64().unwrap() >= 6);

    // The record of the secret read names it, never its value.
    let log = std::fs::read_to_string(log_of(&s)).unwrap();
    assert!(log.contains(r#""kind":"secret-read","task":"first","attempt":1,"name":"token""#));
    assert!(!log.contains("tok-123-secret"));
    let shown = run_in(
        s.path(),
        &["audit", "show", "--kind", "secret-read", "--json"],
    );
    assert_eq!(shown.stdout.lines().count(), 2, "{}", shown.stdout);
}

#[test]
fn failures_skip_dependents_run_cleanup_and_refusals_are_audited() {
    let s = Scratch::new();
    chain(&s, "permanent");
    let failed = run(&s, &["--as", "alice", "--json"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let json = failed.json();
    let status: Vec<&str> = json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["succeeded", "failed", "skipped", "succeeded"]);
    assert_eq!(json["tasks"][2]["detail"], "upstream `second` failed");

    // Bob may not have the token: the whole run is refused, and audited.
    let refused = run(&s, &["--as", "bob"]);
    assert_eq!(refused.code, 3);
    assert_contains(&refused.stdout, "DENY      token-alice-only");
    let refused = run(&s, &["--as", "bob", "--json"]);
    assert_eq!(refused.code, 3);
    let json = refused.json();
    assert_eq!(json["status"], "refused");
    let denied: Vec<&serde_json::Value> = json["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "deny")
        .collect();
    assert_eq!(
        denied[0]["policies"],
        serde_json::json!(["token-alice-only"])
    );
    let shown = run_in(
        s.path(),
        &["audit", "show", "--kind", "run-finished", "--json"],
    );
    let statuses: Vec<String> = shown
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].to_string())
        .collect();
    assert_eq!(statuses, [r#""failed""#, r#""refused""#, r#""refused""#]);
    assert_verifies(&s);
}

#[test]
fn bad_input_leaves_the_audit_log_untouched() {
    let s = three_runs();
    let before = std::fs::read(log_of(&s)).unwrap();
    // A hostile component, a missing secret, an unknown secret flag.
    std::fs::write(s.path().join("bad.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    let manifest = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    s.write(
        "workflow.toml",
        &manifest.replacen(&format!("{:?}", cairn_tests::TASK), "\"bad.wasm\"", 1),
    );
    let hostile = run(&s, &["--as", "alice"]);
    assert_eq!(hostile.code, 2, "{}", hostile.stderr);
    assert_contains(&hostile.stderr, "task `first`");
    s.write("workflow.toml", &manifest);
    let out = crate::support::cairn()
        .current_dir(s.path())
        .args(["run", "--as", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        "secret `token` (task `first`)",
    );
    let unknown = run(&s, &["--as", "alice", "--secret", "nope=env:X"]);
    assert_eq!(unknown.code, 2);
    assert_eq!(std::fs::read(log_of(&s)).unwrap(), before);
}

/// Position of the first byte of each line.
fn starts(lines: &[&[u8]]) -> Vec<usize> {
    let mut at = 0;
    lines
        .iter()
        .map(|l| {
            let start = at;
            at += l.len();
            start
        })
        .collect()
}

#[test]
fn every_mutation_is_detected_and_the_first_bad_record_named() {
    let s = three_runs();
    let bytes = std::fs::read(log_of(&s)).unwrap();
    assert!(check(&s, &bytes).ok(), "{:?}", check(&s, &bytes).problems);
    let records = lines(&bytes);
    let n = records.len();
    let begins = starts(&records);
    let latest = std::fs::read_to_string(s.path().join(".cairn/audit/checkpoint")).unwrap();
    assert!(verify_against(&bytes, &key_of(&s), &Artifacts::default(), Some(&latest)).ok());
    let record_at = |offset: usize| begins.iter().rposition(|&b| b <= offset).unwrap();

    // A flipped bit in a dense sample of bytes (every byte of the first
    // records, then a stride), including newlines and the last byte.
    let stride = (bytes.len() / 600).max(1);
    let mut offsets: Vec<usize> = (0..begins[2]).collect();
    offsets.extend((begins[2]..bytes.len()).step_by(stride));
    offsets.push(bytes.len() - 1);
    for &offset in &offsets {
        let mut mutated = bytes.clone();
        mutated[offset] ^= 0x01;
        let report = check(&s, &mutated);
        let first = report
            .first()
            .unwrap_or_else(|| panic!("flip at {offset} undetected"));
        assert_eq!(
            first.record as usize,
            record_at(offset),
            "flip at {offset}: {first:?}"
        );
    }

    for i in 0..n {
        // Deleted.
        let without: Vec<u8> = records
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        let report = check(&s, &without);
        assert!(!report.ok(), "deleting record {i} undetected");
        if i + 1 < n {
            assert_eq!(report.first().unwrap().record as usize, i, "delete {i}");
        }
        // Duplicated.
        let mut twice = records.clone();
        twice.insert(i, records[i]);
        let report = check(&s, &twice.concat());
        assert_eq!(
            report.first().map(|p| p.record as usize),
            Some(i + 1),
            "duplicate {i}"
        );
        // Swapped with the next.
        if i + 1 < n {
            let mut swapped = records.clone();
            swapped.swap(i, i + 1);
            let report = check(&s, &swapped.concat());
            assert_eq!(
                report.first().map(|p| p.record as usize),
                Some(i),
                "swap {i}"
            );
        }
        // Truncated after it (a cut back to an older checkpoint is a valid
        // shorter log on its own: the checkpoint the auditor holds catches
        // it), or in its middle.
        if i + 1 < n {
            let cut = &bytes[..begins[i + 1]];
            let report = verify_against(cut, &key_of(&s), &Artifacts::default(), Some(&latest));
            assert_eq!(
                report.first().map(|p| p.record as usize),
                Some(i),
                "cut after {i}"
            );
        }
        let half = begins[i] + records[i].len() / 2;
        let report = check(&s, &bytes[..half]);
        assert_eq!(
            report.first().map(|p| p.record as usize),
            Some(i),
            "cut in {i}"
        );
    }
}

/// Re-encode record `i` of `bytes` after `change`, keeping its place in the
/// chain and its own hash right: a forger's edit.
fn forge(bytes: &[u8], i: usize, change: impl FnOnce(&mut Record)) -> Vec<u8> {
    let records = lines(bytes);
    let line = records[i].strip_suffix(b"\n").unwrap();
    let (mut record, _) = Record::decode(line).unwrap();
    change(&mut record);
    let mut forged = record.encode().unwrap();
    forged.push(b'\n');
    let mut out = Vec::new();
    for (j, l) in records.iter().enumerate() {
        out.extend_from_slice(if j == i { &forged } else { l });
    }
    out
}

#[test]
fn forged_decisions_foreign_checkpoints_and_other_keys_are_caught() {
    let s = three_runs();
    let bytes = std::fs::read(log_of(&s)).unwrap();
    let records = lines(&bytes);
    let position = |pred: &dyn Fn(&Event) -> bool| {
        records
            .iter()
            .position(|l| {
                pred(
                    &Record::decode(l.strip_suffix(b"\n").unwrap())
                        .unwrap()
                        .0
                        .event,
                )
            })
            .unwrap()
    };

    // A deny turned into an allow: re-evaluation disagrees.
    let denied = position(&|e| matches!(e, Event::Decision { decision, .. } if decision == "deny"));
    let forged = forge(&bytes, denied, |r| {
        if let Event::Decision { decision, .. } = &mut r.event {
            *decision = "allow".into();
        }
    });
    let report = check(&s, &forged);
    let first = report.first().unwrap();
    assert_eq!((first.record as usize, first.check), (denied, "decision"));
    assert_contains(
        &first.message,
        "the recorded policies decide deny by [token-alice-only]",
    );

    // The last checkpoint signed by another key.
    let last = records.len() - 1;
    let other = Signer::from_seed("audit", &[9; 32]);
    let forged = forge(&bytes, last, |r| {
        if let Event::Checkpoint { note, .. } = &mut r.event {
            let text = note.split("\n\n").next().unwrap().to_owned() + "\n";
            *note = other.sign_note(&text);
        }
    });
    let report = check(&s, &forged);
    let first = report.first().unwrap();
    assert_eq!((first.record as usize, first.check), (last, "signature"));

    // The whole log verified with another key.
    let report = verify(&bytes, &other.verifier(), &Artifacts::default());
    assert_eq!(report.first().unwrap().check, "signature");

    // A checkpoint from another log (same key) in place of this one's.
    let elsewhere = Scratch::new();
    chain(&elsewhere, "echo");
    std::fs::create_dir_all(elsewhere.path().join(".cairn/keys")).unwrap();
    for f in ["audit.key", "audit.pub"] {
        std::fs::copy(
            s.path().join(".cairn/keys").join(f),
            elsewhere.path().join(".cairn/keys").join(f),
        )
        .unwrap();
    }
    assert_eq!(run(&elsewhere, &["--as", "alice"]).code, 0);
    let theirs = std::fs::read(log_of(&elsewhere)).unwrap();
    let their_checkpoint = *lines(&theirs).last().unwrap();
    let first_checkpoint = position(&|e| matches!(e, Event::Checkpoint { .. }));
    let mut swapped = records.clone();
    swapped[first_checkpoint] = their_checkpoint;
    let report = check(&s, &swapped.concat());
    assert_eq!(report.first().unwrap().record as usize, first_checkpoint);

    // A changed artifact is caught by its digest.
    let store = s.path().join(".cairn/artifacts/sha256");
    let artifact = std::fs::read_dir(&store)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut perms = std::fs::metadata(&artifact).unwrap().permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "the test tampers on purpose"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&artifact, perms).unwrap();
    std::fs::write(&artifact, b"tampered").unwrap();
    let report = check(&s, &bytes);
    assert_eq!(report.first().unwrap().check, "digest");
    let cli = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(cli.code, 1);
    assert_contains(&cli.stderr, "the first bad record is");
}

struct Stored(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// A checkpoint checked as C2SP's signed-note and tlog-checkpoint specs
/// say, with nothing of Cairn's but the key's bytes: the text is origin,
/// size and root; one signature line `— <origin> base64(id || sig)`, the
/// id the first 4 bytes of SHA-256(name || "\n" || 0x01 || key), the
/// signature Ed25519 over the text.
fn from_spec_checkpoint(note: &str, origin: &str, key: &Verifier) {
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use sha2::Digest as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (text, signatures) = note.split_once("\n\n").unwrap();
    let text = format!("{text}\n");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], origin);
    assert!(lines[1].parse::<u64>().is_ok());
    assert_eq!(b64.decode(lines[2]).unwrap().len(), 32);
    let signatures: Vec<&str> = signatures.lines().collect();
    assert_eq!(signatures.len(), 1, "{note}");
    let (name, blob) = signatures[0]
        .strip_prefix("\u{2014} ")
        .unwrap()
        .split_once(' ')
        .unwrap();
    assert_eq!(name, origin, "the key name is the origin");
    let blob = b64.decode(blob).unwrap();
    assert_eq!(blob.len(), 68);
    let public = ed25519_dalek::VerifyingKey::from_public_key_pem(&key.pem()).unwrap();
    let mut id = sha2::Sha256::new();
    id.update(name.as_bytes());
    id.update(b"\n\x01");
    id.update(public.as_bytes());
    assert_eq!(blob[..4], id.finalize()[..4]);
    let signature = ed25519_dalek::Signature::from_slice(&blob[4..]).unwrap();
    public.verify(text.as_bytes(), &signature).unwrap();
}

#[test]
fn independent_implementations_accept_the_checkpoints_and_proofs() {
    let s = three_runs();
    let bytes = std::fs::read(log_of(&s)).unwrap();
    let key = key_of(&s);
    let records = lines(&bytes);
    // C2SP tlog-checkpoint: the key's name is the log's origin, so a
    // verifier is given the key under that name.
    let origin = records
        .iter()
        .find_map(
            |line| match Record::decode(line.strip_suffix(b"\n")?).ok()?.0.event {
                Event::LogOpened { origin, .. } => Some(origin),
                _ => None,
            },
        )
        .unwrap();
    assert!(origin.starts_with("cairn.local/audit/"), "{origin}");
    // The Go-derived signed-note and tlog implementations (Cloudflare's).
    let verifier = signed_note::StandardVerifier::new(&key.note_key_as(&origin)).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let mut storage = Stored(Vec::new());
    let mut leaves: Vec<Hash> = Vec::new();
    let mut checked = 0;
    for (i, line) in records.iter().enumerate() {
        let line = line.strip_suffix(b"\n").unwrap();
        let (record, _) = Record::decode(line).unwrap();
        if let Event::Checkpoint { note, size, .. } = &record.event {
            assert_eq!(*size as usize, i);
            from_spec_checkpoint(note, &origin, &key);
            let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
            parsed
                .verify(&list)
                .expect("signed_note accepts the checkpoint");
            let checkpoint = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
            assert_eq!(checkpoint.size(), i as u64);
            let theirs = tlog_tiles::tree_hash(i as u64, &storage).unwrap();
            assert_eq!(
                checkpoint.hash().0,
                theirs.0,
                "tlog_tiles root of {i} records"
            );
            // Our inclusion proofs check out with theirs.
            for (index, leaf) in leaves.iter().enumerate().step_by(3) {
                let proof: Vec<tlog_tiles::Hash> = merkle::inclusion_proof(&leaves, index)
                    .unwrap()
                    .into_iter()
                    .map(tlog_tiles::Hash)
                    .collect();
                tlog_tiles::check_record(
                    &proof,
                    i as u64,
                    theirs,
                    index as u64,
                    tlog_tiles::Hash(*leaf),
                )
                .unwrap();
            }
            checked += 1;
        }
        let hashes = tlog_tiles::stored_hashes(i as u64, line, &storage).unwrap();
        storage.0.extend(hashes);
        leaves.push(merkle::leaf_hash(line));
    }
    assert_eq!(checked, 3);
}

#[test]
fn openssl_and_python_cryptography_read_the_keys_and_cairn_reads_theirs() {
    let test = "openssl_and_python_cryptography_read_the_keys_and_cairn_reads_theirs";
    let s = Scratch::new();
    let made = run_in(s.path(), &["keygen", "--out", "keys"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let public = std::fs::read(s.path().join("keys/audit.pub")).unwrap();
    let ours = Verifier::load(&s.path().join("keys/audit.pub")).unwrap();
    std::fs::write(s.path().join("message"), b"a message to sign").unwrap();

    let Some(openssl) = crate::toolchains::on_path("openssl") else {
        crate::toolchains::skip(test, "openssl", "apt-get install openssl");
        return;
    };
    // OpenSSL reads the private key, derives the same public key, and
    // signs with it what Cairn verifies.
    let derived = tool_in(
        s.path(),
        &openssl,
        &["pkey", "-in", "keys/audit.key", "-pubout"],
    );
    assert_eq!(
        String::from_utf8(derived).unwrap(),
        String::from_utf8(public).unwrap()
    );
    let text = tool_in(
        s.path(),
        &openssl,
        &["pkey", "-in", "keys/audit.key", "-noout", "-text"],
    );
    assert!(String::from_utf8_lossy(&text).contains("ED25519 Private-Key"));
    let signature = tool_in(
        s.path(),
        &openssl,
        &[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            "keys/audit.key",
            "-in",
            "message",
        ],
    );
    assert!(ours.verify_raw(b"a message to sign", &signature));
    // And Cairn signs checkpoints with a key pair OpenSSL made.
    tool_in(
        s.path(),
        &openssl,
        &["genpkey", "-algorithm", "ed25519", "-out", "theirs.key"],
    );
    tool_in(
        s.path(),
        &openssl,
        &["pkey", "-in", "theirs.key", "-pubout", "-out", "theirs.pub"],
    );
    let signer = Signer::load(&s.path().join("theirs.key")).unwrap();
    let theirs = Verifier::load(&s.path().join("theirs.pub")).unwrap();
    let note = signer.sign_checkpoint("cairn.local/audit/t", 1, &[0; 32]);
    assert!(theirs.open_note(&note).is_ok());

    let Some(python) = crate::toolchains::python_with(test, "cryptography", "cryptography==48.0.0")
    else {
        return;
    };
    let script = r#"
import sys
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open("keys/audit.key", "rb").read(), password=None)
pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
assert pub == open("keys/audit.pub", "rb").read(), pub
sys.stdout.buffer.write(key.sign(b"a message to sign"))
"#;
    let signature = tool_in(s.path(), &python, &["-c", script]);
    assert!(ours.verify_raw(b"a message to sign", &signature));
}

#[test]
fn keygen_refuses_to_overwrite_and_a_torn_tail_is_recorded() {
    let s = Scratch::new();
    let made = run_in(s.path(), &["keygen", "--out", "keys"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(made.stdout.starts_with("audit+"));
    let again = run_in(s.path(), &["keygen", "--out", "keys"]);
    assert_eq!(again.code, 2);
    assert_contains(&again.stderr, "already exists");
    assert!(!again.stderr.contains("PRIVATE"));

    // A crash mid-write leaves a partial record: the next run moves it
    // aside, records that, and the log verifies.
    chain(&s, "echo");
    assert_eq!(
        run(&s, &["--as", "alice", "--key", "keys/audit.key"]).code,
        0
    );
    let log = log_of(&s);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"v":1,"seq":99,"time":"2026"#);
    std::fs::write(&log, &bytes).unwrap();
    let torn = run_in(s.path(), &["audit", "verify", "--key", "keys/audit.pub"]);
    assert_eq!(torn.code, 1);
    assert_contains(&torn.stderr, "the log ends in the middle of it");
    assert_eq!(
        run(&s, &["--as", "alice", "--key", "keys/audit.key"]).code,
        0
    );
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", "keys/audit.pub", "--json"],
    );
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    assert_eq!(verified.json()["torn_tails"], 1);
    let saved: Vec<PathBuf> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        std::fs::read(&saved[0]).unwrap(),
        br#"{"v":1,"seq":99,"time":"2026"#
    );
}

#[test]
fn an_exported_bundle_verifies_alone_and_single_records_are_proven() {
    let s = three_runs();
    let shown = run_in(
        s.path(),
        &["audit", "show", "--kind", "run-started", "--json"],
    );
    let first_run: serde_json::Value =
        serde_json::from_str(shown.stdout.lines().next().unwrap()).unwrap();
    let run_id = first_run["run"].as_str().unwrap();
    let out = run_in(s.path(), &["audit", "export", run_id, "--out", "bundle"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for file in [
        "log.jsonl",
        "checkpoint",
        "key.pub",
        "workflow.toml",
        "entities.json",
        "policies/rules.cedar",
        "provenance.dsse.json",
        "SHA256SUMS",
    ] {
        assert!(s.path().join("bundle").join(file).is_file(), "{file}");
    }
    // An auditor with only the bundle and their copy of the public key.
    let auditor = Scratch::new();
    std::fs::copy(
        s.path().join(".cairn/keys/audit.pub"),
        auditor.path().join("trusted.pub"),
    )
    .unwrap();
    let bundle = s.path().join("bundle");
    let verified = run_in(
        auditor.path(),
        &[
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            "trusted.pub",
            "--json",
        ],
    );
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    let report = verified.json();
    // `third.echo`; `first.echo` and `second.echo` fed the next task.
    assert_eq!(report["provenance_subjects"], 1);
    assert_eq!(report["digests_absent"], 0);

    // Provenance naming another output is refused.
    let path = bundle.join("provenance.dsse.json");
    let mut envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    envelope["payload"] = serde_json::json!("eyJfdHlwZSI6ICJ4In0=");
    std::fs::write(&path, envelope.to_string()).unwrap();
    let tampered = run_in(
        auditor.path(),
        &[
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            "trusted.pub",
        ],
    );
    assert_eq!(tampered.code, 1);
    assert_contains(&tampered.stdout, "provenance.dsse.json");

    // No such record: a plain error, whatever the number.
    for seq in ["18446744073709551615", "100000"] {
        let none = run_in(s.path(), &["audit", "prove", seq]);
        assert_eq!(none.code, 2, "{}", none.stderr);
        assert_contains(&none.stderr, "no checkpoint covers it yet");
    }

    // One record, proven on its own.
    let proof = run_in(s.path(), &["audit", "prove", "4"]);
    assert_eq!(proof.code, 0, "{}", proof.stderr);
    std::fs::write(auditor.path().join("p.json"), &proof.stdout).unwrap();
    let checked = run_in(
        auditor.path(),
        &["audit", "check-proof", "p.json", "--key", "trusted.pub"],
    );
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert_contains(&checked.stdout, r#""seq":4"#);
    let forged = proof.stdout.replacen(r#"\"seq\":4"#, r#"\"seq\":5"#, 1);
    assert_ne!(forged, proof.stdout);
    std::fs::write(auditor.path().join("p.json"), forged).unwrap();
    let refused = run_in(
        auditor.path(),
        &["audit", "check-proof", "p.json", "--key", "trusted.pub"],
    );
    assert_eq!(refused.code, 1);
    assert_contains(&refused.stderr, "is not in the signed tree");
}

#[test]
fn a_reader_that_stops_early_does_not_crash_cairn() {
    let s = three_runs();
    let mut child = crate::support::cairn()
        .current_dir(s.path())
        .args(["audit", "show", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -n 0`: the reader goes away before cairn writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // As a shell reports a reader gone (SIGPIPE).
    assert_eq!(out.status.code(), Some(141), "{stderr}");

    // The same for every command's output, e.g. a plan.
    let mut child = crate::support::cairn()
        .current_dir(s.path())
        .args(["plan", "--as", "alice", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn the_hello_example_runs_under_its_policies() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let s = Scratch::new();
    s.mkdir("policies");
    for file in ["policies/hello.cedar", "policies/people.entities.json"] {
        std::fs::copy(example.join(file), s.path().join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(example.join("workflow.toml"))
        .unwrap()
        .replace(
            "\"../../target/wasm32-wasip2/release/hello.wasm\"",
            &format!("{:?}", cairn_tests::HELLO),
        );
    s.write("workflow.toml", &manifest);
    let ok = run_in(s.path(), &["run", "--as", "demo", "--json"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.json()["tasks"][0]["outputs"][0]["name"], "greeting");
    let refused = run_in(s.path(), &["run", "--as", "eve"]);
    assert_eq!(refused.code, 3);
    assert_contains(
        &refused.stdout,
        "run, started by eve      DENY      no policy permits",
    );
    assert_verifies(&s);
}

#[test]
fn independent_tasks_run_in_parallel_up_to_jobs() {
    let s = Scratch::new();
    s.policies();
    let sleeper = |name: &str| {
        format!(
            "[tasks.{name}]\ncomponent = {:?}\nenv = {{ MODE = \"sleep\", SLEEP_MS = \"1000\" }}\noutputs = [\"echo\"]\n",
            cairn_tests::TASK
        )
    };
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"naps\"\npolicies = [\"p\"]\n{}{}",
            sleeper("a"),
            sleeper("b")
        ),
    );
    let took = |jobs: &str| {
        let run = run_in(
            s.path(),
            &["run", "--as", "alice", "--jobs", jobs, "--json"],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["duration_ms"].as_f64().unwrap()
    };
    // Two one-second sleeps: about one second side by side, two in a row.
    let parallel = took("2");
    let serial = took("1");
    assert!(parallel < 1800.0, "--jobs 2 took {parallel} ms");
    assert!(serial >= 2000.0, "--jobs 1 took {serial} ms");
    assert_verifies(&s);
}

#[test]
fn ctrl_c_stops_the_run_and_signs_what_happened() {
    let s = Scratch::new();
    s.policies();
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"long\"\npolicies = [\"p\"]\n[tasks.nap]\ncomponent = {:?}\n\
             env = {{ MODE = \"sleep\", SLEEP_MS = \"20000\" }}\noutputs = [\"echo\"]\n",
            cairn_tests::TASK
        ),
    );
    let child = crate::support::cairn()
        .current_dir(s.path())
        .args(["run", "--as", "alice"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the task has started, then interrupt as a terminal would.
    let log = log_of(&s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("task-started")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the task never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_contains(&stderr, "stopped by Ctrl-C");
    let shown = run_in(
        s.path(),
        &["audit", "show", "--kind", "run-finished", "--json"],
    );
    assert_contains(&shown.stdout, r#""status":"cancelled""#);
    assert_verifies(&s);
}

#[test]
fn runs_lists_shows_and_prints_logs_of_past_runs() {
    let s = three_runs();
    let list = run_in(s.path(), &["runs", "list", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let runs = list.json();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(statuses, ["refused", "failed", "succeeded"]);
    let failed = runs[1]["id"].as_str().unwrap();
    let show = run_in(s.path(), &["runs", "show", failed, "--json"]);
    let tasks = &show.json()["tasks"];
    assert_eq!(tasks[1]["task"], "second");
    assert_eq!(tasks[1]["status"], "failed");
    assert_eq!(tasks[2]["detail"], "upstream `second` failed");
    let logs = run_in(s.path(), &["runs", "logs", failed, "first"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert_contains(&logs.stdout, "stdout: token is ***");
    assert!(!logs.stdout.contains("tok-123-secret"));
    let missing = run_in(s.path(), &["runs", "show", "nope"]);
    assert_eq!(missing.code, 2);
    assert_contains(
        &missing.stderr,
        "`cairn runs list` shows the runs there are",
    );
    let nowhere = run_in(s.path(), &["runs", "list", "--state-dir", "elsewhere"]);
    assert_eq!(nowhere.code, 2);
    assert!(!s.path().join("elsewhere").exists());
}

#[test]
fn retriable_failures_are_retried_and_permanent_ones_are_not() {
    let s = Scratch::new();
    s.policies();
    let task = |name: &str, mode: &str| {
        format!(
            "[tasks.{name}]\ncomponent = {:?}\nenv = {{ MODE = \"{mode}\" }}\n\
             retries = {{ max = 2, backoff = \"fixed\", initial = \"10ms\", jitter = false }}\n",
            cairn_tests::TASK
        )
    };
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"flaky\"\npolicies = [\"p\"]\n{}{}",
            task("flaky", "transient"),
            task("broken", "permanent")
        ),
    );
    let run = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["tasks"][0]["attempts"], 3);
    assert_eq!(json["tasks"][1]["attempts"], 1);
    let retries = run_in(s.path(), &["audit", "show", "--kind", "retry", "--json"]);
    assert_eq!(retries.stdout.lines().count(), 2, "{}", retries.stdout);
    assert_contains(&retries.stdout, r#""delay_ms":10"#);
    assert_verifies(&s);
}
