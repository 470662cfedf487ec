//! Little-endian numbers in binary files (saved graphs, projections), written and read in
//! one place.
//!
//! Reading goes through [`LeReader`], which knows how many bytes the file has left: a
//! count read from a damaged or truncated header is refused *before* anything of that
//! size is allocated, so a corrupt file costs an error, never gigabytes.

use std::io::{self, Read, Write};

/// A fixed-width number stored little-endian.
pub trait Le: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    /// From exactly `SIZE` bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("SIZE bytes"))
            }
        }
    )*};
}
le!(u32, u64, i64, f32);

/// Writes `values` little-endian, in one call to the writer.
pub fn write<T: Le>(w: &mut impl Write, values: &[T]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(values.len() * T::SIZE);
    values.iter().for_each(|v| v.put(&mut bytes));
    w.write_all(&bytes)
}

/// Decodes whole `T`s from `bytes` (a trailing partial value is ignored).
pub fn decode<T: Le>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(T::SIZE).map(T::get).collect()
}

/// A reader that refuses to read (or allocate for) more than the bytes left in its file.
pub struct LeReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> LeReader<R> {
    /// `len` is how many bytes `inner` holds from here on (for a file, its size).
    pub fn new(inner: R, len: u64) -> Self {
        Self { inner, left: len }
    }

    /// Bytes not yet read.
    pub fn left(&self) -> u64 {
        self.left
    }

    pub fn one<T: Le>(&mut self) -> io::Result<T> {
        Ok(self.vec::<T>(1)?[0])
    }

    /// `n` values; `InvalidData` without allocating when the file cannot hold them.
    pub fn vec<T: Le>(&mut self, n: usize) -> io::Result<Vec<T>> {
        let bytes = self.bytes(n.checked_mul(T::SIZE))?;
        Ok(decode(&bytes))
    }

    /// `n` raw bytes (`None`: a size that overflowed while computing it), refused unless
    /// the file still holds them.
    pub fn bytes(&mut self, n: Option<usize>) -> io::Result<Vec<u8>> {
        let n = n.filter(|&n| n as u64 <= self.left).ok_or_else(|| {
            invalid(format!(
                "truncated or damaged: the header asks for more than the {} bytes left",
                self.left
            ))
        })?;
        let mut bytes = vec![0u8; n];
        self.inner.read_exact(&mut bytes)?;
        self.left -= n as u64;
        Ok(bytes)
    }
}

/// An `InvalidData` error with a message.
pub fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of every width round-trip; a count beyond the bytes left is refused without
    /// reading, and the reader is still usable for what is there.
    #[test]
    fn round_trips_and_refuses_counts_beyond_the_file() {
        let mut out = Vec::new();
        write(&mut out, &[7u64]).unwrap();
        write(&mut out, &[1u32, u32::MAX]).unwrap();
        write(&mut out, &[-3i64]).unwrap();
        write(&mut out, &[0.5f32, -0.0, f32::MIN_POSITIVE]).unwrap();
        assert_eq!(out.len(), 8 + 8 + 8 + 12);
        let mut r = LeReader::new(out.as_slice(), out.len() as u64);
        assert_eq!(r.one::<u64>().unwrap(), 7);
        assert_eq!(r.vec::<u32>(2).unwrap(), [1, u32::MAX]);
        assert_eq!(r.one::<i64>().unwrap(), -3);
        let err = r.vec::<f32>(4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(r.vec::<u32>(usize::MAX).is_err(), "overflowing size");
        let floats = r.vec::<f32>(3).unwrap();
        assert_eq!(floats[0], 0.5);
        assert_eq!(floats[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(floats[2], f32::MIN_POSITIVE);
        assert_eq!(r.left(), 0);
        assert_eq!(decode::<u32>(&[1, 0, 0, 0, 9]), [1]);
    }
}
