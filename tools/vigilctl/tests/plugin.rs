//! `vigilctl plugin …` through the built binary, without a broker: keygen,
//! sign, verify and the local harness (`plugin run`) with the plugins built
//! in `plugins/` (`cargo xtask plugins` builds them for wasm32-wasip2).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A built plugin component.
fn component(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: build the plugins first (cargo xtask plugins)", path.display());
    path
}

/// The result of one run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `vigilctl` in `dir` with a clean environment; no broker is involved.
fn vigilctl(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_vigilctl"))
        .current_dir(dir)
        .args(args)
        .env_remove("VIGIL_BROKER")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("vigilctl runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("vigilctl {args:?} -> {}\n--- stdout\n{}--- stderr\n{}", run.code, run.stdout, run.stderr);
    run
}

const MANIFEST: &str = r#"{
    "name": "template",
    "version": "0.1.0",
    "wit": "0.1.0",
    "description": "the SDK's template",
    "actions": ["*"],
    "capabilities": {"network": [], "serial": [], "data": false},
    "config_schema": {"type": "object"}
}"#;

/// Makes a key, returning its `ed25519:<hex>` and key id as printed.
fn keygen(dir: &Path, file: &str) -> (String, String) {
    let run = vigilctl(dir, &["plugin", "keygen", "-o", file]);
    assert_eq!(run.code, 0);
    let field = |prefix: &str| {
        let line = run.stdout.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix}"));
        line.trim().to_string()
    };
    (field("public key:"), field("key id:"))
}

/// Signs `wasm` with the test manifest into `package`.
fn sign(dir: &Path, wasm: &str, key: &str, package: &str) -> Run {
    std::fs::write(dir.join("manifest.json"), MANIFEST).unwrap();
    let component = component(wasm);
    let args =
        ["plugin", "sign", "--manifest", "manifest.json", "--component", path(&component), "-k", key, "-o", package];
    vigilctl(dir, &args)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (public, id) = keygen(dir.path(), "signing.key");
    assert!(public.starts_with("ed25519:") && public.len() == 8 + 64, "{public}");
    assert_eq!(id.len(), 16, "{id}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("signing.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = vigilctl(dir.path(), &["plugin", "keygen", "-o", "signing.key"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("never overwritten"), "{}", again.stderr);
}

#[test]
fn a_signed_package_verifies_only_against_its_key_and_contents() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (public, id) = keygen(d, "signing.key");
    let (other, _) = keygen(d, "other.key");
    let signed = sign(d, "vigil_plugin_template", "signing.key", "template.vpk");
    assert_eq!(signed.code, 0);
    assert!(signed.stdout.contains("signed template 0.1.0 (") && signed.stdout.contains(&id), "{}", signed.stdout);

    let trusted = vigilctl(d, &["plugin", "verify", "template.vpk", "--trust", &other, "--trust", &public]);
    assert_eq!(trusted.code, 0);
    assert!(trusted.stdout.contains("plugin template 0.1.0 (vigil:plugin@0.1.0)"), "{}", trusted.stdout);
    assert!(trusted.stdout.contains(&format!("signed by {id}: trusted")), "{}", trusted.stdout);

    let untrusted = vigilctl(d, &["plugin", "verify", "template.vpk", "--trust", &other]);
    assert_eq!(untrusted.code, 1);
    assert!(untrusted.stderr.contains(&format!("signed by an untrusted key {id}")), "{}", untrusted.stderr);

    let mut bytes = std::fs::read(d.join("template.vpk")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(d.join("tampered.vpk"), bytes).unwrap();
    let tampered = vigilctl(d, &["plugin", "verify", "tampered.vpk", "--trust", &public]);
    assert_eq!(tampered.code, 1);
    assert!(tampered.stderr.contains("does not match its contents"), "{}", tampered.stderr);

    let bad_key = vigilctl(d, &["plugin", "verify", "template.vpk", "--trust", "abcd"]);
    assert_eq!(bad_key.code, 2, "a key without ed25519: is a usage error");
}

#[test]
fn sign_refuses_an_invalid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "signing.key");
    let component = component("vigil_plugin_template");
    for (manifest, needle) in [
        (MANIFEST.replace("\"template\"", "\"Template\""), "must be 1 to 64 characters"),
        (MANIFEST.replace("\"wit\": \"0.1.0\"", "\"wit\": \"9.9.9\""), "wit \"9.9.9\""),
        (MANIFEST.replace("[\"*\"]", "[\"dance\"]"), "unknown action \"dance\""),
        (MANIFEST.replace("\"serial\"", "\"usb\""), "unknown field `usb`"),
    ] {
        std::fs::write(d.join("bad.json"), manifest).unwrap();
        let args = [
            "plugin",
            "sign",
            "--manifest",
            "bad.json",
            "--component",
            path(&component),
            "-k",
            "signing.key",
            "-o",
            "x.vpk",
        ];
        let run = vigilctl(d, &args);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
        assert!(!d.join("x.vpk").exists());
    }
}

