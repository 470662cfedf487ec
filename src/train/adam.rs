//! Adam (Kingma & Ba) with its moments in reach: the same update as candle's `AdamW` with
//! weight decay 0 (the paper trains both nets with plain Adam), but the first and second
//! moments and the step count can be saved with a checkpoint and restored, so a resumed
//! run continues exactly where an uninterrupted one would be. candle keeps them private.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

pub struct Adam {
    slots: Vec<Slot>,
    steps: u64,
    lr: f64,
}

impl Adam {
    /// An optimiser over named variables (names key the saved moments).
    pub fn new(vars: Vec<(String, Var)>, lr: f64) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = || Var::zeros(var.shape(), var.dtype(), var.device());
                Ok(Slot {
                    m: zeros()?,
                    v: zeros()?,
                    name,
                    var,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            slots,
            steps: 0,
            lr,
        })
    }

    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One update, in candle `AdamW`'s arithmetic (bias-corrected moments).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let scale_m = 1.0 / (1.0 - BETA1.powi(self.steps as i32));
        let scale_v = 1.0 / (1.0 - BETA2.powi(self.steps as i32));
        for s in &self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let m = ((s.m.as_tensor() * BETA1)? + (g * (1.0 - BETA1))?)?;
            let v = ((s.v.as_tensor() * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&m * scale_m)?;
            let v_hat = (&v * scale_v)?;
            let update = (m_hat / (v_hat.sqrt()? + EPS)?)?;
            s.var.set(&(s.var.as_tensor() - (update * self.lr)?)?)?;
            s.m.set(&m)?;
            s.v.set(&v)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`adam.m.<name>`, `adam.v.<name>`), to save.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("adam.m.{}", s.name), s.m.as_tensor().clone());
            out.insert(format!("adam.v.{}", s.name), s.v.as_tensor().clone());
        }
        out
    }

    /// Restores moments saved by [`Adam::state`] after `steps` updates. Every variable's
    /// moments must be there.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for s in &self.slots {
            for (kind, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("adam.{kind}.{}", s.name);
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{key}`")))?;
                var.set(&t.to_device(var.device())?)?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    fn quadratic(x: &Var) -> Tensor {
        let target = Tensor::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
        (x.as_tensor() - target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    }

    #[test]
    fn matches_candle_adamw_without_weight_decay_and_resumes_exactly() {
        let start = Tensor::new(&[0.3f32, 0.1, -0.7], &Device::Cpu).unwrap();
        let ours_x = Var::from_tensor(&start).unwrap();
        let theirs_x = Var::from_tensor(&start).unwrap();
        let mut ours = Adam::new(vec![("x".into(), ours_x.clone())], 0.05).unwrap();
        let params = ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut theirs = AdamW::new(vec![theirs_x.clone()], params).unwrap();
        for _ in 0..5 {
            ours.backward_step(&quadratic(&ours_x)).unwrap();
            theirs.backward_step(&quadratic(&theirs_x)).unwrap();
        }
        // Save, continue in a fresh optimiser, and compare with an uninterrupted one.
        // A copy: `Var::from_tensor` of a variable would share its storage.
        let resumed_x = Var::from_tensor(&ours_x.as_tensor().copy().unwrap()).unwrap();
        let mut resumed = Adam::new(vec![("x".into(), resumed_x.clone())], 0.05).unwrap();
        resumed.restore(&ours.state(), ours.steps()).unwrap();
        for _ in 0..5 {
            ours.backward_step(&quadratic(&ours_x)).unwrap();
            theirs.backward_step(&quadratic(&theirs_x)).unwrap();
            resumed.backward_step(&quadratic(&resumed_x)).unwrap();
        }
        let a = ours_x.as_tensor().to_vec1::<f32>().unwrap();
        let b = theirs_x.as_tensor().to_vec1::<f32>().unwrap();
        let c = resumed_x.as_tensor().to_vec1::<f32>().unwrap();
        for i in 0..3 {
            assert!((a[i] - b[i]).abs() < 1e-6, "{a:?} vs candle {b:?}");
        }
        assert_eq!(a, c, "a resumed optimiser continues bit for bit");
    }
}
