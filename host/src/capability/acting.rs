//! The imports that exist only to act, and the capability each needs: an
//! effect component that imports one runs only on a node granted it. The
//! WASI interfaces language runtimes import anyway (filesystem, environment,
//! sockets, clocks, random) are not among them: they are linked for every
//! step and grant nothing beyond what the node declares.

use super::declared::Capabilities;

/// The acting imports, by interface (without version), and their capability.
pub const ACTING_IMPORTS: &[(&str, &str)] = &[("wasi:http/outgoing-handler", "http"), ("weft:step/kv", "kv")];

/// The capability the import `name` (`ns:pkg/iface@version`) needs, if it
/// is an acting import.
pub fn acting_capability(name: &str) -> Option<&'static str> {
    let iface = name.split_once('@').map_or(name, |(i, _)| i);
    ACTING_IMPORTS.iter().find(|(i, _)| *i == iface).map(|(_, cap)| *cap)
}

impl Capabilities {
    /// Why a component with the acting import `import` cannot run on a node
    /// with these capabilities, if it cannot.
    pub fn refuses_import(&self, import: &str) -> Option<String> {
        let cap = acting_capability(import)?;
        let granted = match cap {
            "http" => !self.http.is_empty(),
            "kv" => self.kv,
            _ => true,
        };
        let how = if cap == "kv" { "`kv: true`" } else { "`http:` with the URLs it may call" };
        (!granted).then(|| {
            format!(
                "the component imports `{import}`, which exists only to act, but the node is not granted `{cap}`: \
                 declare {how} under the node's `capabilities`"
            )
        })
    }
}
