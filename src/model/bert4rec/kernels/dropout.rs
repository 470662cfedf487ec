//! Inverted dropout whose mask is a hash of (seed, element index): regenerated exactly in
//! backward, independent of how rows are split among threads. Alone, or on the branch of a
//! residual connection (`x + dropout(y)` in one pass, as every BERT block ends).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::*;

/// Which elements dropout keeps, and the scale `1 / (1 - p)` of those kept: a counter-based
/// generator (SplitMix64's finaliser over `seed` and the element's index).
#[derive(Debug, Clone, Copy)]
pub struct DropoutMask {
    seed: u64,
    threshold: u32,
    scale: f32,
}

impl DropoutMask {
    pub fn new(seed: u64, p: f32) -> Self {
        Self {
            seed,
            threshold: (p as f64 * u32::MAX as f64) as u32,
            scale: 1.0 / (1.0 - p),
        }
    }

    /// The factor of element `i`: `0` (dropped) or `1 / (1 - p)`.
    #[inline(always)]
    pub(super) fn factor(&self, i: usize) -> f32 {
        let mut z = self
            .seed
            .wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if (z >> 32) as u32 >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

/// Inverted dropout, `x * mask` (also its own backward: the gradient gets the same mask).
#[derive(Debug, Clone, Copy)]
pub struct Dropout(pub DropoutMask);

impl Dropout {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(self)
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let out = map_rows(
            [x],
            CHUNK,
            #[inline(always)]
            |c, [x], out| {
                for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
                    *o = v * self.0.factor(c * CHUNK + j);
                }
            },
        );
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.apply(grad)?))
    }
}

/// `x + y * mask`: a residual connection around a dropped-out branch (`mask` `None`: no
/// dropout). One pass instead of two ops; the gradient reaches `x` unchanged and `y`
/// through the same mask as [`Dropout`] would apply.
#[derive(Debug, Clone, Copy)]
pub struct Residual(pub Option<DropoutMask>);

impl Residual {
    pub fn apply(self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&y.contiguous()?, self)
    }

    /// The gradient of the branch `y` from `d_out`; that of `x` is `d_out` itself.
    pub fn branch_backward(self, d_out: &Tensor) -> Result<Tensor> {
        match self.0 {
            Some(mask) => Dropout(mask).apply(d_out),
            None => Ok(d_out.clone()),
        }
    }
}

impl CustomOp2 for Residual {
    fn name(&self) -> &'static str {
        "fused-residual-dropout"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let y = contiguous(s2, l2, self.name())?;
        same_len([x, y], self.name())?;
        let out = map_rows(
            [x, y],
            CHUNK,
            #[inline(always)]
            |c, [x, y], out| match &self.0 {
                Some(mask) => {
                    for (j, ((o, &x), &y)) in out.iter_mut().zip(x).zip(y).enumerate() {
                        *o = x + y * mask.factor(c * CHUNK + j);
                    }
                }
                None => {
                    for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
                        *o = x + y;
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), Some(self.branch_backward(grad)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn dropout_masks_agree_forward_and_backward_and_keep_the_expected_share() {
        let n = 100_000;
        let x = Var::from_tensor(&Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let mask = DropoutMask::new(7, 0.2);
        let y = Dropout(mask).apply(&x).unwrap();
        let kept = y.to_vec1::<f32>().unwrap();
        let share = kept.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
        assert!((share - 0.8).abs() < 0.01, "kept {share}");
        assert!(kept.iter().all(|&v| v == 0.0 || v == 1.25));
        // d(sum y)/dx is the mask itself.
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec1::<f32>().unwrap(), kept);
    }

    #[test]
    fn residual_matches_an_add_and_dropout_forward_and_backward() {
        use crate::model::bert4rec::kernels::test_support::{close, var, weights};
        let x = var(&[9, 5_000], 3);
        let y = var(&[9, 5_000], 4);
        let w = weights(&[9, 5_000]);
        for mask in [None, Some(DropoutMask::new(5, 0.1))] {
            let ours = Residual(mask).apply(&x, &y).unwrap();
            let dropped = match mask {
                Some(m) => Dropout(m).apply(&y).unwrap(),
                None => y.as_tensor().clone(),
            };
            let reference = (x.as_tensor() + dropped).unwrap();
            close(&ours, &reference, 0.0);
            let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&reference * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &y] {
                close(g1.get(v).unwrap(), g2.get(v).unwrap(), 0.0);
            }
        }
    }
}
