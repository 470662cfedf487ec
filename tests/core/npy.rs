//! The `.npy` writer and reader agree, and the file is what numpy writes.

use audiorec::embeddings::npy::{read_f32_matrix, write_f32_matrix};

use crate::helpers::TestDir;

#[test]
fn write_then_read_round_trips_bit_for_bit() {
    let d = TestDir::new();
    let path = d.path("m.npy");
    let (rows, cols) = (7, 5);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| match i {
            0 => -0.0,
            1 => f32::MIN_POSITIVE / 2.0, // subnormal
            2 => f32::MAX,
            3 => -1.5e-30,
            _ => (i as f32 * 0.37).sin() * 1e3,
        })
        .collect();
    write_f32_matrix(&path, &data, rows, cols).unwrap();
    let (back, r, c) = read_f32_matrix(&path).unwrap();
    assert_eq!((r, c), (rows, cols));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&data));

    // numpy's layout: magic, version 1.0, header padded so data starts at a multiple of 64.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (7, 5), }"));
    assert!(header.ends_with('\n'));
    assert_eq!(bytes.len(), 10 + header_len + rows * cols * 4);
}

#[test]
fn empty_matrix_round_trips() {
    let d = TestDir::new();
    let path = d.path("e.npy");
    write_f32_matrix(&path, &[], 0, 3).unwrap();
    let (back, r, c) = read_f32_matrix(&path).unwrap();
    assert_eq!((back.len(), r, c), (0, 0, 3));
}
