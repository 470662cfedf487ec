//! Attention's backward pass, as one op over a whole batch: per sequence and head it
//! recomputes the softmax block from Q and K (see the parent's doc) rather than reading a
//! stored one.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};
use faer::Par;
use rayon::prelude::*;

use super::super::contiguous;
use super::super::gemm::{gemm, view, view_mut};
use super::Attention;
use crate::simd::{dot, vectorized};

/// The gradient with respect to `qkv`, from that of the output. Per head, with `P` the
/// softmax, `D` the dropout mask and `Pd = P ∘ D`: `dV = Pdᵀ dO`, `dP = (dO Vᵀ) ∘ D`,
/// `dS = P ∘ (dP - rowsum(dP ∘ P))`, `dQ = scale · dS K`, `dK = scale · dSᵀ Q`.
pub(super) struct AttentionGrad(pub(super) Attention);

impl CustomOp2 for AttentionGrad {
    fn name(&self) -> &'static str {
        "fused-attention-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = &self.0;
        let qkv = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        let h = a.hidden(l1, self.name())?;
        if g.len() * 3 != qkv.len() {
            candle_core::bail!("{}: the gradient must be [tokens, hidden]", self.name());
        }
        let (len, hd, stride) = (a.len, h / a.heads, 3 * h);
        let mut out = vec![0f32; qkv.len()];
        out.par_chunks_mut(len * stride)
            .zip(g.par_chunks(len * h))
            .zip(a.sequences(qkv, h))
            .for_each(|((dqkv, g), seq)| {
                let (mut p, mut d) = (vec![0f32; len * len], vec![0f32; len * len]);
                vectorized(
                    #[inline(always)]
                    || {
                        for head in 0..a.heads {
                            let col = head * hd;
                            let [q, k, v] = seq.views(head, hd, h, len);
                            let dout = view(&g[col..], len, hd, h);
                            a.probabilities(&seq, head, h, &mut p);
                            // d holds Pd, then dP, then dS.
                            d.copy_from_slice(&p);
                            a.drop(&seq, head, &mut d);
                            let dv = view_mut(&mut dqkv[2 * h + col..], len, hd, stride);
                            gemm(
                                dv,
                                false,
                                view(&d, len, len, len).transpose(),
                                dout,
                                1.0,
                                Par::Seq,
                            );
                            gemm(
                                view_mut(&mut d, len, len, len),
                                false,
                                dout,
                                v.transpose(),
                                1.0,
                                Par::Seq,
                            );
                            a.drop(&seq, head, &mut d);
                            for (d, p) in d.chunks_mut(len).zip(p.chunks(len)) {
                                let dot = dot(d, p);
                                for (d, &p) in d.iter_mut().zip(p) {
                                    *d = p * (*d - dot);
                                }
                            }
                            let ds = view(&d, len, len, len);
                            let dq = view_mut(&mut dqkv[col..], len, hd, stride);
                            gemm(dq, false, ds, k, a.scale, Par::Seq);
                            let dk = view_mut(&mut dqkv[h + col..], len, hd, stride);
                            gemm(dk, false, ds.transpose(), q, a.scale, Par::Seq);
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
