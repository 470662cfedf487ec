//! A reader of TensorFlow tensor-bundle checkpoints (`PREFIX.index` + `PREFIX.data-00000-of-00001`),
//! the format `tf.train.Saver` writes and the musicnn wheel ships.
//!
//! The `.index` file is a LevelDB table ([`super::sstable`]): the empty key holds a
//! `BundleHeaderProto`, every other key is a tensor name whose value is a `BundleEntryProto`
//! saying where the tensor's little-endian bytes lie in the data shard, with their CRC-32C.
//! Only what musicnn needs is supported: one shard, little-endian, unpartitioned float tensors.
//! Field numbers are from tensorflow/core/protobuf/tensor_bundle.proto.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::CheckpointError;
use super::sstable::{self, varint};

/// `DT_FLOAT` in TensorFlow's `DataType` enum.
const DT_FLOAT: u64 = 1;

/// Where one tensor lies in the data shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEntry {
    pub dtype: u64,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub size: usize,
    pub crc32c: u32,
}

/// An opened checkpoint: its table of contents plus the data shard in memory.
#[derive(Debug)]
pub struct TensorBundle {
    entries: BTreeMap<String, BundleEntry>,
    data: Vec<u8>,
}

impl TensorBundle {
    /// Opens the checkpoint at `prefix` (musicnn's prefix is its folder plus `/`, so the
    /// files are `MSD_musicnn/.index` and `MSD_musicnn/.data-00000-of-00001`).
    pub fn open(prefix: &Path) -> Result<Self, CheckpointError> {
        let index_path = suffixed(prefix, ".index");
        let index = read(&index_path)?;
        let mut entries = BTreeMap::new();
        for (key, value) in sstable::read_entries(&index)? {
            if key.is_empty() {
                check_header(&value)?;
                continue;
            }
            let name = String::from_utf8(key)
                .map_err(|_| CheckpointError::Format("tensor name is not UTF-8".into()))?;
            let entry = parse_entry(&name, &value)?;
            entries.insert(name, entry);
        }
        let data = read(&suffixed(prefix, ".data-00000-of-00001"))?;
        Ok(Self { entries, data })
    }

    /// Tensor names in sorted order with their entries.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &BundleEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A float tensor's shape and values (row-major, as TensorFlow stores them), after
    /// checking its size and checksum.
    pub fn f32_tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), CheckpointError> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| CheckpointError::Missing(name.to_string()))?;
        let bad = |detail: String| CheckpointError::Tensor {
            name: name.to_string(),
            detail,
        };
        if entry.dtype != DT_FLOAT {
            return Err(bad(format!("dtype {} is not float32", entry.dtype)));
        }
        let count: usize = entry.shape.iter().product();
        if entry.size != count * 4 {
            return Err(bad(format!(
                "{} bytes for shape {:?}",
                entry.size, entry.shape
            )));
        }
        let bytes = entry
            .offset
            .checked_add(entry.size)
            .and_then(|end| self.data.get(entry.offset..end))
            .ok_or_else(|| bad("lies past the end of the data file".into()))?;
        if sstable::crc32c(bytes) != sstable::unmask(entry.crc32c) {
            return Err(bad("checksum mismatch in the data file".into()));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Ok((entry.shape.clone(), values))
    }
}

fn suffixed(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.into(),
        source,
    })
}

/// One protobuf field: number, and either a varint / fixed32 value or a byte slice.
enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

