//! Opening a store from where it is: a [`StoreLocation`] parsed from a path
//! or URL (what `--db` and `$WEFT_DB` hold), opened for driving runs (created
//! when missing) or for reading only (never created).

use super::{MemoryStore, PostgresStore, RunStore, SqliteStore, StoreError, SyncMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable that names the default store.
pub const STORE_ENV: &str = "WEFT_DB";

/// Where a run store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// In this process's memory: nothing persists.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL.
    Postgres(String),
}

/// Connections in a process's PostgreSQL pool: enough for a worker's
/// concurrent runs, their step tasks and heartbeats.
pub const POSTGRES_POOL_SIZE: usize = 16;

impl StoreLocation {
    /// The location `text` names: `memory:`, `postgres://…` (or
    /// `postgresql://…`), `sqlite:PATH` (or `sqlite://PATH`), or a plain path
    /// to a SQLite file.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text.is_empty() {
            return Err(StoreError::Incompatible("the store location is empty; give a SQLite file's path".into()));
        }
        if text == "memory:" || text == ":memory:" {
            return Ok(Self::Memory);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_string()));
        }
        if let Some(path) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(StoreError::Incompatible(format!(
                "`{scheme}://` stores are not supported by this Weft; give a SQLite file's path (or sqlite:PATH), or \
                 a postgres:// URL"
            )));
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }

    /// `$WEFT_DB` when set, else `weft/weft.db` in the user's data directory.
    pub fn default_location() -> Result<Self, StoreError> {
        if let Some(v) = std::env::var_os(STORE_ENV).filter(|v| !v.is_empty()) {
            return match v.to_str() {
                Some(text) => Self::parse(text).map_err(|e| StoreError::Incompatible(format!("{STORE_ENV}: {e}"))),
                None => Ok(Self::Sqlite(PathBuf::from(v))),
            };
        }
        let dir = dirs::data_dir().ok_or_else(|| {
            StoreError::Backend(format!("no user data directory is known here; pass --db PATH or set {STORE_ENV}"))
        })?;
        Ok(Self::Sqlite(dir.join("weft").join("weft.db")))
    }

    /// The SQLite file, if this is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Memory | Self::Postgres(_) => None,
            Self::Sqlite(p) => Some(p),
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(p) => write!(f, "{}", p.display()),
            Self::Postgres(url) => f.write_str(&super::postgres::redact(url)),
        }
    }
}

/// Opens the store at `location` for driving runs: a SQLite file (and its
/// directory) is created when missing, and migrated when older.
pub fn open_for_writing(location: &StoreLocation, sync: SyncMode) -> Result<Arc<dyn RunStore>, StoreError> {
    Ok(match location {
        StoreLocation::Memory => Arc::new(MemoryStore::new()),
        StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open(path, sync)?),
        StoreLocation::Postgres(url) => Arc::new(PostgresStore::open(url, POSTGRES_POOL_SIZE)?),
    })
}

/// Opens the store at `location` to read it: nothing is created, and a
/// missing SQLite file is [`StoreError::Missing`].
pub fn open_for_reading(location: &StoreLocation) -> Result<Arc<dyn RunStore>, StoreError> {
    Ok(match location {
        StoreLocation::Memory => Arc::new(MemoryStore::new()),
        StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open_existing(path)?),
        StoreLocation::Postgres(url) => Arc::new(PostgresStore::open(url, 4)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_path_a_sqlite_url_or_memory() {
        assert_eq!(StoreLocation::parse("runs.db").ok(), Some(StoreLocation::Sqlite("runs.db".into())));
        assert_eq!(StoreLocation::parse("sqlite:///tmp/r.db").ok(), Some(StoreLocation::Sqlite("/tmp/r.db".into())));
        assert_eq!(StoreLocation::parse("sqlite:r.db").ok(), Some(StoreLocation::Sqlite("r.db".into())));
        assert_eq!(StoreLocation::parse("memory:").ok(), Some(StoreLocation::Memory));
        let pg = "postgres://weft@127.0.0.1:5432/runs";
        assert_eq!(StoreLocation::parse(pg).ok(), Some(StoreLocation::Postgres(pg.into())));
        let e = StoreLocation::parse("redis://x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("`redis://` stores are not supported"), "{e}");
    }

    #[test]
    fn reading_a_missing_database_creates_nothing() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
        let path = dir.join("nested").join("runs.db");
        let e = open_for_reading(&StoreLocation::Sqlite(path.clone())).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("no run database at"), "a clear error");
        assert!(!dir.join("nested").exists(), "neither the file nor its directory was created");
    }
}
