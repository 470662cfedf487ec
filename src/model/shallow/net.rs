//! The Shallow Net (Tamm & Aljanaki §3.2): an item table, a user table, one shared
//! `Linear(d_in, d_out) + ReLU` tower applied to both, and cosine scores.
//!
//! A frozen table is a plain [`Tensor`], never a [`Var`], so no gradient can reach it
//! and the optimizer cannot touch it.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Result, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A table that is either trained or held fixed.
#[derive(Debug, Clone)]
pub enum Table {
    Frozen(Tensor),
    Trainable(Var),
}

impl Table {
    pub fn new(t: Tensor, trainable: bool) -> Result<Self> {
        Ok(if trainable {
            Table::Trainable(Var::from_tensor(&t)?)
        } else {
            Table::Frozen(t)
        })
    }

    pub fn tensor(&self) -> &Tensor {
        match self {
            Table::Frozen(t) => t,
            Table::Trainable(v) => v.as_tensor(),
        }
    }

    pub fn var(&self) -> Option<&Var> {
        match self {
            Table::Frozen(_) => None,
            Table::Trainable(v) => Some(v),
        }
    }
}

/// The model's parameters. Rows of `users` follow the checkpoint's user ids; rows of
/// `items` are catalog track indices.
#[derive(Debug, Clone)]
pub struct ShallowNet {
    pub items: Table,
    pub users: Table,
    /// `[d_out, d_in]`, as PyTorch's `nn.Linear` stores it.
    pub weight: Var,
    pub bias: Var,
}

impl ShallowNet {
    /// A tower initialised as PyTorch's `nn.Linear` (weight and bias uniform in
    /// ±1/√d_in), from a seeded generator so runs repeat on every device.
    pub fn new(
        items: Table,
        users: Table,
        d_out: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let d_in = items.tensor().dim(1)?;
        let bound = 1.0 / (d_in as f32).sqrt();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = Tensor::from_vec(uniform(d_out * d_in), (d_out, d_in), device)?;
        let bias = Tensor::from_vec(uniform(d_out), d_out, device)?;
        Ok(Self {
            items,
            users,
            weight: Var::from_tensor(&weight)?,
            bias: Var::from_tensor(&bias)?,
        })
    }

    pub fn d_in(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn d_out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `ReLU(x Wᵀ + b)` for rows `x: [n, d_in]`.
    pub fn tower(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?
            .broadcast_add(self.bias.as_tensor())?
            .relu()
    }

    /// The tower's output, L2-normalised per row: the vectors whose dot product is the
    /// model's cosine score.
    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        normalize_rows(&self.tower(x)?)
    }

    /// Everything the optimizer updates: the tower, plus the tables that are not frozen,
    /// named as in [`ShallowNet::named_tensors`].
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut vars = vec![
            ("tower.weight".to_string(), self.weight.clone()),
            ("tower.bias".to_string(), self.bias.clone()),
        ];
        vars.extend(self.users.var().map(|v| ("users".to_string(), v.clone())));
        vars.extend(self.items.var().map(|v| ("items".to_string(), v.clone())));
        vars
    }

    /// Named tensors for a safetensors file. A frozen item table is the backend matrix
    /// itself and is not stored (serving reads it from the backend, so new tracks work).
    pub fn named_tensors(&self) -> HashMap<String, Tensor> {
        let mut map = HashMap::from([
            ("tower.weight".to_string(), self.weight.as_tensor().clone()),
            ("tower.bias".to_string(), self.bias.as_tensor().clone()),
            ("users".to_string(), self.users.tensor().clone()),
        ]);
        if let Table::Trainable(v) = &self.items {
            map.insert("items".into(), v.as_tensor().clone());
        }
        map
    }
}

/// Divides each row by its L2 norm; an all-zero row (every ReLU off) stays zero.
pub fn normalize_rows(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// `rows x dim` values from N(0, 1) (PyTorch's `nn.Embedding` init), seeded.
pub fn random_table(rows: usize, dim: usize, seed: u64, device: &Device) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_vec(v, (rows, dim), device)
}

/// A row-major `[rows, dim]` f32 matrix on `device`.
pub fn matrix(values: &[f32], dim: usize, device: &Device) -> Result<Tensor> {
    Tensor::from_slice(values, (values.len() / dim, dim), device)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tower_is_relu_of_an_affine_map() {
        let dev = Device::Cpu;
        let items = Table::new(matrix(&[1.0, 0.0, 0.0, 1.0], 2, &dev).unwrap(), false).unwrap();
        let users = Table::new(matrix(&[1.0, 1.0], 2, &dev).unwrap(), true).unwrap();
        let net = ShallowNet::new(items, users, 2, 0, &dev).unwrap();
        net.weight
            .set(&matrix(&[1.0, -1.0, 2.0, 0.5], 2, &dev).unwrap())
            .unwrap();
        net.bias
            .set(&Tensor::new(&[0.5f32, -3.0], &dev).unwrap())
            .unwrap();
        let x = matrix(&[1.0, 2.0, 3.0, -1.0], 2, &dev).unwrap();
        // row 1: [1-2+0.5, 2+1-3] = [-0.5, 0] -> [0, 0]; row 2: [3+1+0.5, 6-0.5-3] = [4.5, 2.5]
        let out = net.tower(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(out, vec![vec![0.0, 0.0], vec![4.5, 2.5]]);
        let e = net.embed(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(e[0], vec![0.0, 0.0], "a dead row stays zero, not NaN");
        let n = (4.5f32 * 4.5 + 2.5 * 2.5).sqrt();
        assert!((e[1][0] - 4.5 / n).abs() < 1e-6 && (e[1][1] - 2.5 / n).abs() < 1e-6);
        assert_eq!(net.named_vars().len(), 3, "tower weight, bias and users");
        assert!(!net.named_tensors().contains_key("items"));
    }
}
