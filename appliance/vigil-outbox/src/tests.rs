use super::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;

fn outbox_in(dir: &tempfile::TempDir) -> (PathBuf, Outbox) {
    let path = dir.path().join("outbox.redb");
    let outbox = Outbox::open(&path).unwrap();
    (path, outbox)
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[test]
fn outbox_is_send_and_sync() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    shareable(&Arc::new(outbox));
}

#[test]
fn pending_is_in_push_order_with_increasing_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    let mut pushed = Vec::new();
    for i in 0..10u64 {
        pushed.push(outbox.push(&format!("a{i}"), "incident", format!("p{i}").as_bytes(), 1000 + i).unwrap());
    }
    assert!(pushed.windows(2).all(|w| w[0] < w[1]));
    let all = outbox.pending(None, usize::MAX).unwrap();
    assert_eq!(seqs(&all), pushed);
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.id, format!("a{i}"));
        assert_eq!(m.kind, "incident");
        assert_eq!(m.payload, format!("p{i}").into_bytes());
        assert_eq!(m.enqueued_unix_ms, 1000 + i as u64);
        assert_eq!(m.attempts, 0);
    }
    assert_eq!(outbox.depth().unwrap(), 10);
    assert_eq!(outbox.oldest_unix_ms().unwrap(), Some(1000));
}

#[test]
fn pending_pages_after_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    let pushed: Vec<u64> = (0..7).map(|i| outbox.push(&format!("a{i}"), "k", b"x", i).unwrap()).collect();
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = outbox.pending(after, 3).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|m| m.seq);
        paged.extend(seqs(&page));
    }
    assert_eq!(paged, pushed);
    assert_eq!(seqs(&outbox.pending(Some(pushed[4]), 10).unwrap()), pushed[5..]);
    assert!(outbox.pending(None, 0).unwrap().is_empty());
    assert!(outbox.pending(Some(u64::MAX), 10).unwrap().is_empty());
}

#[test]
fn push_is_idempotent_on_a_pending_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    let seq = outbox.push("a", "incident", b"first", 1).unwrap();
    assert_eq!(outbox.push("a", "other", b"second", 2).unwrap(), seq);
    let all = outbox.pending(None, 10).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].kind.as_str(), all[0].payload.as_slice(), all[0].enqueued_unix_ms),
        ("incident", &b"first"[..], 1)
    );
}

#[test]
fn ack_removes_once_and_ignores_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    outbox.push("a", "k", b"1", 10).unwrap();
    let b = outbox.push("b", "k", b"2", 20).unwrap();
    assert!(outbox.ack("a").unwrap());
    assert!(!outbox.ack("a").unwrap());
    assert!(!outbox.ack("never-pushed").unwrap());
    assert_eq!(seqs(&outbox.pending(None, 10).unwrap()), [b]);
    assert_eq!(outbox.oldest_unix_ms().unwrap(), Some(20));
    assert!(outbox.ack("b").unwrap());
    assert_eq!(outbox.depth().unwrap(), 0);
    assert_eq!(outbox.oldest_unix_ms().unwrap(), None);
}

#[test]
fn acked_id_pushed_again_gets_a_new_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    let first = outbox.push("a", "k", b"1", 1).unwrap();
    outbox.ack("a").unwrap();
    assert!(outbox.push("a", "k", b"1", 2).unwrap() > first);
}

#[test]
fn mark_attempt_counts_and_ignores_missing_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    let seq = outbox.push("a", "k", b"1", 1).unwrap();
    outbox.mark_attempt(seq).unwrap();
    outbox.mark_attempt(seq).unwrap();
    outbox.mark_attempt(seq + 100).unwrap();
    assert_eq!(outbox.pending(None, 10).unwrap()[0].attempts, 2);
    // Attempts belong to the message: a re-pushed id starts from zero.
    outbox.ack("a").unwrap();
    outbox.mark_attempt(seq).unwrap();
    outbox.push("a", "k", b"1", 2).unwrap();
    assert_eq!(outbox.pending(None, 10).unwrap()[0].attempts, 0);
}

