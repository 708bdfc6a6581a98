//! `weft plugin build`: runs a plugin directory's language build and leaves
//! `<name>.wasm` next to its `plugin.toml`.
//!
//! Each language keeps its own build tool (cargo, npm, componentize-py,
//! clang, go); this module only runs it with the right arguments. For C and
//! Go, whose compilers produce a WASI preview-1 core module, Weft itself
//! generates the bindings (C) and turns the module into a component
//! ([`componentize`](super::componentize)).

use super::c_bindings;
use super::componentize::{AdapterMemory, componentize};
use super::language::{Language, check_wasi_libc};
use super::manifest::Manifest;
use super::wit_package::World;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component file.
    pub component: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// Variables an outer cargo sets (tests, clippy) that must not leak into a
/// plugin's own build.
const CARGO_LEAKS: &[&str] = &[
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_MANIFEST_DIR",
    "CARGO_PRIMARY_PACKAGE",
];

/// Builds the plugin in `dir` (which holds `plugin.toml`).
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    let manifest = Manifest::read(dir)?;
    // Tools run inside `dir`, so every path handed to them must be absolute;
    // canonical, because cargo reports its manifests that way.
    let dir = &std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    for tool in manifest.language.toolchain() {
        tool.check()?;
    }
    let out = dir.join(format!("{}.wasm", manifest.name));
    // A component left by an earlier build must not pass for this one's.
    match std::fs::remove_file(&out) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove the old {}", out.display()));
        }
        _ => {}
    }
    let wit = dir.join(&manifest.wit);
    match manifest.language {
        Language::Rust => build_rust(dir, &out)?,
        Language::Js | Language::Ts => build_js(dir)?,
        Language::Python => build_python(dir, &manifest)?,
        Language::C => build_c(dir, &manifest, &wit, &out)?,
        Language::Go => build_go(dir, &manifest, &wit, &out)?,
    }
    let size = std::fs::metadata(&out)
        .with_context(|| {
            let hint = match manifest.language {
                Language::Js | Language::Ts => "; does package.json's build script write it (`--out NAME.wasm`)?",
                _ => "",
            };
            format!("the build finished but did not write {}{hint}", out.display())
        })?
        .len();
    Ok(Built { component: out, size })
}

/// `program`, to run inside `dir`, without what an outer cargo set.
fn tool(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
    for var in CARGO_LEAKS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd`, failing with what it printed when it fails.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        anyhow::bail!("{what} failed ({status}); its output is above");
    }
    Ok(())
}

fn build_rust(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let installed = tool("rustup", dir).args(["target", "list", "--installed"]).output();
    if let Ok(list) = installed
        && !String::from_utf8_lossy(&list.stdout).lines().any(|l| l.trim() == "wasm32-wasip2")
    {
        run(tool("rustup", dir).args(["target", "add", "wasm32-wasip2"]), "rustup target add wasm32-wasip2")?;
    }
    // Cargo says where it put the component (the plugin may be a member of
    // a workspace, with the workspace's target directory).
    let output = tool("cargo", dir)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start cargo build")?;
    if !output.status.success() {
        anyhow::bail!("cargo build failed ({}); its output is above", output.status);
    }
    let manifest_path = dir.join("Cargo.toml");
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest_path.as_path()))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .with_context(|| {
            format!("cargo built no .wasm for {}: is its crate-type [\"cdylib\"]?", manifest_path.display())
        })?;
    std::fs::copy(&artifact, out)
        .with_context(|| format!("cannot copy {} to {}", artifact.display(), out.display()))?;
    Ok(())
}

fn build_python(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let mut cmd = tool("componentize-py", dir);
    cmd.arg("-d").arg(&manifest.wit).args(["-w", &manifest.world]);
    if manifest.is_effect() {
        // The effect world imports two interfaces called `types`; name them
        // so that componentize-py's own HTTP helper (`poll_loop`, which wants
        // wasi:http's as `types`) and the step agree.
        cmd.args(["--import-interface-name", "wasi:http/types@0.2.12=types"]);
        cmd.args(["--import-interface-name", "weft:step/types@0.1.2=weft_types"]);
    }
    cmd.args(["componentize", "app", "-o"]).arg(format!("{}.wasm", manifest.name));
    run(&mut cmd, "componentize-py")
}

fn build_js(dir: &Path) -> anyhow::Result<()> {
    if !dir.join("node_modules").is_dir() {
        run(tool("npm", dir).args(["install", "--no-audit", "--no-fund", "--loglevel=error"]), "npm install")?;
    }
    run(tool("npm", dir).args(["run", "--silent", "build"]), "npm run build")
}

fn build_c(dir: &Path, manifest: &Manifest, wit: &Path, out: &Path) -> anyhow::Result<()> {
    check_wasi_libc()?;
    let world = World::resolve(wit, &manifest.world)?;
    let bindings = dir.join("bindings");
    let mut sources = c_bindings::generate(&world, &bindings)?;
    sources.extend(files_with_extension(&dir.join("src"), "c")?);
    let core = dir.join("build").join("core.wasm");
    std::fs::create_dir_all(dir.join("build"))?;
    let cc = std::env::var("CC_WASM").unwrap_or_else(|_| "clang".into());
    let mut cmd = tool(&cc, dir);
    cmd.args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Werror"]);
    if let Some(sysroot) = std::env::var_os("WASI_SYSROOT") {
        cmd.arg("--sysroot").arg(sysroot);
    }
    cmd.arg("-I").arg(&bindings).arg("-I").arg(dir.join("src")).arg("-o").arg(&core).args(&sources);
    run(&mut cmd, &cc)?;
    write_component(&core, &world, AdapterMemory::ModuleRealloc, out)
}

fn build_go(dir: &Path, manifest: &Manifest, wit: &Path, out: &Path) -> anyhow::Result<()> {
    let world = World::resolve(wit, &manifest.world)?;
    let core = dir.join("build").join("core.wasm");
    std::fs::create_dir_all(dir.join("build"))?;
    run(
        tool("go", dir)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .args(["build", "-buildmode=c-shared", "-o"])
            .arg(&core)
            .arg("."),
        "go build",
    )?;
    write_component(&core, &world, AdapterMemory::GoArena, out)
}

fn write_component(core: &Path, world: &World, memory: AdapterMemory, out: &Path) -> anyhow::Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    let component = componentize(&module, world, memory).with_context(|| format!("{}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}

fn files_with_extension(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}
