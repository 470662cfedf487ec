//! Dot products of selected row pairs, `out[k] = a[left[k]] · b[right[k]]`, as one CPU
//! op with its own backward pass.
//!
//! The negative scores of a batch are 10,000 pairs x 20 users: gathering those rows
//! with `index_select` materialises a `[200k, d]` tensor (820 MB at 1,024-d) forward and
//! again backward, which made the gather cost more than the tower itself. This op reads
//! the rows in place and scatters the gradient straight into `[rows, d]` buffers, one
//! row per task, so no two tasks write the same memory. CUDA keeps the gather path (see
//! [`super::loss`]), where memory bandwidth makes it cheap.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::simd::dot;

/// Rows of `a` and `b` paired by index, plus, for the backward pass, which pairs touch
/// each row (a CSR grouping), computed once.
#[derive(Debug, Clone)]
pub struct PairDot {
    left: Arc<Vec<u32>>,
    right: Arc<Vec<u32>>,
}

impl PairDot {
    pub fn new(left: Vec<u32>, right: Vec<u32>) -> Self {
        assert_eq!(
            left.len(),
            right.len(),
            "pairs need a left and a right row each"
        );
        Self {
            left: Arc::new(left),
            right: Arc::new(right),
        }
    }

    /// `out[k] = a[left[k]] · b[right[k]]` for `a: [n_a, d]`, `b: [n_b, d]`.
    pub fn apply(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.apply_op2(b, self)
    }
}

fn rows<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<(&'a [f32], usize)> {
    let values = crate::model::device::cpu_f32(s, l, &format!("pair-dot {what}"))?;
    let dims = l.dims();
    if dims.len() != 2 {
        candle_core::bail!("pair-dot: {what} must be a matrix, got {dims:?}");
    }
    Ok((values, dims[1]))
}

/// For each row `r < n`, the positions `k` with `index[k] == r` (counting sort).
fn group(index: &[u32], n: usize) -> (Vec<usize>, Vec<u32>) {
    let mut start = vec![0usize; n + 1];
    index.iter().for_each(|&r| start[r as usize + 1] += 1);
    (0..n).for_each(|r| start[r + 1] += start[r]);
    let mut fill = start.clone();
    let mut order = vec![0u32; index.len()];
    for (k, &r) in index.iter().enumerate() {
        order[fill[r as usize]] = k as u32;
        fill[r as usize] += 1;
    }
    (start, order)
}

/// `grad[r] = Σ_{k: index[k] = r} g[k] * other[partner[k]]`, one row per task.
fn scatter(
    index: &[u32],
    partner: &[u32],
    g: &[f32],
    other: &[f32],
    n: usize,
    d: usize,
) -> Vec<f32> {
    let (start, order) = group(index, n);
    let mut grad = vec![0f32; n * d];
    grad.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
        for &k in &order[start[r]..start[r + 1]] {
            let gk = g[k as usize];
            let p = partner[k as usize] as usize;
            out.iter_mut()
                .zip(&other[p * d..(p + 1) * d])
                .for_each(|(o, x)| *o += gk * x);
        }
    });
    grad
}

impl CustomOp2 for PairDot {
    fn name(&self) -> &'static str {
        "pair-dot"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, d) = rows(s1, l1, "left")?;
        let (b, d2) = rows(s2, l2, "right")?;
        if d != d2 {
            candle_core::bail!("pair-dot: widths differ ({d} vs {d2})");
        }
        let (na, nb) = (a.len() / d, b.len() / d);
        if self.left.iter().any(|&i| i as usize >= na)
            || self.right.iter().any(|&i| i as usize >= nb)
        {
            candle_core::bail!("pair-dot: row index out of range");
        }
        let out: Vec<f32> = self
            .left
            .par_iter()
            .zip(self.right.par_iter())
            .with_min_len(1024)
            .map(|(&i, &j)| {
                let (i, j) = (i as usize, j as usize);
                dot(&a[i * d..(i + 1) * d], &b[j * d..(j + 1) * d])
            })
            .collect();
        let n = out.len();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (na, d) = a.dims2()?;
        let nb = b.dim(0)?;
        let g = grad.to_vec1::<f32>()?;
        let av = a.flatten_all()?.to_vec1::<f32>()?;
        let bv = b.flatten_all()?.to_vec1::<f32>()?;
        let ga = scatter(&self.left, &self.right, &g, &bv, na, d);
        let gb = scatter(&self.right, &self.left, &g, &av, nb, d);
        Ok((
            Some(Tensor::from_vec(ga, (na, d), a.device())?),
            Some(Tensor::from_vec(gb, (nb, d), b.device())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_gradients_match_the_gather_formulation() {
        let dev = Device::Cpu;
        let a = Var::new(&[[1f32, 2.0], [0.5, -1.0], [3.0, 0.0]], &dev).unwrap();
        let b = Var::new(&[[2f32, 1.0], [-1.0, 4.0]], &dev).unwrap();
        let (left, right) = (vec![0u32, 2, 0, 1], vec![1u32, 0, 1, 1]);
        let w = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &dev).unwrap();
        let out = PairDot::new(left.clone(), right.clone())
            .apply(&a, &b)
            .unwrap();
        // [1,2]·[-1,4]=7, [3,0]·[2,1]=6, 7 again, [0.5,-1]·[-1,4]=-4.5
        assert_eq!(out.to_vec1::<f32>().unwrap(), vec![7.0, 6.0, 7.0, -4.5]);
        let grads = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let li = Tensor::new(left.as_slice(), &dev).unwrap();
        let ri = Tensor::new(right.as_slice(), &dev).unwrap();
        let reference = (a.index_select(&li, 0).unwrap() * b.index_select(&ri, 0).unwrap())
            .unwrap()
            .sum(1)
            .unwrap();
        let ref_grads = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&a, &b] {
            let got = grads.get(v).unwrap().to_vec2::<f32>().unwrap();
            let want = ref_grads.get(v).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(got, want);
        }
        // by hand: grad a[0] = 1*b[1] + 3*b[1] = [-4, 16]
        let ga = grads.get(&a).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(ga[0], vec![-4.0, 16.0]);
    }
}
