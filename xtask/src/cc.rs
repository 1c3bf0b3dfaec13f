//! Compile Lua 5.4.9 and the guest glue (guest-lua/src) with clang-22 for
//! `wasm32-wasip1` and link a reactor core module.
//!
//! Facts from `shared/notes/building-lua-for-wasm.md`: a private sysroot of
//! symlinks to Debian's wasi-libc, SjLj on the standard exception-handling
//! encoding, `-mexec-model=reactor`, a 1 MiB stack. Determinism: inputs are
//! compiled and linked in sorted order, there is no debug info, and
//! `-ffile-prefix-map` rewrites every absolute path to a fixed short name.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Lua sources not built into the guest: the standalone interpreter and
/// compiler, `linit.c` (opens every library, `package` included) and
/// `loadlib.c` (the `package` library: C modules, `require`).
const LUA_EXCLUDED: &[&str] = &["lua.c", "luac.c", "linit.c", "loadlib.c"];

const CLANG: &str = "clang-22";

/// Inputs of one build.
pub struct Inputs<'a> {
    pub root: &'a Path,
    pub lua_dir: &'a Path,
    pub bindings_dir: &'a Path,
    pub build_dir: &'a Path,
}

fn sorted_c_files(dir: &Path, excluded: &[&str]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".c") && !excluded.contains(&name) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Private sysroot: `include/wasm32-wasip1` and `lib/wasm32-wasip1` point at
/// Debian's wasi-libc (never `--sysroot=/usr`: glibc headers would leak in).
fn make_sysroot(build_dir: &Path) -> Result<PathBuf> {
    let sysroot = build_dir.join("sysroot");
    for (sub, target) in [
        ("include", "/usr/include/wasm32-wasi"),
        ("lib", "/usr/lib/wasm32-wasi"),
    ] {
        let dir = sysroot.join(sub);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let link = dir.join("wasm32-wasip1");
        if std::fs::read_link(&link).ok().as_deref() != Some(Path::new(target)) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link)
                .with_context(|| format!("linking {} -> {target}", link.display()))?;
        }
        if !Path::new(target).is_dir() {
            bail!("{target} is missing: install wasi-libc (cargo xtask deps)");
        }
    }
    Ok(sysroot)
}

/// Flags shared by compiling and linking.
fn common_flags(sysroot: &Path) -> Vec<String> {
    vec![
        "--target=wasm32-wasip1".into(),
        format!("--sysroot={}", sysroot.display()),
        "-O2".into(),
        "-mexception-handling".into(),
    ]
}

/// Compile every source and link `core.wasm` in `build_dir`; returns its
/// path.
pub fn build_core(inp: &Inputs<'_>) -> Result<PathBuf> {
    let sysroot = make_sysroot(inp.build_dir)?;
    let obj_dir = inp.build_dir.join("obj");
    if obj_dir.exists() {
        std::fs::remove_dir_all(&obj_dir)
            .with_context(|| format!("cleaning {}", obj_dir.display()))?;
    }
    std::fs::create_dir_all(obj_dir.join("lua"))?;
    std::fs::create_dir_all(obj_dir.join("glue"))?;

    let glue_dir = inp.root.join("guest-lua").join("src");
    let include_dir = inp.root.join("guest-lua").join("include");
    let mut base = common_flags(&sysroot);
    base.extend(
        [
            "-g0",
            "-mllvm",
            "-wasm-enable-sjlj",
            "-mllvm",
            "-wasm-use-legacy-eh=false",
            "-DLUA_USE_POSIX",
            "-D_WASI_EMULATED_SIGNAL",
            "-DLUA_COMPAT_5_3",
            // Lua's string-hash seed: a constant, so pre-initialization does
            // not depend on time or addresses.
            "-Dluai_makeseed(L)=((unsigned int)0x6c756e61)",
        ]
        .map(String::from),
    );
    for (from, to) in [
        (inp.build_dir, "/build"),
        (inp.lua_dir, "/lua"),
        (inp.root, "/lunabox"),
    ] {
        base.push(format!("-ffile-prefix-map={}={to}", from.display()));
    }
    base.push(format!("-I{}", include_dir.display()));
    base.push(format!("-I{}", inp.lua_dir.display()));
    base.push(format!("-I{}", inp.bindings_dir.display()));

    let mut jobs: Vec<(PathBuf, PathBuf, Vec<String>)> = Vec::new();
    let unity = write_lua_unity(inp.lua_dir, inp.build_dir)?;
    jobs.push((
        unity,
        obj_dir.join("lua").join("lua_all.o"),
        vec!["-w".into()],
    ));
    let strict: Vec<String> = ["-Wall", "-Wextra", "-Werror", "-std=gnu11"]
        .map(String::from)
        .to_vec();
    for src in sorted_c_files(&glue_dir, &[])? {
        let obj = obj_dir.join("glue").join(obj_name(&src));
        jobs.push((src, obj, strict.clone()));
    }
    let hook_c = inp.bindings_dir.join("hook.c");
    jobs.push((
        hook_c,
        obj_dir.join("glue").join("bindings_hook.o"),
        vec!["-w".into()],
    ));

    run_parallel(&jobs, &base)?;

    // Link, objects in a fixed order.
    let core = inp.build_dir.join("core.wasm");
    let mut cmd = Command::new(CLANG);
    cmd.args(common_flags(&sysroot));
    cmd.args([
        "-mexec-model=reactor",
        "-Wl,-z,stack-size=1048576",
        "-Wl,--strip-debug",
        "-Wl,--no-export-dynamic",
    ]);
    for (_, obj, _) in &jobs {
        cmd.arg(obj);
    }
    cmd.arg(inp.bindings_dir.join("hook_component_type.o"));
    cmd.arg("-lwasi-emulated-signal");
    cmd.arg("-o").arg(&core);
    run(&mut cmd, "linking the guest core module")?;
    Ok(core)
}

