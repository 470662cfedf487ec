//! The LevelDB table format, as far as a TensorFlow checkpoint's `.index` file uses it:
//! a footer pointing at an index block whose entries point at data blocks of sorted,
//! prefix-compressed key/value pairs. Blocks must be uncompressed (TensorFlow writes them so).
//!
//! Layout reference: leveldb `doc/table_format.md` and `table/format.cc`.

use super::error::CheckpointError;

const FOOTER_LEN: usize = 48;
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// One byte of compression type plus a masked CRC-32C after every block.
const BLOCK_TRAILER_LEN: usize = 5;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Every key/value pair of the table's data blocks, in key order.
pub fn read_entries(file: &[u8]) -> Result<Vec<Entry>, CheckpointError> {
    if file.len() < FOOTER_LEN {
        return Err(format_error("shorter than a table footer"));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..48].try_into().expect("8 bytes"));
    if magic != MAGIC {
        return Err(format_error("no LevelDB table magic number at the end"));
    }
    let mut pos = 0;
    let _metaindex = BlockHandle::decode(footer, &mut pos)?;
    let index = BlockHandle::decode(footer, &mut pos)?;
    let mut entries = Vec::new();
    for (_, handle) in block_entries(index.slice(file)?)? {
        let mut p = 0;
        let data = BlockHandle::decode(&handle, &mut p)?;
        entries.extend(block_entries(data.slice(file)?)?);
    }
    Ok(entries)
}

/// Where a block lies in the file, without its trailer.
struct BlockHandle {
    offset: usize,
    size: usize,
}

impl BlockHandle {
    fn decode(buf: &[u8], pos: &mut usize) -> Result<Self, CheckpointError> {
        Ok(Self {
            offset: varint(buf, pos)? as usize,
            size: varint(buf, pos)? as usize,
        })
    }

    /// The block's bytes, after checking its trailer says "uncompressed" and its checksum.
    fn slice<'a>(&self, file: &'a [u8]) -> Result<&'a [u8], CheckpointError> {
        let end = self
            .offset
            .checked_add(self.size + BLOCK_TRAILER_LEN)
            .filter(|&e| e <= file.len())
            .ok_or_else(|| format_error("a block handle points past the end of the file"))?;
        let block = &file[self.offset..self.offset + self.size];
        let trailer = &file[self.offset + self.size..end];
        if trailer[0] != 0 {
            return Err(CheckpointError::Unsupported(format!(
                "compressed index block (type {})",
                trailer[0]
            )));
        }
        let stored = u32::from_le_bytes(trailer[1..5].try_into().expect("4 bytes"));
        // The checksum covers the block and its type byte.
        let crc = crc32c_extend(crc32c(block), &trailer[..1]);
        if unmask(stored) != crc {
            return Err(format_error("block checksum mismatch"));
        }
        Ok(block)
    }
}

/// The key/value pairs of one block (restart points are only needed for seeking).
fn block_entries(block: &[u8]) -> Result<Vec<Entry>, CheckpointError> {
    if block.len() < 4 {
        return Err(format_error("block shorter than its restart count"));
    }
    let restarts =
        u32::from_le_bytes(block[block.len() - 4..].try_into().expect("4 bytes")) as usize;
    let end = restarts
        .checked_mul(4)
        .and_then(|r| block.len().checked_sub(4 + r))
        .ok_or_else(|| format_error("restart array larger than its block"))?;
    let mut entries = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < end {
        let shared = varint(block, &mut pos)? as usize;
        let non_shared = varint(block, &mut pos)? as usize;
        let value_len = varint(block, &mut pos)? as usize;
        let value_end = pos + non_shared + value_len;
        if shared > key.len() || value_end > end {
            return Err(format_error("block entry out of bounds"));
        }
        key.truncate(shared);
        key.extend_from_slice(&block[pos..pos + non_shared]);
        entries.push((key.clone(), block[pos + non_shared..value_end].to_vec()));
        pos = value_end;
    }
    Ok(entries)
}

/// A base-128 varint (LevelDB and protobuf share the encoding).
pub fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, CheckpointError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| format_error("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(format_error("varint longer than 10 bytes"))
}

fn format_error(detail: &str) -> CheckpointError {
    CheckpointError::Format(detail.to_string())
}

/// CRC-32C (Castagnoli), the checksum of LevelDB blocks and of TensorFlow's tensor data.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_extend(0, data)
}

fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// LevelDB and TensorFlow store checksums "masked" so that a CRC of data holding CRCs
/// stays well distributed.
pub fn unmask(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(0xa282_ead8);
    rot.rotate_left(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of the ASCII digits 1-9 (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn mask_round_trips() {
        let crc = crc32c(b"tensor bytes");
        let masked = crc.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(unmask(masked), crc);
    }

    #[test]
    fn varints_decode_and_reject_truncation() {
        let mut pos = 0;
        assert_eq!(varint(&[0xac, 0x02], &mut pos).unwrap(), 300);
        assert_eq!(pos, 2);
        let mut pos = 0;
        assert!(varint(&[0x80], &mut pos).is_err());
    }
}