#[test]
fn run_shows_what_the_template_plugin_did() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (public, _) = keygen(d, "signing.key");
    assert_eq!(sign(d, "vigil_plugin_template", "signing.key", "template.vpk").code, 0);

    let raised = vigilctl(d, &["plugin", "run", "template.vpk", "--event", "raised", "--trust", &public]);
    assert_eq!(raised.code, 0);
    assert!(raised.stdout.contains("installed template 0.1.0"), "{}", raised.stdout);
    assert!(raised.stdout.contains(r#"status: {"incidents_seen":1,"last":"raised incident 1"#), "{}", raised.stdout);
    assert!(raised.stdout.contains("state: running"), "{}", raised.stdout);
    assert!(raised.stdout.contains("metrics: calls 2, errors 0, traps 0"), "{}", raised.stdout);
    assert!(
        raised.stderr.contains("camera hall-1 \"Main hall\" at A/1/main-hall"),
        "the plugin's log: {}",
        raised.stderr
    );
    assert!(raised.stderr.contains("template"), "log lines carry the plugin's name: {}", raised.stderr);

    let action = vigilctl(
        d,
        &["plugin", "run", "template.vpk", "--event", "action", "--action", "lockdown", "--trust-any", "--drill"],
    );
    assert_eq!(action.code, 0);
    assert!(action.stdout.contains("trusted because of --trust-any"), "{}", action.stdout);
    assert!(action.stdout.contains("action activate:lockdown: done: logged by template"), "{}", action.stdout);
    assert!(action.stdout.contains("status: {"), "{}", action.stdout);
    assert!(action.stderr.contains("by operator:vigilctl"), "{}", action.stderr);
    assert!(action.stderr.contains("[DRILL]"), "{}", action.stderr);

    let json = vigilctl(d, &["plugin", "run", "template.vpk", "--event", "all-clear", "--trust-any", "--json"]);
    assert_eq!(json.code, 0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["result"]["result"], "done");
    assert_eq!(v["directive"], "all-clear");
    assert_eq!(v["metrics"]["traps"], 0);

    let untrusted =
        vigilctl(d, &["plugin", "run", "template.vpk", "--event", "raised", "--trust", &keygen(d, "o.key").0]);
    assert_eq!(untrusted.code, 1);
    assert!(untrusted.stderr.contains("untrusted key"), "{}", untrusted.stderr);

    let stray = vigilctl(d, &["plugin", "run", "template.vpk", "--event", "raised", "--action", "hold", "--trust-any"]);
    assert_eq!(stray.code, 2);
}

#[test]
fn run_refuses_a_plugin_whose_init_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "signing.key");
    assert_eq!(sign(d, "vigil_test_bad_init", "signing.key", "bad.vpk").code, 0);
    let run = vigilctl(d, &["plugin", "run", "bad.vpk", "--event", "raised", "--trust-any"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("refused: bad.vpk: plugin template failed its health check"), "{}", run.stderr);
}

#[test]
fn install_refuses_a_package_too_big_to_send_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("huge.vpk"), vec![0u8; vigil_uplink::command::MAX_UPLOAD + 1]).unwrap();
    // No broker listens on this port: the size is checked first.
    let run = vigilctl(dir.path(), &["--broker", "mqtt://127.0.0.1:9", "plugin", "install", "d", "huge.vpk"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("a device accepts packages up to"), "{}", run.stderr);
}
