//! Sample-rate conversion with rubato's synchronous FFT resampler (fixed ratio, whole clip,
//! start-up delay trimmed), so decoded audio of any rate reaches the models' 16 kHz and
//! 22,050 Hz.

use rubato::audioadapter_buffers::direct::SequentialSliceOfSlices;
use rubato::{Fft, FixedSync, Resampler};

use super::AudioError;

/// Frames per FFT chunk: long enough for a steep anti-aliasing filter, short enough that a
/// clip of a second pays little for the last partial chunk.
const CHUNK: usize = 1024;

/// Resamples mono `samples` from `from` Hz to `to` Hz (a copy when the rates agree).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    if from == to {
        return Ok(samples.to_vec());
    }
    let err = |detail: String| AudioError::Resample { from, to, detail };
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Input)
        .map_err(|e| err(e.to_string()))?;
    let planes = [samples];
    let input =
        SequentialSliceOfSlices::new(&planes, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let out = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn a_tone_resampled_is_the_same_tone_at_the_new_rate() {
        for (from, to) in [
            (44_100, 16_000),
            (22_050, 16_000),
            (16_000, 22_050),
            (48_000, 22_050),
        ] {
            let out = resample(&tone(from, 440.0, 1.0), from, to).unwrap();
            assert!(
                out.len().abs_diff(to as usize) <= 1,
                "{from}->{to}: {} samples",
                out.len()
            );
            // Fit a·sin + b·cos at 440 Hz away from the clip's edges (where the filter sees
            // the implicit zeros): the amplitude is kept, the delay is under one
            // output sample (rubato trims its start-up delay to whole output samples), and
            // what is left over (aliasing, ripple) is small.
            let w = 2.0 * std::f64::consts::PI * 440.0 / f64::from(to);
            let span = (to as usize / 10)..(to as usize * 9 / 10);
            let n = span.len() as f64;
            let (mut a, mut b) = (0.0, 0.0);
            for i in span.clone() {
                a += f64::from(out[i]) * (w * i as f64).sin() * 2.0 / n;
                b += f64::from(out[i]) * (w * i as f64).cos() * 2.0 / n;
            }
            let amplitude = a.hypot(b);
            let delay_s = (-b).atan2(a) / (2.0 * std::f64::consts::PI * 440.0);
            assert!(
                (amplitude - 0.5).abs() < 0.005,
                "{from}->{to}: amplitude {amplitude}"
            );
            assert!(
                delay_s.abs() < 1.0 / f64::from(to),
                "{from}->{to}: delay {delay_s} s"
            );
            let residual = span
                .map(|i| {
                    (f64::from(out[i]) - a * (w * i as f64).sin() - b * (w * i as f64).cos()).abs()
                })
                .fold(0f64, f64::max);
            assert!(residual < 2e-3, "{from}->{to}: residual {residual}");
        }
    }

    #[test]
    fn same_rate_is_a_copy_and_empty_input_is_an_error() {
        assert_eq!(
            resample(&[0.5, -0.5], 16_000, 16_000).unwrap(),
            vec![0.5, -0.5]
        );
        assert!(matches!(
            resample(&[], 44_100, 16_000),
            Err(AudioError::Empty)
        ));
    }
}