#[test]
fn reopen_keeps_messages_and_never_reuses_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (path, outbox) = outbox_in(&dir);
    for i in 0..5u64 {
        outbox.push(&format!("a{i}"), "k", &[i as u8; 100], i).unwrap();
    }
    outbox.mark_attempt(1).unwrap();
    let before = outbox.pending(None, usize::MAX).unwrap();
    drop(outbox);

    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.pending(None, usize::MAX).unwrap(), before);
    let last = before.last().unwrap().seq;
    for m in &before {
        assert!(outbox.ack(&m.id).unwrap());
    }
    drop(outbox);

    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.depth().unwrap(), 0);
    assert!(outbox.push("after", "k", b"", 9).unwrap() > last);
}

#[test]
fn full_outbox_refuses_new_ids_but_not_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let outbox = Outbox::open_with_limit(&path, 2).unwrap();
    let a = outbox.push("a", "k", b"", 1).unwrap();
    outbox.push("b", "k", b"", 2).unwrap();
    let err = outbox.push("c", "k", b"", 3).unwrap_err();
    assert_eq!(err.kind(), OutboxErrorKind::Full);
    assert_eq!(err.path(), path);
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
    assert!(!err.to_string().ends_with('.'), "{err}");
    assert_eq!(outbox.push("a", "k", b"", 4).unwrap(), a);
    assert_eq!(outbox.depth().unwrap(), 2);
    outbox.ack("a").unwrap();
    outbox.push("c", "k", b"", 5).unwrap();
}

#[test]
fn payload_over_one_mib_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let (path, outbox) = outbox_in(&dir);
    outbox.push("max", "k", &vec![7; MAX_PAYLOAD_BYTES], 1).unwrap();
    let err = outbox.push("over", "k", &vec![7; MAX_PAYLOAD_BYTES + 1], 1).unwrap_err();
    assert_eq!(err.kind(), OutboxErrorKind::TooLarge);
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
    assert_eq!(outbox.depth().unwrap(), 1);
}

#[test]
fn garbage_file_is_corrupt_naming_the_path_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    // Shorter than redb's header, and long enough to hold one.
    for len in [7u32, 64 * 1024] {
        let garbage: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();
        let err = Outbox::open(&path).unwrap_err();
        assert_eq!(err.kind(), OutboxErrorKind::Corrupt, "{len} bytes: {err}");
        assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
        assert!(!err.to_string().ends_with('.'), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }
}

#[test]
fn missing_folder_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("outbox.redb");
    let err = Outbox::open(&path).unwrap_err();
    assert_eq!(err.kind(), OutboxErrorKind::Io, "{err}");
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
}

/// Set in the child process of `killed_writer_loses_nothing_it_acknowledged`: the outbox path.
const CRASH_CHILD_ENV: &str = "VIGIL_OUTBOX_CRASH_CHILD";
const CRASH_TEST: &str = "tests::killed_writer_loses_nothing_it_acknowledged";

fn crash_payload(i: u64) -> Vec<u8> {
    format!("alert {i} ").repeat(1 + (i % 50) as usize).into_bytes()
}

