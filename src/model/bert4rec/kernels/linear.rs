//! A linear layer, `x · wᵀ + b`, as one op: the product through faer starting from the
//! bias, and a backward pass that gives all three gradients at once. Without the bias,
//! [`Product`]: the tied head's logits `hidden · itemsᵀ`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{all_threads, gemm, view, view_mut};
use super::*;
use crate::simd::add_assign;

/// `x · wᵀ + b` for `x: [.., input]`, `w: [output, input]`, `b: [output]`.
#[derive(Debug, Clone, Copy)]
pub struct Linear;

impl Linear {
    pub fn apply(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        x.contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
    }

    /// `[dx, dw, db]` from the gradient `dy` of the output, computed by one op into one
    /// buffer (each gradient is a view of it).
    pub fn backward(x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<[Tensor; 3]> {
        let all =
            x.contiguous()?
                .apply_op3_no_bwd(&w.contiguous()?, &dy.contiguous()?, &LinearGrad)?;
        let bias = Shape::from(w.dim(0)?);
        split_like(&all, [x.shape(), w.shape(), &bias])
    }
}

/// `(rows, input, output)` of `x: [.., input]` and `w: [output, input]`, checked against
/// each other.
fn dims(x: &Layout, w: &Layout, op: &str) -> Result<(usize, usize, usize)> {
    let input = last_dim(x, op)?;
    let (output, w_input) = w.shape().dims2()?;
    if w_input != input {
        candle_core::bail!(
            "{op}: x {:?} and w {:?} do not form a linear layer",
            x.shape(),
            w.shape()
        );
    }
    Ok((x.shape().elem_count() / input, input, output))
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, input, output) = dims(l1, l2, self.name())?;
        let x = contiguous(s1, l1, self.name())?;
        let w = contiguous(s2, l2, self.name())?;
        let b = contiguous(s3, l3, self.name())?;
        if b.len() != output {
            candle_core::bail!("{}: the bias needs {output} values", self.name());
        }
        Ok(product(x, l1, w, (rows, input, output), Some(b)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = Linear::backward(x, w, grad)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `x · wᵀ (+ b)` for `x` of layout `l` and the checked `(rows, input, output)`. The bias
/// rows, when there are any, are the product's starting value (written once).
fn product(
    x: &[f32],
    l: &Layout,
    w: &[f32],
    (rows, input, output): (usize, usize, usize),
    b: Option<&[f32]>,
) -> (CpuStorage, Shape) {
    let mut y = match b {
        Some(b) => b.repeat(rows),
        None => vec![0f32; rows * output],
    };
    let lhs = view(x, rows, input, input);
    let rhs = view(w, output, input, input).transpose();
    gemm(
        view_mut(&mut y, rows, output, output),
        b.is_some(),
        lhs,
        rhs,
        1.0,
        all_threads(),
    );
    let mut dims = l.dims().to_vec();
    *dims.last_mut().expect("checked non-empty") = output;
    (CpuStorage::F32(y), Shape::from(dims))
}

/// `x · wᵀ` for `x: [.., input]`, `w: [output, input]`: a linear layer without bias, as
/// the tied head's logits (candle's matmul runs the slower `gemm` crate's kernels).
#[derive(Debug, Clone, Copy)]
pub struct Product;

impl Product {
    pub fn apply(x: &Tensor, w: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&w.contiguous()?, Product)
    }
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "fused-product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims(l1, l2, self.name())?;
        let x = contiguous(s1, l1, self.name())?;
        let w = contiguous(s2, l2, self.name())?;
        Ok(product(x, l1, w, dims, None))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = Linear::backward(x, w, grad)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `dx = dy · w`, `dw = dyᵀ · x` and `db = Σ_rows dy`, flattened one after the other.
struct LinearGrad;

impl CustomOp3 for LinearGrad {
    fn name(&self) -> &'static str {
        "fused-linear-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, input, output) = dims(l1, l2, self.name())?;
        let x = contiguous(s1, l1, self.name())?;
        let w = contiguous(s2, l2, self.name())?;
        let dy = contiguous(s3, l3, self.name())?;
        if dy.len() != rows * output {
            candle_core::bail!(
                "{}: the gradient needs {rows} rows of {output}",
                self.name()
            );
        }
        let mut out = vec![0f32; rows * input + output * input + output];
        let (dx, rest) = out.split_at_mut(rows * input);
        let (dw, db) = rest.split_at_mut(output * input);
        let dy_m = view(dy, rows, output, output);
        let x_m = view(x, rows, input, input);
        let w_m = view(w, output, input, input);
        gemm(
            view_mut(dx, rows, input, input),
            false,
            dy_m,
            w_m,
            1.0,
            all_threads(),
        );
        gemm(
            view_mut(dw, output, input, input),
            false,
            dy_m.transpose(),
            x_m,
            1.0,
            all_threads(),
        );
        db.copy_from_slice(&column_sum(dy, output));
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// `Σ_rows x` of rows of width `n`: per-task partial sums, then their sum.
fn column_sum(x: &[f32], n: usize) -> Vec<f32> {
    x.par_chunks(rows_per_task(n) * n)
        .map(|x| {
            let mut acc = vec![0f32; n];
            x.chunks(n).for_each(|row| add_assign(&mut acc, row));
            acc
        })
        .reduce(
            || vec![0f32; n],
            |mut a, b| {
                add_assign(&mut a, &b);
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::test_support::{close, var, weights};

    #[test]
    fn linear_matches_candle_forward_and_backward() {
        // A 3-d input, as the encoder's [batch, len, hidden] before it is flattened.
        let x = var(&[4, 35, 33], 8);
        let w = var(&[17, 33], 3);
        let b = var(&[17], 9);
        let out = weights(&[4, 35, 17]);
        let ours = Linear::apply(&x, &w, &b).unwrap();
        let reference = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        close(&ours, &reference, 1e-5);
        let g1 = (&ours * &out)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (&reference * &out)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            let (a, r) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            assert_eq!(a.dims(), r.dims());
            close(a, r, 1e-4);
        }
    }

    #[test]
    fn product_matches_candle_matmul_forward_and_backward() {
        let x = var(&[7, 33], 2);
        let w = var(&[300, 33], 5);
        let out = weights(&[7, 300]);
        let ours = Product::apply(&x, &w).unwrap();
        let reference = x.matmul(&w.t().unwrap()).unwrap();
        close(&ours, &reference, 1e-5);
        let g1 = (&ours * &out)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (&reference * &out)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-4);
        }
    }
}
