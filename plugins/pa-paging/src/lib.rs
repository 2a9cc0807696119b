//! Vigil's pa-paging plugin: announces Standard Response Protocol directives
//! over the school's public-address system by SIP paging.
//!
//! On an action request it calls the paging extension (INVITE over UDP,
//! digest authentication if challenged), plays the pre-recorded message for
//! the directive as G.711 µ-law RTP, `repeat` times with a pause between,
//! and hangs up. Drills play the "This is a drill." version of the message.
//! A revert (an automatic action dismissed as a false alarm) plays "Cancel.
//! The previous alert was a false alarm."; all clear plays "All clear".
//!
//! The whole page happens inside the `on_action` call, retries included, so
//! the grant's call deadline must cover it: see `docs/plugins/pa-paging.md`.

mod config;

use serde::Serialize;
use vigil_plugin_sdk::{ActionRequest, ActionResult, Directive, Plugin, export_plugin, host, kv};
use vigil_sip::{Page, PageError, PageReport, g711};

use crate::config::Config;

/// How long to wait for the answer to the BYE before calling the page done anyway.
const HANGUP_TIMEOUT_MS: u64 = 2000;

/// A message: its name in `audio/` and its G.711 µ-law audio.
struct Message {
    name: &'static str,
    audio: &'static [u8],
}

macro_rules! message {
    ($name:literal) => {
        Message { name: $name, audio: include_bytes!(concat!("../audio/", $name, ".ul")) }
    };
}

/// Every message, normal and drill; `audio/make.sh` writes them.
const MESSAGES: [Message; 14] = [
    message!("hold"),
    message!("secure"),
    message!("lockdown"),
    message!("evacuate"),
    message!("shelter"),
    message!("all-clear"),
    message!("cancel"),
    message!("drill-hold"),
    message!("drill-secure"),
    message!("drill-lockdown"),
    message!("drill-evacuate"),
    message!("drill-shelter"),
    message!("drill-all-clear"),
    message!("drill-cancel"),
];

/// The message for `directive`, in its drill version if `drill`; `Err` names
/// the file missing from `MESSAGES`.
fn message_for(directive: &Directive, drill: bool) -> Result<&'static Message, String> {
    let name = match directive {
        Directive::Activate(action) => action.as_str(),
        Directive::Revert(_) => "cancel",
        Directive::AllClear => "all-clear",
    };
    let wanted = if drill { format!("drill-{name}") } else { name.to_string() };
    MESSAGES
        .iter()
        .find(|m| m.name == wanted)
        .ok_or_else(|| format!("no recorded message {wanted:?} for {directive}: add it to audio/make.sh and MESSAGES"))
}

/// The name `announce` uses for `directive`.
fn announce_key(directive: &Directive) -> &'static str {
    match directive {
        Directive::Activate(action) => action.as_str(),
        Directive::Revert(_) => "revert",
        Directive::AllClear => "all-clear",
    }
}

/// The audio of one page: the message `repeat` times, `pause_ms` of silence between.
fn programme(message: &[u8], repeat: u32, pause_ms: u64) -> Vec<u8> {
    let pause = vec![g711::SILENCE; (pause_ms * 8) as usize];
    let mut audio = Vec::with_capacity((message.len() + pause.len()) * repeat as usize);
    for i in 0..repeat {
        if i > 0 {
            audio.extend_from_slice(&pause);
        }
        audio.extend_from_slice(message);
    }
    audio
}

/// The status document the district sees.
#[derive(Serialize)]
struct Status {
    /// Pages attempted since installation (each counts once, whatever its retries).
    calls: u64,
    /// Pages that failed after their retries.
    failures: u64,
    /// The most recent page, if any.
    last: Option<LastCall>,
}

/// One page, as the status reports it.
#[derive(Serialize)]
struct LastCall {
    /// `activate:secure`, `revert:secure`, `all-clear`.
    directive: String,
    /// The message played (`drill-secure`).
    message: String,
    /// `done` or `failed`.
    result: &'static str,
    /// 200 when answered, else the status of the last attempt's failure response
    /// (none for timeouts and network errors).
    sip_status: Option<u16>,
    /// The answer given to vigild, in words.
    detail: String,
    /// When it ended, milliseconds since the Unix epoch.
    at_ms: u64,
    /// Attempts made.
    attempts: u32,
}

/// Key-value store keys of the counters (in the store so they survive restarts).
const CALLS: &str = "calls";
const FAILURES: &str = "failures";

struct PaPaging;