/// Iterates the fields of a protobuf message (wire types 0, 1, 2 and 5).
fn fields(msg: &[u8]) -> Result<Vec<(u64, Field<'_>)>, CheckpointError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < msg.len() {
        let tag = varint(msg, &mut pos)?;
        let field = match tag & 7 {
            0 => Field::Int(varint(msg, &mut pos)?),
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                let b = msg
                    .get(pos..pos + n)
                    .ok_or_else(|| CheckpointError::Format("truncated fixed field".into()))?;
                pos += n;
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(b);
                Field::Int(u64::from_le_bytes(v))
            }
            2 => {
                let len = varint(msg, &mut pos)? as usize;
                let b = pos
                    .checked_add(len)
                    .and_then(|end| msg.get(pos..end))
                    .ok_or_else(|| CheckpointError::Format("truncated length field".into()))?;
                pos += len;
                Field::Bytes(b)
            }
            w => return Err(CheckpointError::Format(format!("protobuf wire type {w}"))),
        };
        out.push((tag >> 3, field));
    }
    Ok(out)
}

/// `BundleHeaderProto`: num_shards = 1, endianness = 2 (0 = little), version = 3.
fn check_header(msg: &[u8]) -> Result<(), CheckpointError> {
    for (number, field) in fields(msg)? {
        match (number, field) {
            (1, Field::Int(shards)) if shards != 1 => {
                return Err(CheckpointError::Unsupported(format!(
                    "{shards} data shards"
                )));
            }
            (2, Field::Int(e)) if e != 0 => {
                return Err(CheckpointError::Unsupported("big-endian data".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `BundleEntryProto`: dtype = 1, shape = 2, shard_id = 3, offset = 4, size = 5,
/// crc32c = 6 (fixed32), slices = 7.
fn parse_entry(name: &str, msg: &[u8]) -> Result<BundleEntry, CheckpointError> {
    let mut entry = BundleEntry {
        dtype: 0,
        shape: Vec::new(),
        offset: 0,
        size: 0,
        crc32c: 0,
    };
    for (number, field) in fields(msg)? {
        match (number, field) {
            (1, Field::Int(v)) => entry.dtype = v,
            (2, Field::Bytes(shape)) => entry.shape = parse_shape(shape)?,
            (3, Field::Int(shard)) if shard != 0 => {
                return Err(CheckpointError::Unsupported(format!(
                    "{name:?} in shard {shard}"
                )));
            }
            (4, Field::Int(v)) => entry.offset = v as usize,
            (5, Field::Int(v)) => entry.size = v as usize,
            (6, Field::Int(v)) => entry.crc32c = v as u32,
            (7, _) => {
                return Err(CheckpointError::Unsupported(format!(
                    "partitioned tensor {name:?}"
                )));
            }
            _ => {}
        }
    }
    Ok(entry)
}

/// `TensorShapeProto`: repeated Dim dim = 2 (Dim: int64 size = 1), unknown_rank = 3.
fn parse_shape(msg: &[u8]) -> Result<Vec<usize>, CheckpointError> {
    let mut dims = Vec::new();
    for (number, field) in fields(msg)? {
        if let (2, Field::Bytes(dim)) = (number, field) {
            let mut size = 0;
            for (n, f) in fields(dim)? {
                if let (1, Field::Int(v)) = (n, f) {
                    size = v as usize;
                }
            }
            dims.push(size);
        }
    }
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_entry_message() {
        // dtype 1, shape [7, 38], offset 300, size 1064, crc32c 0x01020304.
        let msg = [
            0x08, 0x01, 0x12, 0x08, 0x12, 0x02, 0x08, 0x07, 0x12, 0x02, 0x08, 0x26, 0x20, 0xac,
            0x02, 0x28, 0xa8, 0x08, 0x35, 0x04, 0x03, 0x02, 0x01,
        ];
        let e = parse_entry("w", &msg).unwrap();
        assert_eq!(
            e,
            BundleEntry {
                dtype: 1,
                shape: vec![7, 38],
                offset: 300,
                size: 1064,
                crc32c: 0x0102_0304
            }
        );
    }

    #[test]
    fn rejects_partitioned_tensors() {
        let msg = [0x08, 0x01, 0x3a, 0x00];
        assert!(matches!(
            parse_entry("w", &msg),
            Err(CheckpointError::Unsupported(_))
        ));
    }
}