/// Kills the writer if the parent's assertions panic first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_writer_loses_nothing_it_acknowledged() {
    if let Some(path) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_writer(Path::new(&path));
        return;
    }
    const REPORTED: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CRASH_TEST, "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut acknowledged = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints its own lines too; only ours start with "pushed".
        let Some(rest) = line.strip_prefix("pushed ") else { continue };
        let (i, seq) = rest.split_once(' ').unwrap();
        acknowledged.push((i.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap()));
        if acknowledged.len() == REPORTED {
            break;
        }
    }
    assert_eq!(acknowledged.len(), REPORTED, "the writer stopped early");
    // SIGKILL on Unix: no destructors, no flush, the writer is mid-push or between pushes.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let outbox = Outbox::open(&path).unwrap();
    let stored: BTreeMap<u64, Message> =
        outbox.pending(None, usize::MAX).unwrap().into_iter().map(|m| (m.seq, m)).collect();
    for (i, seq) in &acknowledged {
        let m = stored.get(seq).unwrap_or_else(|| panic!("acknowledged seq {seq} (alert-{i}) was lost"));
        assert_eq!(m.id, format!("alert-{i}"));
        assert_eq!(m.payload, crash_payload(*i));
    }
    // Pushes that committed but were not yet reported must be whole too.
    for m in stored.values() {
        let i: u64 = m.id.strip_prefix("alert-").unwrap().parse().unwrap();
        assert_eq!(m.payload, crash_payload(i));
    }
    assert!(outbox.push("after-crash", "k", b"", 0).unwrap() > acknowledged.last().unwrap().1);
}

fn crash_writer(path: &Path) {
    use std::io::Write;
    let outbox = Outbox::open(path).unwrap();
    let mut stdout = std::io::stdout().lock();
    for i in 0..1_000_000u64 {
        let seq = outbox.push(&format!("alert-{i}"), "incident", &crash_payload(i), i).unwrap();
        // Written straight to the handle, not `println!`, which libtest may capture.
        writeln!(stdout, "pushed {i} {seq}").unwrap();
        stdout.flush().unwrap();
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push { id: u8, payload: Vec<u8> },
    Ack { id: u8 },
    Attempt { nth: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8u8, proptest::collection::vec(any::<u8>(), 0..32)).prop_map(|(id, payload)| Op::Push { id, payload }),
        3 => (0..9u8).prop_map(|id| Op::Ack { id }),
        1 => (0..6usize).prop_map(|nth| Op::Attempt { nth }),
        1 => Just(Op::Reopen),
    ]
}

/// What a pending message should look like: id, payload, enqueue time, attempts.
type Model = BTreeMap<u64, (String, Vec<u8>, u64, u32)>;

const MODEL_LIMIT: u64 = 5;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_pushes_and_acks_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let mut outbox = Outbox::open_with_limit(&path, MODEL_LIMIT).unwrap();
        let mut model = Model::new();
        let mut highest_seq = 0;
        for (now, op) in ops.into_iter().enumerate() {
            let now = now as u64;
            match op {
                Op::Push { id, payload } => {
                    let id = format!("id{id}");
                    let existing = model.iter().find(|(_, m)| m.0 == id).map(|(seq, _)| *seq);
                    let result = outbox.push(&id, "k", &payload, now);
                    match (existing, result) {
                        (Some(seq), Ok(got)) => prop_assert_eq!(got, seq),
                        (None, Ok(got)) => {
                            prop_assert!(got > highest_seq);
                            prop_assert!((model.len() as u64) < MODEL_LIMIT);
                            highest_seq = got;
                            model.insert(got, (id, payload, now, 0));
                        }
                        (None, Err(e)) => {
                            prop_assert_eq!(e.kind(), OutboxErrorKind::Full);
                            prop_assert_eq!(model.len() as u64, MODEL_LIMIT);
                        }
                        (Some(_), Err(e)) => prop_assert!(false, "push of a pending id failed: {e}"),
                    }
                }
                Op::Ack { id } => {
                    let id = format!("id{id}");
                    let existing = model.iter().find(|(_, m)| m.0 == id).map(|(seq, _)| *seq);
                    prop_assert_eq!(outbox.ack(&id).unwrap(), existing.is_some());
                    if let Some(seq) = existing {
                        model.remove(&seq);
                    }
                }
                Op::Attempt { nth } => {
                    // Past the end, this is a seq that is not pending.
                    let seq = model.keys().nth(nth).copied().unwrap_or(highest_seq + 1);
                    outbox.mark_attempt(seq).unwrap();
                    if let Some(m) = model.get_mut(&seq) {
                        m.3 += 1;
                    }
                }
                Op::Reopen => {
                    drop(outbox);
                    outbox = Outbox::open_with_limit(&path, MODEL_LIMIT).unwrap();
                }
            }
            let got: Model = outbox
                .pending(None, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|m| (m.seq, (m.id, m.payload, m.enqueued_unix_ms, m.attempts)))
                .collect();
            prop_assert_eq!(&got, &model);
            prop_assert_eq!(outbox.depth().unwrap(), model.len() as u64);
            prop_assert_eq!(outbox.oldest_unix_ms().unwrap(), model.values().next().map(|m| m.2));
        }
    }
}

