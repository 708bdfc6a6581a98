//! Reading the files that users and workflows name (workflow files, run
//! inputs, components) without trusting them: only regular files are read,
//! and never more than a cap, so `/dev/zero`, a FIFO or a file that grows
//! while it is read cannot exhaust memory or block the host.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest JSON document the CLI reads from a file or stdin (run input,
/// step input): 64 MiB.
pub const MAX_JSON_BYTES: usize = 64 << 20;

/// Why a capped read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The OS refused (not found, permission denied, ...).
    Io(std::io::Error),
    /// The path is a directory, device, pipe or socket.
    NotAFile(&'static str),
    /// The file is larger than the cap (`size` is what was seen, at least `max + 1`).
    TooLarge {
        /// Bytes seen.
        size: u64,
        /// The cap.
        max: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotAFile(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge { size, max } => write!(f, "it is {size} bytes, over the limit of {max} bytes"),
        }
    }
}

impl std::error::Error for ReadError {}

fn kind_of(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a named pipe")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() || ft.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// Reads the regular file at `path` (symlinks followed), refusing anything
/// else and anything over `max` bytes, even a file that grows while it is read.
pub fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(ReadError::NotAFile(kind));
    }
    if meta.len() > max as u64 {
        return Err(ReadError::TooLarge { size: meta.len(), max });
    }
    // Non-blocking, so that a FIFO swapped in after the check above does not
    // block the open; it is refused by the check on the opened file below.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(ReadError::Io)?
    };
    // Checked again on the opened file, in case the path was swapped in between.
    if let Some(kind) = kind_of(file.metadata().map_err(ReadError::Io)?.file_type()) {
        return Err(ReadError::NotAFile(kind));
    }
    read_stream_capped(file, max)
}

/// Reads `reader` to its end, refusing more than `max` bytes.
pub fn read_stream_capped(reader: impl Read, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader.take(max as u64 + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() > max {
        return Err(ReadError::TooLarge { size: bytes.len() as u64, max });
    }
    Ok(bytes)
}

/// Like [`read_capped`], for text: see [`into_text`].
pub fn read_text_capped(path: &Path, max: usize) -> Result<String, ReadError> {
    into_text(read_capped(path, max)?)
}

/// UTF-8 text from `bytes`; invalid UTF-8 is an `Io` error of kind `InvalidData` saying where.
pub fn into_text(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_oversized_files_are_refused_with_what_they_are() {
        let e = read_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "it is a device, not a regular file");
        let e = read_capped(Path::new("/"), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, vec![b'x'; 101]).unwrap();
        let e = read_capped(&f, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is 101 bytes, over the limit of 100 bytes");
        assert_eq!(read_capped(&f, 101).unwrap().len(), 101);
        let e = read_stream_capped(std::io::repeat(0), 1000).unwrap_err();
        assert_eq!(e.to_string(), "it is 1001 bytes, over the limit of 1000 bytes");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo failed");
        let e = read_capped(&fifo, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a named pipe, not a regular file");
    }

    #[test]
    fn text_that_is_not_utf8_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, b"abc\xffdef").unwrap();
        let e = read_text_capped(&f, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is not UTF-8 text (invalid byte at offset 3)");
    }
}
