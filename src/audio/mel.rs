//! Mel spectrograms as librosa 0.11 computes them (`librosa.feature.melspectrogram` with its
//! defaults: periodic Hann window, `center=True` with zero padding, power 2, Slaney mel scale
//! and Slaney area normalisation), and musicnn's log compression of them.
//!
//! The arithmetic follows librosa's dtypes so that results agree to float32 rounding: the
//! window and FFT in float64 (numpy's FFT upcasts), the STFT stored as complex64, its
//! magnitude squared in float32, and the mel filters in float32.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Frame settings of one mel front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MelSettings {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop: usize,
    pub n_mels: usize,
}

/// musicnn's input: 16 kHz, 512-point FFT, hop 256, 96 mel bands.
pub const MUSICNN: MelSettings = MelSettings {
    sample_rate: 16_000,
    n_fft: 512,
    hop: 256,
    n_mels: 96,
};

/// A mel filterbank plus FFT plan for one [`MelSettings`]; build once, use for many signals.
pub struct MelSpectrogram {
    settings: MelSettings,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    /// Per mel band: the first FFT bin with a non-zero weight, and the weights from there.
    filters: Vec<(usize, Vec<f32>)>,
}

impl MelSpectrogram {
    pub fn new(settings: MelSettings) -> Self {
        let n = settings.n_fft;
        // scipy.signal.get_window("hann", n, fftbins=True): the periodic Hann window.
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let filters = mel_filters(settings)
            .into_iter()
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(row.len());
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                (start, row[start..end].to_vec())
            })
            .collect();
        Self {
            settings,
            window,
            fft,
            filters,
        }
    }

    pub fn settings(&self) -> MelSettings {
        self.settings
    }

    /// Number of frames librosa produces for `len` samples with `center=True`.
    pub fn n_frames(&self, len: usize) -> usize {
        1 + len / self.settings.hop
    }

    /// The mel power spectrogram, time-major: `[frames, n_mels]` row-major.
    pub fn power(&self, samples: &[f32]) -> Vec<f32> {
        let MelSettings {
            n_fft, hop, n_mels, ..
        } = self.settings;
        let frames = self.n_frames(samples.len());
        let half = n_fft / 2;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; spectrum.len()];
        let mut out = vec![0f32; frames * n_mels];
        for (t, row) in out.chunks_exact_mut(n_mels).enumerate() {
            // Frame t covers samples [t*hop - n_fft/2, t*hop + n_fft/2) of the zero-padded signal.
            let start = (t * hop) as isize - half as isize;
            for (i, x) in input.iter_mut().enumerate() {
                let s = start + i as isize;
                let v = if s >= 0 && (s as usize) < samples.len() {
                    f64::from(samples[s as usize])
                } else {
                    0.0
                };
                *x = v * self.window[i];
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                let m = (c.re as f32).hypot(c.im as f32);
                *p = m * m;
            }
            for (v, (start, weights)) in row.iter_mut().zip(&self.filters) {
                *v = weights
                    .iter()
                    .zip(&power[*start..])
                    .map(|(w, p)| w * p)
                    .sum();
            }
        }
        out
    }
}

/// musicnn's log-mel: the mel power rounded to float16 (musicnn stores it so), then
/// `log10(10000 x + 1)` in float32. Time-major `[frames, 96]`.
pub fn musicnn_log_mel(mel: &MelSpectrogram, samples_16k: &[f32]) -> Vec<f32> {
    let mut out = mel.power(samples_16k);
    for v in &mut out {
        let rounded = half::f16::from_f32(*v).to_f32();
        *v = (10000.0 * rounded + 1.0).log10();
    }
    out
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney")`:
/// `[n_mels][1 + n_fft/2]` triangular filters with unit area.
pub fn mel_filters(s: MelSettings) -> Vec<Vec<f32>> {
    let bins = 1 + s.n_fft / 2;
    let sr = f64::from(s.sample_rate);
    // numpy.fft.rfftfreq(n, d=1/sr) computes k * (1 / (n * d)).
    let step = 1.0 / (s.n_fft as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..bins).map(|k| k as f64 * step).collect();
    let mel_f = mel_frequencies(s.n_mels + 2, 0.0, sr / 2.0);
    (0..s.n_mels)
        .map(|i| {
            let (lo, mid, hi) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            let enorm = 2.0 / (hi - lo);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = -(lo - f) / (mid - lo);
                    let upper = (hi - f) / (hi - mid);
                    // librosa stores the triangle in float32, then scales it in float64.
                    let w = lower.min(upper).max(0.0) as f32;
                    (f64::from(w) * enorm) as f32
                })
                .collect()
        })
        .collect()
}

/// `librosa.mel_frequencies(n, fmin, fmax, htk=False)`: band edges evenly spaced on the
/// Slaney mel scale, as `np.linspace` places them.
fn mel_frequencies(n: usize, fmin: f64, fmax: f64) -> Vec<f64> {
    let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let step = (hi - lo) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            let m = if i == n - 1 { hi } else { i as f64 * step + lo };
            mel_to_hz(m)
        })
        .collect()
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Slaney's mel scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(f: f64) -> f64 {
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / log_step()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        assert!((hz_to_mel(600.0) - 9.0).abs() < 1e-12);
        for f in [0.0, 440.0, 1000.0, 3000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9 * f.max(1.0));
        }
    }

    #[test]
    fn filters_are_triangles_peaking_at_their_centre_bin() {
        // The values themselves are checked against librosa in tests/core/audio.rs.
        for row in mel_filters(MUSICNN) {
            let peak = row.iter().copied().fold(0f32, f32::max);
            assert!(peak > 0.0);
            let top = row.iter().position(|&w| w == peak).unwrap();
            assert!(row[..top].windows(2).all(|p| p[0] <= p[1]));
            assert!(row[top..].windows(2).all(|p| p[0] >= p[1]));
        }
    }

    #[test]
    fn frame_count_matches_librosa_center_true() {
        let mel = MelSpectrogram::new(MUSICNN);
        assert_eq!(mel.n_frames(16_000), 63);
        assert_eq!(mel.power(&vec![0.0; 16_000]).len(), 63 * 96);
    }
}