impl Plugin for PaPaging {
    fn init() -> Result<(), String> {
        let config = Config::load()?;
        let longest = MESSAGES.iter().map(|m| m.audio.len()).max().unwrap_or(0);
        let worst_ms = config.worst_case_ms(longest as u64 / 8, HANGUP_TIMEOUT_MS);
        host::info!(
            "paging {} via {}; a page takes up to {worst_ms} ms with its retries, so the grant's call_timeout_ms must exceed that",
            config.target,
            config.server
        );
        publish(None);
        Ok(())
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        let config = match Config::load() {
            Ok(c) => c,
            Err(e) => return ActionResult::Failed(e),
        };
        let directive = request.directive;
        if !config.announces(announce_key(&directive)) {
            return ActionResult::NotApplicable;
        }
        let drill = request.incident.drill;
        if drill && !config.drills {
            return ActionResult::Done(format!("drill: {directive} not announced (drills = false)"));
        }
        let message = match message_for(&directive, drill) {
            Ok(m) => m,
            Err(e) => return ActionResult::Failed(e),
        };
        let audio = programme(message.audio, config.repeat, config.pause_ms);
        let (outcome, attempts) = page_with_retries(&config, &audio);

        count(CALLS);
        let (result, sip_status) = match &outcome {
            Ok(report) => (ActionResult::Done(describe(&config, message, report)), Some(200)),
            Err(e) => {
                count(FAILURES);
                (ActionResult::Failed(failure(e, attempts)), e.status())
            }
        };
        let detail = match &result {
            ActionResult::Done(words) | ActionResult::Failed(words) => words.clone(),
            ActionResult::NotApplicable => String::new(),
        };
        host::info!("{directive} for incident {}: {detail}", request.incident.id);
        publish(Some(LastCall {
            directive: key(&directive),
            message: message.name.to_string(),
            result: if outcome.is_ok() { "done" } else { "failed" },
            sip_status,
            detail,
            at_ms: host::wall_clock_ms(),
            attempts,
        }));
        result
    }
}

/// Pages, trying again after `retry_delay_ms` on failures that may pass, up
/// to `retries` more times. Returns the last outcome and the attempts made.
fn page_with_retries(config: &Config, audio: &[u8]) -> (Result<PageReport, PageError>, u32) {
    let page = Page {
        server: config.server,
        target: &config.target,
        from_user: &config.from_user,
        credentials: config.credentials.as_ref(),
        audio,
        answer_timeout: std::time::Duration::from_millis(config.answer_timeout_ms),
        hangup_timeout: std::time::Duration::from_millis(HANGUP_TIMEOUT_MS),
    };
    let mut attempt = 1;
    loop {
        let outcome = vigil_sip::page(&page, vigil_sip::random_seed());
        match &outcome {
            Err(e) if e.is_retryable() && attempt <= config.retries => {
                host::warn!("page attempt {attempt} failed: {e}; trying again in {} ms", config.retry_delay_ms);
                std::thread::sleep(std::time::Duration::from_millis(config.retry_delay_ms));
                attempt += 1;
            }
            _ => return (outcome, attempt),
        }
    }
}

/// The `done` answer: what was played, where, and how the call ended.
fn describe(config: &Config, message: &Message, report: &PageReport) -> String {
    let seconds = message.audio.len() as f64 / 8000.0;
    let bye = match report.bye_status {
        Some(200) => String::new(),
        Some(status) => format!("; BYE answered {status}"),
        None => format!("; BYE unanswered within {HANGUP_TIMEOUT_MS} ms"),
    };
    format!(
        "paged {} to {}: {} x {seconds:.1} s, {} RTP packets to {}{}{bye}",
        message.name,
        config.target,
        config.repeat,
        report.packets,
        report.media,
        if report.authenticated { ", authenticated" } else { "" },
    )
}

/// The `failed` answer: the error, a hint where the sandbox is the likely
/// cause, and the attempts when there were several.
fn failure(error: &PageError, attempts: u32) -> String {
    let mut words = error.to_string();
    if let PageError::Media { media, .. } = error {
        words += &format!("; the grant's network list must name {media}");
    }
    if attempts > 1 {
        words += &format!(" ({attempts} attempts)");
    }
    words
}

/// `activate:secure`, `revert:secure` or `all-clear`, as vigild names actions.
fn key(directive: &Directive) -> String {
    match directive {
        Directive::Activate(a) => format!("activate:{}", a.as_str()),
        Directive::Revert(a) => format!("revert:{}", a.as_str()),
        Directive::AllClear => "all-clear".into(),
    }
}

/// Adds one to a counter, saying so in the log if the store refuses.
fn count(name: &str) {
    if let Err(e) = kv::increment(name) {
        host::warn!("cannot count {name}: {e}");
    }
}

fn current(name: &str) -> u64 {
    kv::get_json(name).ok().flatten().unwrap_or(0)
}

fn publish(last: Option<LastCall>) {
    let status = Status { calls: current(CALLS), failures: current(FAILURES), last };
    if let Err(e) = vigil_plugin_sdk::status(&status) {
        host::warn!("cannot publish status: {e}");
    }
}

export_plugin!(PaPaging);
