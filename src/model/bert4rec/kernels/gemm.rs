//! The matrix products of the CPU kernels, through faer.
//!
//! candle's matmul runs on the `gemm` crate, whose f32 kernels reach about a quarter of an
//! AVX-512 core's peak (54 GFLOP/s a core where MKL reaches 213 on the same machine);
//! faer's own kernels reach 150–190. faer's API is safe: views are built from slices with
//! their bounds checked, so strided sub-matrices (one attention head's columns of a
//! `[tokens, 3 × hidden]` buffer) are read in place instead of copied out first.

use faer::{Accum, MatMut, MatRef, Par};

/// `rows × cols` of `data`, row-major, rows `stride` apart.
pub(super) fn view(data: &[f32], rows: usize, cols: usize, stride: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice_with_stride(data, rows, cols, stride)
}

/// The mutable twin of [`view`]: the transpose of a column-major view, because faer
/// 0.24.4's `MatMut::from_row_major_slice_with_stride_mut` swaps the strides (it builds a
/// column-major view after checking the bounds of a row-major one, so products write out
/// of bounds; `view_mut_is_row_major` pins this).
pub(super) fn view_mut(
    data: &mut [f32],
    rows: usize,
    cols: usize,
    stride: usize,
) -> MatMut<'_, f32> {
    MatMut::from_column_major_slice_with_stride_mut(data, cols, rows, stride).transpose_mut()
}

/// `dst = alpha · a · b`, or `dst += alpha · a · b` when `add`.
pub(super) fn gemm(
    dst: MatMut<'_, f32>,
    add: bool,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
    par: Par,
) {
    let accum = if add { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, accum, a, b, alpha, par);
}

/// One product split over every thread of the pool: for products that run alone. Kernels
/// that already run one product per parallel task use [`Par::Seq`].
pub(super) fn all_threads() -> Par {
    Par::rayon(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_mut_is_row_major() {
        // Two rows of three in a buffer whose rows are five apart.
        let mut data = [0f32; 8];
        let mut m = view_mut(&mut data, 2, 3, 5);
        m[(0, 2)] = 1.0;
        m[(1, 0)] = 2.0;
        assert_eq!(data, [0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        // [[1, 2], [3, 4]] · [[1, 0], [1, 1]] = [[3, 2], [7, 4]], written row-major.
        let a = [1f32, 2.0, 3.0, 4.0];
        let b = [1f32, 0.0, 1.0, 1.0];
        let mut c = [0f32; 4];
        let (a, b) = (view(&a, 2, 2, 2), view(&b, 2, 2, 2));
        gemm(view_mut(&mut c, 2, 2, 2), false, a, b, 1.0, Par::Seq);
        assert_eq!(c, [3.0, 2.0, 7.0, 4.0]);
    }
}
