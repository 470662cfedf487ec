//! Reading a text file line by line as bytes, counting lines (1-based, header included)
//! so every error can say where it is, and never holding the file as one string.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::ImportError;

/// A line without its `\n` or `\r\n`.
pub fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Lines of a file, each with its number.
pub struct LineReader {
    reader: BufReader<File>,
    path: PathBuf,
    buf: Vec<u8>,
    line: u64,
}

impl LineReader {
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let file = File::open(path).map_err(ImportError::io(path))?;
        Ok(Self {
            reader: BufReader::with_capacity(1 << 20, file),
            path: path.into(),
            buf: Vec::with_capacity(256),
            line: 0,
        })
    }

    /// The next line's number and text without its end, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ImportError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(ImportError::io(&self.path))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        Ok(Some((self.line, strip_eol(&self.buf))))
    }

    /// The first line as text (lossily decoded), for checking a header; empty for an
    /// empty file.
    pub fn header(&mut self) -> Result<String, ImportError> {
        Ok(self
            .next_line()?
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default())
    }

    /// The underlying reader, positioned after the lines read so far (bulk parsers take
    /// over after the header).
    pub fn into_inner(self) -> BufReader<File> {
        self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_without_their_ends_and_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.tsv");
        std::fs::write(&path, b"h\r\na\n\nlast").unwrap();
        let mut r = LineReader::open(&path).unwrap();
        assert_eq!(r.header().unwrap(), "h");
        assert_eq!(r.next_line().unwrap(), Some((2, &b"a"[..])));
        assert_eq!(r.next_line().unwrap(), Some((3, &b""[..])));
        assert_eq!(r.next_line().unwrap(), Some((4, &b"last"[..])));
        assert_eq!(r.next_line().unwrap(), None);
    }
}
