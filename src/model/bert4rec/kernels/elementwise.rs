//! GELU (exact erf form) with its backward pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::*;

/// GELU with the exact (erf) form, as BERT's `hidden_act = "gelu"`.
#[derive(Debug, Clone, Copy)]
pub struct Gelu;

impl Gelu {
    pub fn apply(x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(Gelu)
    }

    /// `dx` from the input `x` and the gradient `dy` of the output.
    pub fn backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        x.contiguous()?
            .apply_op2_no_bwd(&dy.contiguous()?, &GeluGrad)
    }
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let out = map_rows(
            [x],
            CHUNK,
            #[inline(always)]
            |_, [x], out| {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                }
            },
        );
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(Gelu::backward(x, grad)?))
    }
}

/// `dx = dy * (Φ(x) + x φ(x))`.
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let x = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        same_len([x, g], self.name())?;
        let out = map_rows(
            [x, g],
            CHUNK,
            #[inline(always)]
            |_, [x, g], out| {
                for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
                    let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
                    *o = g * (cdf + v * pdf);
                }
            },
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::test_support::{close, var, weights};

    #[test]
    fn gelu_matches_candle_forward_and_backward() {
        let x = var(&[5, 300], 4);
        let w = weights(&[5, 300]);
        let ours = Gelu::apply(&x).unwrap();
        let reference = x.gelu_erf().unwrap();
        close(&ours, &reference, 1e-6);
        let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), 1e-5);
    }
}
