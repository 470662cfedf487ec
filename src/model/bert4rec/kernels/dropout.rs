//! Inverted dropout whose mask is a hash of (seed, element index): regenerated exactly in
//! backward, independent of how rows are split among threads.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

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
}
