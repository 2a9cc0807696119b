//! The plugin host against real components (`plugins/testing/*`), each
//! packaged and signed here. Build them first:
//! `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use vigil_plugins::package::{self, Capabilities, Manifest};
use vigil_plugins::{
    ActionRequest, ActionResult, Directive, Event, Grant, HostConfig, Incident, InstallError, Limits, PackageError,
    PluginHost, PluginInfo, PluginState, SrpAction,
};

fn wasm(component: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release")
        .join(format!("{component}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the test components with \
             `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`",
            path.display()
        )
    })
}

fn manifest(name: &str, version: &str, network: &[&str], data: bool) -> Manifest {
    Manifest {
        name: name.into(),
        version: version.into(),
        wit: "0.1.0".into(),
        description: format!("test plugin {name}"),
        actions: vec!["*".into()],
        capabilities: Capabilities {
            network: network.iter().map(|s| s.to_string()).collect(),
            serial: Vec::new(),
            data,
        },
        config_schema: serde_json::Value::Null,
    }
}

struct Fixture {
    key: SigningKey,
    state: tempfile::TempDir,
    config: HostConfig,
}

impl Fixture {
    fn new(limits: Limits) -> Fixture {
        let (key, trusted) = package::keygen();
        let state = tempfile::tempdir().unwrap();
        let config = HostConfig {
            state_dir: state.path().to_path_buf(),
            trusted_keys: vec![trusted],
            limits,
            grants: BTreeMap::new(),
        };
        Fixture { key, state, config }
    }

    fn host(&self) -> PluginHost {
        PluginHost::new(self.config.clone()).unwrap()
    }

    fn package(&self, component: &str, manifest: &Manifest) -> Vec<u8> {
        package::build(manifest, &wasm(component), &self.key)
    }
}

fn request(id: u64, action: SrpAction) -> ActionRequest {
    ActionRequest {
        incident: Incident { id, camera: "cam-1".into(), label: "handgun".into(), score: 0.9, ..Default::default() },
        directive: Directive::Activate(action),
        actor: "system".into(),
    }
}

/// Dispatches a lockdown and returns the results in the order they arrived.
fn act(host: &PluginHost, id: u64) -> Vec<(String, ActionResult)> {
    act_with(host, &request(id, SrpAction::Lockdown))
}

fn act_with(host: &PluginHost, request: &ActionRequest) -> Vec<(String, ActionResult)> {
    let results = Arc::new(Mutex::new(Vec::new()));
    let sink = results.clone();
    host.dispatch_action(request, move |name, result| sink.lock().unwrap().push((name.to_string(), result))).wait();
    Arc::try_unwrap(results).unwrap().into_inner().unwrap()
}

fn result_of<'a>(results: &'a [(String, ActionResult)], name: &str) -> &'a ActionResult {
    &results.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no result from {name}: {results:?}")).1
}

