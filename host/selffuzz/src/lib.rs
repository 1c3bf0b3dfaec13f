//! lunabox-selffuzz: lunabox fuzzes itself.
//!
//! Each fuzz target is a plain `fn(&[u8])` that reads its input through
//! [`arbitrary::Unstructured`] and panics when a property of lunabox does not
//! hold (so it plugs into libFuzzer's `fuzz_target!` as is):
//!
//! | target | module | what it drives |
//! |---|---|---|
//! | `toolkit_dir`, `toolkit_built` | [`toolkit_load`] | loading, validating and building toolkits, both forms |
//! | `lua_json` | [`lua_json`] | a JSON value into a hook and back out through the guest |
//! | `run_call`, `run_call_guest` | [`run_calls`] | Run-call tables parsed on the host, directly and from a hook |
//! | `output_schema` | [`output_schema`] | a Run call's output document against its `outputSchema` |
//! | `differential` | [`differential`] | generated Lua in the sandbox against native Lua (mlua) |
//!
//! [`driver`] runs targets from a seeded generator for a time budget (with
//! seed corpora mutated too) and reports executions per second; the
//! crate's tests replay `corpus/<target>/*` and run the driver briefly.
//! `cargo xtask selffuzz --time 20s` runs it for longer.

#![warn(missing_docs)]

pub mod differential;
pub mod driver;
pub mod lua_json;
pub mod make;
pub mod output_schema;
pub mod run_calls;
pub mod toolkit_load;

use std::sync::OnceLock;

use lunabox_sandbox::{Runtime, RuntimeConfig};

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the corpus folder `corpus/<name>/`.
    pub name: &'static str,
    /// Run one input; panics when a property does not hold.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "toolkit_dir",
        run: toolkit_load::target_dir,
    },
    Target {
        name: "toolkit_built",
        run: toolkit_load::target_built,
    },
    Target {
        name: "lua_json",
        run: lua_json::target,
    },
    Target {
        name: "run_call",
        run: run_calls::target_host,
    },
    Target {
        name: "run_call_guest",
        run: run_calls::target_guest,
    },
    Target {
        name: "output_schema",
        run: output_schema::target,
    },
    Target {
        name: "differential",
        run: differential::target,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// The sandbox runtime the guest targets share (one per process).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            max_concurrent_hooks: 8,
            max_memory: 256 << 20,
            ..RuntimeConfig::default()
        })
        .expect("the sandbox runtime starts")
    })
}