#[test]
#[ignore = "timing; run with: cargo test -p vigil-outbox --release -- --ignored --nocapture"]
fn durable_push_rate_with_1_kib_payloads() {
    const PUSHES: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let (_, outbox) = outbox_in(&dir);
    let payload = vec![0x5a; 1024];
    let start = Instant::now();
    for i in 0..PUSHES {
        outbox.push(&format!("alert-{i}"), "incident", &payload, i).unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "{PUSHES} durable pushes of 1 KiB in {elapsed:.2?}: {:.0} pushes/s",
        PUSHES as f64 / elapsed.as_secs_f64()
    );
}

#[test]
fn a_batch_is_queued_whole_in_order_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let outbox = Outbox::open_with_limit(&path, 3).unwrap();
    let seqs = outbox.push_batch(&[("a", "alerts", b"1"), ("b", "alerts/cap", b"2")], 1).unwrap();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] < seqs[1]);
    // Two new ids do not fit into the one free place: neither is written.
    let err = outbox.push_batch(&[("c", "k", b""), ("d", "k", b"")], 2).unwrap_err();
    assert_eq!(err.kind(), OutboxErrorKind::Full);
    assert_eq!(outbox.depth().unwrap(), 2);
    assert!(outbox.pending(None, 10).unwrap().iter().all(|m| m.id != "c"), "a refused batch left a message behind");
    // A pending id costs no room, so this batch fits.
    let again = outbox.push_batch(&[("b", "alerts/cap", b"2"), ("c", "k", b"")], 3).unwrap();
    assert_eq!(again[0], seqs[1]);
    let ids: Vec<String> = outbox.pending(None, 10).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[test]
fn marks_commit_with_their_messages_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let outbox = Outbox::open_with_limit(&path, 2).unwrap();
    assert_eq!(outbox.mark("incident:1").unwrap(), None);
    outbox.push_marked(&[("a", "k", b"")], 1, "incident:1", 0).unwrap();
    // A refused batch leaves the mark where it was.
    let err = outbox.push_marked(&[("b", "k", b""), ("c", "k", b"")], 2, "incident:1", 5).unwrap_err();
    assert_eq!(err.kind(), OutboxErrorKind::Full);
    assert_eq!(outbox.mark("incident:1").unwrap(), Some(0));
    outbox.set_mark("baseline", 7).unwrap();
    drop(outbox);
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!((outbox.mark("incident:1").unwrap(), outbox.mark("baseline").unwrap()), (Some(0), Some(7)));
}

#[test]
fn a_relaxed_ack_removes_now_and_is_durable_after_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let outbox = Outbox::open(&path).unwrap();
    outbox.push("a", "k", b"1", 1).unwrap();
    outbox.push("b", "k", b"2", 2).unwrap();
    assert!(outbox.ack_relaxed("a").unwrap());
    assert!(!outbox.ack_relaxed("a").unwrap(), "already gone");
    assert_eq!(outbox.depth().unwrap(), 1);
    outbox.push("c", "k", b"3", 3).unwrap(); // durable: carries the relaxed removal with it
    drop(outbox);
    let outbox = Outbox::open(&path).unwrap();
    let ids: Vec<String> = outbox.pending(None, 10).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["b", "c"]);
}