fn failed(result: &ActionResult) -> &str {
    match result {
        ActionResult::Failed(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn info(host: &PluginHost, name: &str) -> PluginInfo {
    host.list().into_iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} is not listed"))
}

/// Polls until `name`'s state satisfies `ok` (10 s at most).
fn wait_state(host: &PluginHost, name: &str, ok: impl Fn(&PluginState) -> bool) -> PluginInfo {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let info = info(host, name);
        if ok(&info.state) {
            return info;
        }
        assert!(Instant::now() < give_up, "{name} stuck in {}", info.state);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks for a Hold, which only `good` (subscribed to everything) hears in the
/// hostile test, so the check itself crashes nobody.
fn assert_good_answers(host: &PluginHost, id: u64) {
    let results = act_with(host, &request(id, SrpAction::Hold));
    assert_eq!(result_of(&results, "good"), &ActionResult::Done(format!("ok {id}")), "{results:?}");
}

#[test]
fn hostile_plugins_crash_alone_and_the_good_one_keeps_answering() {
    let granted_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let granted = granted_listener.local_addr().unwrap().to_string();
    let other_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let not_granted = other_listener.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("readme.txt"), "hello").unwrap();

    let mut fixture = Fixture::new(Limits::default());
    let grants = &mut fixture.config.grants;
    grants.insert(
        "netcat-ok".into(),
        Grant { network: vec![granted.clone()], config: serde_json::json!({ "connect": granted }), ..Grant::default() },
    );
    grants.insert(
        "netcat-denied".into(),
        Grant {
            network: vec![granted.clone()],
            config: serde_json::json!({ "connect": not_granted }),
            ..Grant::default()
        },
    );
    grants.insert("snoop".into(), Grant { data_dir: Some(data.path().to_path_buf()), ..Grant::default() });
    let host = fixture.host();

    host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();
    for (component, name) in [
        ("vigil_test_spin", "spin"),
        ("vigil_test_hog", "hog"),
        ("vigil_test_deep", "deep"),
        ("vigil_test_panicky", "panicky"),
    ] {
        let mut lockdown_only = manifest(name, "1.0.0", &[], false);
        lockdown_only.actions = vec!["lockdown".into()];
        host.install(&fixture.package(component, &lockdown_only)).unwrap();
    }
    let ok = host.install(&fixture.package("vigil_test_netcat", &manifest("netcat-ok", "1.0.0", &[&granted], false)));
    assert_eq!(ok.unwrap().granted.network, vec![granted.clone()]);
    let denied = host
        .install(&fixture.package("vigil_test_netcat", &manifest("netcat-denied", "1.0.0", &[&not_granted], false)))
        .unwrap();
    assert_eq!(denied.denied, vec![format!("network {not_granted}")]);
    let snoop = host.install(&fixture.package("vigil_test_snoop", &manifest("snoop", "1.0.0", &[], true))).unwrap();
    assert!(snoop.granted.data);

    let results = act(&host, 1);
    assert_eq!(results.len(), 8, "{results:?}");
    assert_eq!(result_of(&results, "good"), &ActionResult::Done("ok 1".into()));
    assert_eq!(failed(result_of(&results, "spin")), "timed out after 2 s");
    let hog = failed(result_of(&results, "hog"));
    assert!(hog.contains("memory limit exceeded") && hog.contains("limit is 64 MiB"), "{hog}");
    // Rust's shadow stack lives in linear memory, so runaway recursion
    // usually overruns it (out of bounds) before the native stack guard.
    let deep = failed(result_of(&results, "deep"));
    assert!(deep == "trapped: stack overflow" || deep.contains("out of bounds memory access"), "{deep}");
    assert!(failed(result_of(&results, "panicky")).contains("unreachable"), "{results:?}");
    assert_eq!(result_of(&results, "netcat-ok"), &ActionResult::Done("connected".into()));
    let refused = failed(result_of(&results, "netcat-denied"));
    assert!(refused.starts_with(&format!("cannot connect to {not_granted}")), "{refused}");
    let ActionResult::Done(findings) = result_of(&results, "snoop") else { panic!("{results:?}") };
    let findings: serde_json::Value = serde_json::from_str(findings).unwrap();
    assert_eq!(
        findings,
        serde_json::json!({ "etc_passwd": false, "dotdot": false, "data_read": true, "data_write": false })
    );
    assert_eq!(info(&host, "netcat-denied").metrics.denied_connects, 1);
    assert_eq!(info(&host, "netcat-ok").metrics.denied_connects, 0);

    // The good plugin answers while the others are restarting...
    assert_good_answers(&host, 2);
    for name in ["spin", "hog", "deep", "panicky"] {
        let info = wait_state(&host, name, |s| *s == PluginState::Running);
        assert_eq!((info.metrics.traps, info.metrics.restarts), (1, 1), "{name}: {info:?}");
    }
    let good = info(&host, "good");
    assert_eq!((good.state, good.metrics.traps, good.metrics.errors), (PluginState::Running, 0, 0));
    assert_eq!(
        good.status.as_deref(),
        Some(r#"{"calls":3}"#),
        "init, two actions (the health check's copy is thrown away)"
    );

    // ...and when events and ticks make the panicky one crash again.
    host.dispatch_event(&Event::Raised(request(3, SrpAction::Lockdown).incident));
    let panicky = wait_state(&host, "panicky", |s| matches!(s, PluginState::Restarting { .. }));
    assert!(panicky.state.to_string().starts_with("restarting: trapped: "), "{}", panicky.state);
    assert_good_answers(&host, 4);
    wait_state(&host, "panicky", |s| *s == PluginState::Running);
    host.tick();
    wait_state(&host, "panicky", |s| matches!(s, PluginState::Restarting { .. }));
    assert_good_answers(&host, 5);
    assert_eq!(info(&host, "panicky").metrics.traps, 3);
}

#[test]
fn refused_packages_are_reported_precisely_and_change_nothing() {
    let fixture = Fixture::new(Limits::default());
    let host = fixture.host();
    host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();

    let err = host.install(&fixture.package("vigil_test_bad_init", &manifest("bad-init", "1.0.0", &[], false)));
    let err = err.unwrap_err();
    assert!(matches!(err, InstallError::HealthCheck { .. }), "{err}");
    assert!(err.to_string().starts_with("plugin bad-init failed its health check: init crashed: trapped: "), "{err}");

    let good = wasm("vigil_test_good");
    let mut unsigned = package::build(&manifest("unsigned", "1.0.0", &[], false), &good, &fixture.key);
    let n = unsigned.len();
    unsigned[n - 96..].fill(0);
    assert!(matches!(host.install(&unsigned), Err(InstallError::Package(PackageError::Unsigned))));

    let (stranger, stranger_public) = package::keygen();
    let foreign = package::build(&manifest("foreign", "1.0.0", &[], false), &good, &stranger);
    let err = host.install(&foreign).unwrap_err().to_string();
    assert!(err.contains(&package::key_id(&stranger_public)) && err.contains("untrusted key"), "{err}");

    let mut tampered = fixture.package("vigil_test_good", &manifest("tampered", "1.0.0", &[], false));
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x55;
    assert!(matches!(host.install(&tampered), Err(InstallError::Package(PackageError::BadSignature))));

    let err = host
        .install(&fixture.package("vigil_test_wrong_version", &manifest("wrong-version", "1.0.0", &[], false)))
        .unwrap_err();
    assert_eq!(err.to_string(), "plugin wrong-version is built for vigil:plugin@9.0.0; this host supports 0.1.0");
    let mut future = manifest("future", "1.0.0", &[], false);
    future.wit = "9.0.0".into();
    let err = host.install(&fixture.package("vigil_test_good", &future)).unwrap_err();
    assert_eq!(err.to_string(), "plugin future is built for vigil:plugin@9.0.0; this host supports 0.1.0");

    assert!(host.install(b"\0asm garbage").is_err());
    let names: Vec<String> = host.list().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["good"]);
    assert_good_answers(&host, 1);
}

#[test]
fn upgrade_keeps_v1_when_v2_fails_its_health_check_and_rollback_restores_it() {
    let fixture = Fixture::new(Limits::default());
    let host = fixture.host();
    let v1 = host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();
    assert_eq!(v1.replaced, None);

    let broken = host.install(&fixture.package("vigil_test_bad_init", &manifest("good", "2.0.0", &[], false)));
    assert!(matches!(broken, Err(InstallError::HealthCheck { .. })));
    assert_eq!(info(&host, "good").version, "1.0.0");
    assert_good_answers(&host, 1);

    let v2 = host.install(&fixture.package("vigil_test_good", &manifest("good", "2.0.0", &[], false))).unwrap();
    assert_eq!(v2.replaced.as_deref(), Some("1.0.0"));
    wait_state(&host, "good", |s| *s == PluginState::Running);
    assert_eq!(info(&host, "good").version, "2.0.0");
    assert_good_answers(&host, 2);

    let back = host.rollback("good").unwrap();
    assert_eq!((back.version.as_str(), back.replaced.as_deref()), ("1.0.0", Some("2.0.0")));
    assert_eq!(info(&host, "good").version, "1.0.0");
    assert_good_answers(&host, 3);
    assert_eq!(host.rollback("good").unwrap().version, "2.0.0", "a second rollback undoes the first");
    assert!(matches!(host.rollback("nobody"), Err(InstallError::NoPrevious(_))));

    host.disable("good").unwrap();
    assert_eq!(info(&host, "good").state.to_string(), "disabled: disabled by an operator");
    let results = act(&host, 4);
    assert_eq!(failed(result_of(&results, "good")), "plugin is disabled: disabled by an operator");
    // Disabled stays disabled when the host restarts, until an operator enables it.
    drop(host);
    let host = fixture.host();
    host.load_installed();
    assert_eq!(info(&host, "good").state.to_string(), "disabled: disabled by an operator");
    host.enable("good").unwrap();
    wait_state(&host, "good", |s| *s == PluginState::Running);
    assert_good_answers(&host, 5);
    host.remove("good").unwrap();
    assert!(host.list().is_empty());
    assert!(matches!(host.remove("good"), Err(InstallError::NotInstalled(_))));
}

#[test]
fn installed_plugins_and_their_store_survive_a_restart() {
    let fixture = Fixture::new(Limits::default());
    {
        let host = fixture.host();
        host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();
        assert_good_answers(&host, 1);
        assert_eq!(info(&host, "good").status.as_deref(), Some(r#"{"calls":2}"#), "init, action");
    }
    let host = fixture.host();
    let loaded = host.load_installed();
    assert!(loaded.iter().all(|(_, r)| r.is_ok()), "{loaded:?}");
    assert_eq!(loaded.len(), 1);
    assert!(fixture.state.path().join("plugins/good/current/component.cwasm").exists());
    assert_good_answers(&host, 2);
    assert_eq!(
        info(&host, "good").status.as_deref(),
        Some(r#"{"calls":4}"#),
        "the KV count carried over (2 + init + action)"
    );

    // A key no longer trusted refuses the installed package at the next start.
    let mut untrusting = fixture.config.clone();
    untrusting.trusted_keys = vec![package::keygen().1];
    drop(host);
    let host = PluginHost::new(untrusting).unwrap();
    let loaded = host.load_installed();
    assert!(matches!(loaded[0].1, Err(InstallError::Package(PackageError::UntrustedKey { .. }))));
    assert!(host.list().is_empty());
}

#[test]
fn a_slow_plugin_never_delays_the_good_one() {
    let fixture = Fixture::new(Limits { call_deadline: Duration::from_secs(5), ..Limits::default() });
    let host = fixture.host();
    host.install(&fixture.package("vigil_test_slow", &manifest("slow", "1.0.0", &[], false))).unwrap();
    host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();
    let results = act(&host, 7);
    let order: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(order, ["good", "slow"], "{results:?}");
    assert_eq!(results[0].1, ActionResult::Done("ok 7".into()));
    assert_eq!(results[1].1, ActionResult::Done("slept 2000 ms".into()));
    let slow = info(&host, "slow");
    assert!(slow.metrics.last_latency_us >= 1_900_000, "{slow:?}");
}

#[test]
fn five_crashes_within_five_minutes_disable_a_plugin() {
    let limits = Limits { restart_backoff: Duration::from_millis(5), ..Limits::default() };
    let fixture = Fixture::new(limits);
    let host = fixture.host();
    host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();
    host.install(&fixture.package("vigil_test_panicky", &manifest("panicky", "1.0.0", &[], false))).unwrap();
    for id in 1..=5 {
        wait_state(&host, "panicky", |s| *s == PluginState::Running);
        let results = act(&host, id);
        assert!(failed(result_of(&results, "panicky")).starts_with("trapped: "), "{results:?}");
    }
    let panicky = wait_state(&host, "panicky", |s| matches!(s, PluginState::Disabled { .. }));
    let state = panicky.state.to_string();
    assert!(state.starts_with("disabled: crashed 5 times within 5 minutes; last: trapped: "), "{state}");
    assert_eq!((panicky.metrics.traps, panicky.metrics.restarts), (5, 4));
    let results = act(&host, 6);
    assert!(failed(result_of(&results, "panicky")).starts_with("plugin is disabled: crashed 5 times"));
    assert_eq!(result_of(&results, "good"), &ActionResult::Done("ok 6".into()));
}

#[test]
fn kv_quota_and_unsubscribed_plugins() {
    let fixture = Fixture::new(Limits { kv_quota: 4, ..Limits::default() });
    let host = fixture.host();
    let err = host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap_err();
    assert_eq!(err.to_string(), "plugin good failed its health check: init failed: quota");

    let fixture = Fixture::new(Limits::default());
    let host = fixture.host();
    let mut hold_only = manifest("good", "1.0.0", &[], false);
    hold_only.actions = vec!["hold".into()];
    host.install(&fixture.package("vigil_test_good", &hold_only)).unwrap();
    assert!(act(&host, 1).is_empty(), "lockdown is not dispatched to a hold-only plugin");
}

/// A one-connection-at-a-time HTTP/1.1 server on loopback answering every
/// request `200 <body>`, and counting the requests it saw.
fn http_server(body: &'static str) -> (String, Arc<Mutex<usize>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // The request line and headers, up to the blank line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            *count.lock().unwrap() += 1;
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    (addr, seen)
}

#[test]
fn http_reaches_granted_endpoints_only() {
    let (granted, granted_seen) = http_server("hello");
    let (other, other_seen) = http_server("secret");
    let mut fixture = Fixture::new(Limits::default());
    let urls = serde_json::json!({ "urls": [format!("http://{granted}/status"), format!("http://{other}/")] });
    fixture
        .config
        .grants
        .insert("fetch".into(), Grant { network: vec![granted.clone()], config: urls, ..Grant::default() });
    let host = fixture.host();
    // It asks for both; the operator granted one.
    let installed = host
        .install(&fixture.package("vigil_test_fetch", &manifest("fetch", "1.0.0", &[&granted, &other], false)))
        .unwrap();
    assert_eq!(installed.denied, vec![format!("network {other}")]);

    let results = act(&host, 1);
    let ActionResult::Done(lines) = result_of(&results, "fetch") else { panic!("{results:?}") };
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines[0], "200 hello", "{lines:?}");
    assert!(lines[1].contains("HTTP request denied"), "{lines:?}");
    assert_eq!((*granted_seen.lock().unwrap(), *other_seen.lock().unwrap()), (1, 0), "the denied server saw nothing");
    assert_eq!(info(&host, "fetch").metrics.denied_connects, 1);
}

#[test]
fn a_call_blocked_in_io_is_cancelled_at_its_deadline_and_the_plugin_comes_back() {
    // A peer that accepts and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let mut fixture = Fixture::new(Limits { call_deadline: Duration::from_millis(500), ..Limits::default() });
    fixture.config.grants.insert(
        "stall".into(),
        Grant { network: vec![addr.clone()], config: serde_json::json!({ "connect": addr }), ..Grant::default() },
    );
    let host = fixture.host();
    host.install(&fixture.package("vigil_test_stall", &manifest("stall", "1.0.0", &[&addr], false))).unwrap();

    let results = act(&host, 1);
    assert_eq!(failed(result_of(&results, "stall")), "timed out after 500 ms waiting on I/O");
    assert!(!held.lock().unwrap().is_empty(), "the plugin did connect");
    // The stuck instance was torn down and a fresh one answers again.
    let back = wait_state(&host, "stall", |s| *s == PluginState::Running);
    assert_eq!((back.metrics.traps, back.metrics.restarts), (1, 1), "{back:?}");
    let results = act(&host, 2);
    assert_eq!(failed(result_of(&results, "stall")), "timed out after 500 ms waiting on I/O", "and again, not stuck");
}

#[test]
fn an_install_cut_short_between_its_renames_is_finished_at_the_next_start() {
    let fixture = Fixture::new(Limits::default());
    {
        let host = fixture.host();
        host.install(&fixture.package("vigil_test_good", &manifest("good", "1.0.0", &[], false))).unwrap();
        host.install(&fixture.package("vigil_test_good", &manifest("good", "2.0.0", &[], false))).unwrap();
    }
    // Power lost after `current` became `previous`, before `staging` became `current`.
    let dir = fixture.state.path().join("plugins/good");
    std::fs::rename(dir.join("current"), dir.join("staging")).unwrap();
    let host = fixture.host();
    let loaded = host.load_installed();
    assert!(loaded.iter().all(|(_, r)| r.is_ok()), "{loaded:?}");
    assert_eq!(info(&host, "good").version, "2.0.0", "the new version was whole, so it is the one running");
    assert_eq!(host.rollback("good").unwrap().version, "1.0.0", "and the previous one is still kept");
}

#[test]
fn a_plugin_asking_for_any_granted_endpoint_gets_exactly_its_grant() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let granted = listener.local_addr().unwrap().to_string();
    let other = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut fixture = Fixture::new(Limits::default());
    fixture.config.grants.insert(
        "netcat".into(),
        Grant { network: vec![granted.clone()], config: serde_json::json!({ "connect": other }), ..Grant::default() },
    );
    let host = fixture.host();
    let installed =
        host.install(&fixture.package("vigil_test_netcat", &manifest("netcat", "1.0.0", &["*"], false))).unwrap();
    assert_eq!((installed.granted.network, installed.denied), (vec![granted], vec![]));
    // Anything else stays closed.
    let refused = failed(result_of(&act(&host, 1), "netcat")).to_string();
    assert!(refused.starts_with(&format!("cannot connect to {other}")), "{refused}");
}
