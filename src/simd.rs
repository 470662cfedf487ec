//! The vector kernels the hot paths run: inner products (every index and the Shallow
//! Net's pair scores) and row sums (a history's mean). They use the widest SIMD the CPU
//! has, found at run time by `pulp` (AVX2+FMA on x86-64-v3 and later), so one portable
//! binary still runs at full width.

use std::sync::LazyLock;

use pulp::{Arch, Simd, WithSimd};

static ARCH: LazyLock<Arch> = LazyLock::new(Arch::new);

/// `a · b` over equal-length slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    struct Dot<'a>(&'a [f32], &'a [f32]);
    impl WithSimd for Dot<'_> {
        type Output = f32;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> f32 {
            dot_with(simd, self.0, self.1)
        }
    }
    debug_assert_eq!(a.len(), b.len());
    ARCH.dispatch(Dot(a, b))
}

/// `query · row` for each of `rows` (as many values each as `query`), into `out`: one
/// dispatch for a whole link list of a graph, where a 64-d product is as short as the
/// dispatch around it.
pub fn dots_into<'a>(query: &[f32], rows: impl Iterator<Item = &'a [f32]>, out: &mut Vec<f32>) {
    struct Dots<'a, 'q, I>(
        &'q [f32],
        I,
        &'q mut Vec<f32>,
        std::marker::PhantomData<&'a ()>,
    );
    impl<'a, I: Iterator<Item = &'a [f32]>> WithSimd for Dots<'a, '_, I> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let Dots(query, rows, out, _) = self;
            out.clear();
            // A plain loop, not `extend(map(..))`: a closure is compiled outside this
            // function's target features, and the intrinsics in it would not inline.
            for row in rows {
                debug_assert_eq!(row.len(), query.len());
                out.push(dot_with(simd, query, row));
            }
        }
    }
    ARCH.dispatch(Dots(query, rows, out, std::marker::PhantomData))
}

/// Asks the CPU to start loading every cache line of `data`, so that several random reads
/// wait for memory at once instead of one after another. A hint: it never faults and
/// changes no result.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use pulp::core_arch::x86::Sse;
        use std::arch::x86_64::_MM_HINT_T0;
        static SSE: LazyLock<Option<Sse>> = LazyLock::new(Sse::try_new);
        if let Some(sse) = *SSE {
            let p = data.as_ptr().cast::<i8>();
            for offset in (0..std::mem::size_of_val(data)).step_by(64) {
                sse._mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(offset));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[inline(always)]
fn dot_with<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (a, a_tail) = S::as_simd_f32s(a);
    let (b, b_tail) = S::as_simd_f32s(b);
    // Four independent accumulators hide the latency of the fused multiply-add.
    let mut acc = [simd.splat_f32s(0.0); 4];
    let (a4, a_rest) = a.as_chunks::<4>();
    let (b4, b_rest) = b.as_chunks::<4>();
    for (x, y) in a4.iter().zip(b4) {
        for i in 0..4 {
            acc[i] = simd.mul_add_e_f32s(x[i], y[i], acc[i]);
        }
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        acc[0] = simd.mul_add_e_f32s(*x, *y, acc[0]);
    }
    let sum = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    simd.reduce_sum_f32s(sum) + tail
}

/// Runs `f` compiled for the widest SIMD the CPU has, so plain loops over slices in it
/// (and in `#[inline(always)]` helpers it calls) are auto-vectorised at that width.
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    ARCH.dispatch(f)
}

/// `acc += row` element-wise.
pub fn add_assign(acc: &mut [f32], row: &[f32]) {
    struct Add<'a>(&'a mut [f32], &'a [f32]);
    impl WithSimd for Add<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let (acc, acc_tail) = S::as_mut_simd_f32s(self.0);
            let (row, row_tail) = S::as_simd_f32s(self.1);
            for (a, r) in acc.iter_mut().zip(row) {
                *a = simd.add_f32s(*a, *r);
            }
            for (a, r) in acc_tail.iter_mut().zip(row_tail) {
                *a += r;
            }
        }
    }
    debug_assert_eq!(acc.len(), row.len());
    ARCH.dispatch(Add(acc, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lengths around the SIMD widths (8 and 16 lanes, 4 accumulators) against a plain loop.
    #[test]
    fn kernels_match_plain_loops_at_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 64, 65, 200, 1024, 1031] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "dot at {n}");
            let mut many = Vec::new();
            dots_into(&a, [&b[..], &a[..]].into_iter(), &mut many);
            assert_eq!(many, [dot(&a, &b), dot(&a, &a)], "dots at {n}");
            let mut acc = a.clone();
            add_assign(&mut acc, &b);
            let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
            assert_eq!(acc, sum, "add at {n}");
        }
    }
}
