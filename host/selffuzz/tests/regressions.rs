//! Regression tests for the bugs the self-fuzz targets found, each named
//! for its bug (the input that found it is in `corpus/<target>/crash-*`).

use std::sync::Arc;

use lunabox_run::executors::scripted::ScriptedExecutor;
use lunabox_sandbox::{HookRequest, Outcome};

/// Found by `run_call_guest` (corpus/run_call_guest/crash-nul-in-bad-call-message):
/// a refused Run call whose message quoted a NUL byte from the call table
/// reached the hook cut off at the NUL, without the words saying what was
/// wrong (`RunSync: followSymlinkPaths[1] \`x`).
#[test]
fn a_bad_call_message_with_a_nul_byte_reaches_the_hook_whole() {
    let responses =
        ScriptedExecutor::from_json(&serde_json::json!({"default": {"output": "\"ok\""}}))
            .expect("responses");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    for (script, tail) in [
        (
            "return RunSync{ sourceDirectory = 'src', followSymlinkPaths = { 'x\\0y' } }",
            "`x\\0y` contains a NUL byte",
        ),
        (
            "return RunBash{ command = 'true', variables = { ['A\\0B'] = 1 } }",
            "is not a valid environment variable name",
        ),
    ] {
        let request = HookRequest::new(script, "nul.lua")
            .with_executor(Arc::new(responses.clone()))
            .with_data_directory(tmp.path());
        let outcome = lunabox_selffuzz::runtime().run_hook(request);
        let Outcome::Error(e) = &outcome.result else {
            panic!("{script}: {:?}", outcome.result);
        };
        assert!(e.message.contains(tail), "{script}: {}", e.message);
        assert!(!e.message.contains('\0'));
    }
}

/// Left over from the crash above: a hook's own error message with a NUL
/// byte in it (`error("a\0b")`, a string raised as it is, or a number) was
/// cut at the NUL in the guest, losing the rest. The guest now keeps the
/// whole message, and the host writes the NUL as `\0`, as for a Run call's.
#[test]
fn a_hook_error_with_a_nul_byte_arrives_whole_with_the_nul_written_out() {
    for (script, want) in [
        ("error('before\\0after')", "nul.lua:1: before\\0after"),
        ("error('before\\0after', 0)", "before\\0after"),
        ("error(42, 0)", "42"),
    ] {
        let outcome = lunabox_selffuzz::runtime().run_hook(HookRequest::new(script, "nul.lua"));
        let Outcome::Error(e) = &outcome.result else {
            panic!("{script}: {:?}", outcome.result);
        };
        assert_eq!(e.message, want, "{script}");
    }
}