/// The Lua sources compiled into the guest, in the order they are included
/// into one translation unit: the core first (each file only needs what the
/// files before it define), then the auxiliary and standard libraries.
/// One unit lets clang inline across Lua's files (table lookups and call
/// set-up into the VM loop), which separate objects do not allow.
const LUA_UNITY_ORDER: &[&str] = &[
    "lzio.c",
    "lctype.c",
    "lopcodes.c",
    "lmem.c",
    "lundump.c",
    "ldump.c",
    "lstate.c",
    "lgc.c",
    "llex.c",
    "lcode.c",
    "lparser.c",
    "ldebug.c",
    "lfunc.c",
    "lobject.c",
    "ltm.c",
    "lstring.c",
    "ltable.c",
    "ldo.c",
    "lvm.c",
    "lapi.c",
    "lauxlib.c",
    "lbaselib.c",
    "lcorolib.c",
    "ldblib.c",
    "liolib.c",
    "lmathlib.c",
    "loslib.c",
    "lstrlib.c",
    "ltablib.c",
    "lutf8lib.c",
];

/// Declarations added just before `ldo.c` in the unit: the call set-up and
/// return functions are inlined into the VM loop's OP_CALL, OP_TAILCALL and
/// OP_RETURN. A Lua-to-Lua call then costs no wasm call, which under
/// wasmtime means no prologue with a stack-limit and an epoch check, no
/// callee-saved register spills and no argument spills (fib(27) goes from
/// ~2.0x to ~1.6x native). A signature change in a new Lua release fails
/// the build here with "conflicting types", not silently.
const INLINE_CALL_PATH: &str = "\
/* lunabox: inline the call path into the VM loop (xtask/src/cc.rs) */
CallInfo *luaD_precall (lua_State *L, StkId func, int nResults) __attribute__((always_inline));
int luaD_pretailcall (lua_State *L, CallInfo *ci, StkId func, int narg1, int delta) __attribute__((always_inline));
void luaD_poscall (lua_State *L, CallInfo *ci, int nres) __attribute__((always_inline));
";

/// Write `lua_all.c` (the Lua sources as one unit) into `build_dir`, after
/// checking that the list above names every Lua source we build.
fn write_lua_unity(lua_dir: &Path, build_dir: &Path) -> Result<PathBuf> {
    let present: Vec<String> = sorted_c_files(lua_dir, LUA_EXCLUDED)?
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect();
    let mut listed: Vec<String> = LUA_UNITY_ORDER.iter().map(|s| s.to_string()).collect();
    listed.sort();
    if listed != present {
        bail!(
            "the Lua sources in {} are not the ones xtask/src/cc.rs lists (LUA_UNITY_ORDER): \
             found {present:?}; update the list",
            lua_dir.display()
        );
    }
    // ltablib.c calls arc4random on WASI, which wasi-libc declares only
    // under _GNU_SOURCE/_BSD_SOURCE: declare it rather than widen every
    // header's feature set.
    let mut text = String::from(
        "/* Generated by xtask: Lua 5.4 as one translation unit. */\n\
         #include \"lprefix.h\"\n\
         #include <stdint.h>\n\
         uint32_t arc4random(void);\n",
    );
    for name in LUA_UNITY_ORDER {
        if *name == "ldo.c" {
            text.push_str(INLINE_CALL_PATH);
        }
        text.push_str(&format!("#include \"{name}\"\n"));
    }
    let path = build_dir.join("lua_all.c");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn obj_name(src: &Path) -> String {
    let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
    format!("{stem}.o")
}

fn run_parallel(jobs: &[(PathBuf, PathBuf, Vec<String>)], base: &[String]) -> Result<()> {
    let width = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut pending = jobs.iter();
    let mut running: Vec<(std::process::Child, &Path)> = Vec::new();
    let mut failures = Vec::new();
    loop {
        while running.len() < width {
            let Some((src, obj, extra)) = pending.next() else {
                break;
            };
            let child = Command::new(CLANG)
                .args(base)
                .args(extra)
                .arg("-c")
                .arg(src)
                .arg("-o")
                .arg(obj)
                .spawn()
                .with_context(|| format!("starting {CLANG} (install it: cargo xtask deps)"))?;
            running.push((child, src));
        }
        if running.is_empty() {
            break;
        }
        let (mut child, src) = running.remove(0);
        let status = child.wait()?;
        if !status.success() {
            failures.push(src.display().to_string());
        }
    }
    if !failures.is_empty() {
        bail!("compiling failed: {}", failures.join(", "));
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: starting {CLANG}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
