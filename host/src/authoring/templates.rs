//! The starter plugins, one per language (and an effect variant for
//! JavaScript and Python), embedded from `plugins/templates/` so that an
//! installed `weft` writes them without the source tree.
//!
//! A template's files may say `{{name}}`, which becomes the plugin's name.
//! Every new plugin also gets the contract's WIT in `wit/`; a Rust plugin
//! gets the `weft-plugin` SDK's source in `sdk/weft-plugin/`, because the
//! SDK is not published on crates.io.

use super::language::Language;
use crate::contract::wit::write_wit;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// One embedded file: its path inside the template, and its text.
type File = (&'static str, &'static str);

macro_rules! template_files {
    ($dir:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../plugins/templates/", $dir, "/", $path)))),+]
    };
}

/// A starter plugin.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Its folder under `plugins/templates/`.
    pub dir: &'static str,
    /// Its language.
    pub language: Language,
    /// Whether it is an effect step (else a compute step).
    pub effect: bool,
    /// Its files.
    pub files: &'static [File],
}

/// Every template.
pub const TEMPLATES: &[Template] = &[
    Template {
        dir: "rust",
        language: Language::Rust,
        effect: false,
        files: template_files!("rust": "plugin.toml", "Cargo.toml", "src/lib.rs", "README.md", ".gitignore",
            "sdk/weft-plugin/Cargo.toml"),
    },
    Template {
        dir: "js",
        language: Language::Js,
        effect: false,
        files: template_files!("js": "plugin.toml", "package.json", "src/index.js", "src/step.js",
            "test/step.test.js", "README.md", ".gitignore"),
    },
    Template {
        dir: "js-effect",
        language: Language::Js,
        effect: true,
        files: template_files!("js-effect": "plugin.toml", "package.json", "src/index.js", "src/step.js",
            "test/step.test.js", "README.md", ".gitignore"),
    },
    Template {
        dir: "ts",
        language: Language::Ts,
        effect: false,
        files: template_files!("ts": "plugin.toml", "package.json", "tsconfig.json", "src/index.ts", "src/step.ts",
            "src/weft.ts", "test/step.test.ts", "README.md", ".gitignore"),
    },
    Template {
        dir: "python",
        language: Language::Python,
        effect: false,
        files: template_files!("python": "plugin.toml", "app.py", "step.py", "test_step.py", "README.md", ".gitignore"),
    },
    Template {
        dir: "python-effect",
        language: Language::Python,
        effect: true,
        files: template_files!("python-effect": "plugin.toml", "app.py", "step.py", "weft_http.py", "test_step.py",
            "README.md", ".gitignore"),
    },
    Template {
        dir: "c",
        language: Language::C,
        effect: false,
        files: template_files!("c": "plugin.toml", "src/step.c", "src/json.h", "src/json.c", "README.md", ".gitignore"),
    },
    Template {
        dir: "go",
        language: Language::Go,
        effect: false,
        files: template_files!("go": "plugin.toml", "go.mod", "main.go", "main_test.go", "weft/go.mod", "weft/weft.go", "weft/host.go",
            "weft/abi.go", "README.md", ".gitignore"),
    },
];

/// The Rust SDK's sources, written into a new Rust plugin.
const RUST_SDK: &[File] = &[
    ("sdk/weft-plugin/src/lib.rs", include_str!("../../../plugins/weft-plugin/src/lib.rs")),
    ("sdk/weft-plugin/src/http.rs", include_str!("../../../plugins/weft-plugin/src/http.rs")),
    ("sdk/weft-plugin/src/kv.rs", include_str!("../../../plugins/weft-plugin/src/kv.rs")),
    ("sdk/weft-plugin/src/stream.rs", include_str!("../../../plugins/weft-plugin/src/stream.rs")),
];

/// The template for `language`, as a compute or an effect step.
pub fn template(language: Language, effect: bool) -> anyhow::Result<&'static Template> {
    TEMPLATES.iter().find(|t| t.language == language && t.effect == effect).ok_or_else(|| {
        let effects: Vec<&str> = TEMPLATES.iter().filter(|t| t.effect).map(|t| t.language.name()).collect();
        anyhow::anyhow!(
            "there is no effect-step template for {language} yet (there is one for {}); \
             start from the compute template, or write the effect step in one of those",
            effects.join(" and ")
        )
    })
}

/// What [`new_plugin`] wrote.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's directory.
    pub dir: PathBuf,
    /// The template it came from.
    pub template: &'static Template,
    /// How many files it wrote.
    pub files: usize,
}

/// Whether `name` can name a plugin (a package, a module and a file).
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        anyhow::bail!(
            "plugin name {name:?}: use lowercase letters, digits and `-`, starting with a letter (at most 64), \
             e.g. `greet` or `score-orders`; it names the package and the .wasm file"
        );
    }
    // Names cargo refuses for a package, or that a template already uses.
    if matches!(name, "test" | "build" | "weft-plugin" | "self" | "super" | "crate") {
        anyhow::bail!("plugin name {name:?} is taken by the toolchains or the templates; pick another");
    }
    Ok(())
}

/// Writes a new plugin named `name` from the template for `language` into
/// `dir`, which must not exist yet or be empty.
pub fn new_plugin(dir: &Path, name: &str, language: Language, effect: bool) -> anyhow::Result<NewPlugin> {
    check_name(name)?;
    let template = template(language, effect)?;
    if dir.exists() {
        let empty = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?.next().is_none();
        if !empty {
            anyhow::bail!("{} already exists and is not empty; pick another name or directory", dir.display());
        }
    }
    let sdk: &[File] = if language == Language::Rust { RUST_SDK } else { &[] };
    for (rel, text) in template.files.iter().chain(sdk) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text.replace("{{name}}", name))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wit = dir.join("wit");
    write_wit(&wit).with_context(|| format!("cannot write the contract's WIT into {}", wit.display()))?;
    Ok(NewPlugin { dir: dir.to_path_buf(), template, files: template.files.len() + sdk.len() })
}
