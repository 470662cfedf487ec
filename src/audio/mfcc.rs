//! The MFCC baseline as Music4All-Onion provides it: 13 MFCCs per frame with librosa's
//! defaults (22,050 Hz, n_fft 2048, hop 512, 128 mel bands, `power_to_db` with ref 1,
//! amin 1e-10 and top_db 80, orthonormal DCT-II), summarised per track as the mean of each
//! coefficient (13) followed by the upper triangle of their covariance (91, row by row,
//! diagonal included, ddof 1): 104 values.

use super::AudioError;
use super::mel::{MelSettings, MelSpectrogram};

/// Sample rate the MFCC front end expects.
pub const SAMPLE_RATE: u32 = 22_050;
pub const N_MFCC: usize = 13;
/// Length of [`track_vector`]: 13 means + 13·14/2 covariances.
pub const TRACK_DIM: usize = N_MFCC + N_MFCC * (N_MFCC + 1) / 2;

/// librosa's defaults for `librosa.feature.mfcc`.
pub const SETTINGS: MelSettings = MelSettings {
    sample_rate: SAMPLE_RATE,
    n_fft: 2048,
    hop: 512,
    n_mels: 128,
};

/// How a track vector is made, for manifests and reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MfccRecipe {
    pub frames: MelSettings,
    pub n_mfcc: usize,
    pub top_db: f32,
    pub summary: &'static str,
    pub covariance_ddof: u32,
}

pub fn recipe() -> MfccRecipe {
    MfccRecipe {
        frames: SETTINGS,
        n_mfcc: N_MFCC,
        top_db: TOP_DB,
        summary: "mean (13) then upper triangle of covariance, row-major with diagonal (91)",
        covariance_ddof: 1,
    }
}

const AMIN: f32 = 1e-10;
const TOP_DB: f32 = 80.0;

/// MFCCs `[frames][13]` of a 22,050 Hz mono signal, as `librosa.feature.mfcc(n_mfcc=13)`.
pub fn mfcc(mel: &MelSpectrogram, samples_22k: &[f32]) -> Vec<[f32; N_MFCC]> {
    debug_assert_eq!(mel.settings(), SETTINGS);
    let n_mels = SETTINGS.n_mels;
    let mut db = mel.power(samples_22k);
    for v in &mut db {
        *v = 10.0 * v.max(AMIN).log10();
    }
    let floor = db.iter().copied().fold(f32::NEG_INFINITY, f32::max) - TOP_DB;
    for v in &mut db {
        *v = v.max(floor);
    }
    let basis = dct_basis(n_mels);
    db.chunks_exact(n_mels)
        .map(|frame| {
            let mut c = [0f32; N_MFCC];
            for (k, ck) in c.iter_mut().enumerate() {
                let row = &basis[k * n_mels..(k + 1) * n_mels];
                *ck = row
                    .iter()
                    .zip(frame)
                    .map(|(b, x)| b * f64::from(*x))
                    .sum::<f64>() as f32;
            }
            c
        })
        .collect()
}

/// The first [`N_MFCC`] rows of the orthonormal DCT-II matrix (scipy `norm="ortho"`).
fn dct_basis(n: usize) -> Vec<f64> {
    let mut basis = Vec::with_capacity(N_MFCC * n);
    for k in 0..N_MFCC {
        let scale = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        for i in 0..n {
            let angle = std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2 * n) as f64;
            basis.push(scale * angle.cos());
        }
    }
    basis
}

/// The 104-d track vector of a 22,050 Hz mono signal (`mel` built from [`SETTINGS`]).
/// A covariance needs two frames, so under 512 samples is [`AudioError::TooShort`].
pub fn track_vector(
    mel: &MelSpectrogram,
    samples_22k: &[f32],
) -> Result<[f32; TRACK_DIM], AudioError> {
    summarize(&mfcc(mel, samples_22k)).ok_or(AudioError::TooShort {
        samples: samples_22k.len(),
        needed: SETTINGS.hop,
    })
}

/// Mean and upper-triangle covariance (ddof 1) of per-frame MFCCs.
pub fn summarize(frames: &[[f32; N_MFCC]]) -> Option<[f32; TRACK_DIM]> {
    let n = frames.len();
    if n < 2 {
        return None;
    }
    let mut mean = [0f64; N_MFCC];
    for f in frames {
        for (m, x) in mean.iter_mut().zip(f) {
            *m += f64::from(*x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut out = [0f32; TRACK_DIM];
    for (o, m) in out.iter_mut().zip(&mean) {
        *o = *m as f32;
    }
    let mut pos = N_MFCC;
    for i in 0..N_MFCC {
        for j in i..N_MFCC {
            let cov: f64 = frames
                .iter()
                .map(|f| (f64::from(f[i]) - mean[i]) * (f64::from(f[j]) - mean[j]))
                .sum::<f64>()
                / (n - 1) as f64;
            out[pos] = cov as f32;
            pos += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covariance_of_two_frames_by_hand() {
        let mut a = [0f32; N_MFCC];
        let mut b = [0f32; N_MFCC];
        a[0] = 1.0;
        b[0] = 3.0;
        a[1] = 2.0;
        b[1] = -2.0;
        let v = summarize(&[a, b]).unwrap();
        assert_eq!(v[0], 2.0);
        assert_eq!(v[1], 0.0);
        // var(x0) = ((1-2)^2 + (3-2)^2) / 1 = 2; cov(x0, x1) = ((-1)(2) + (1)(-2)) / 1 = -4.
        assert_eq!(v[N_MFCC], 2.0);
        assert_eq!(v[N_MFCC + 1], -4.0);
        // var(x1) is the first entry of the second triangle row.
        assert_eq!(v[N_MFCC + N_MFCC], 8.0);
        assert!(summarize(&[a]).is_none());
    }

    #[test]
    fn dct_rows_are_orthonormal() {
        let n = 128;
        let b = dct_basis(n);
        for k in 0..N_MFCC {
            for l in 0..N_MFCC {
                let dot: f64 = (0..n).map(|i| b[k * n + i] * b[l * n + i]).sum();
                let want = if k == l { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-12);
            }
        }
    }
}
