//! The audio front end against references made by `scripts/musicnn_fixtures.py` with
//! librosa 0.11 / numpy 1.26 (fixtures in tests/fixtures/audio/), and the decoders on
//! small encoded files made there with flac, lame and oggenc.

use std::path::{Path, PathBuf};

use audiorec::audio::mel::{self, MelSpectrogram};
use audiorec::audio::{self, AudioError, decode_bytes, mfcc};
use candle_core::Tensor;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

/// A fixture `.npy` flattened to f32, with its shape.
pub fn npy(name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = Tensor::read_npy(fixture(name)).unwrap();
    let shape = t.dims().to_vec();
    (t.flatten_all().unwrap().to_vec1().unwrap(), shape)
}

/// The script's synthetic tone: 1 s at 16 kHz, 0.5·sin(440 Hz) + 0.25·sin(3 kHz), float32.
fn tone_16k() -> Vec<f32> {
    (0..16_000)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            (0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.25 * (2.0 * std::f64::consts::PI * 3000.0 * t).sin()) as f32
        })
        .collect()
}

#[test]
fn mel_power_of_a_tone_matches_librosa() {
    let (want, shape) = npy("tone_mel_power.npy"); // [96, frames], librosa's layout
    let mel = MelSpectrogram::new(mel::MUSICNN);
    let got = mel.power(&tone_16k()); // [frames, 96]
    let (n_mels, frames) = (shape[0], shape[1]);
    assert_eq!(got.len(), n_mels * frames);
    let peak = want.iter().copied().fold(0f32, f32::max);
    for m in 0..n_mels {
        for t in 0..frames {
            let (g, w) = (got[t * n_mels + m], want[m * frames + t]);
            // Float32 agreement: relative 1e-4, or 1e-6 of the peak for near-empty bands.
            assert!(
                (g - w).abs() <= 1e-4 * w.abs() + 1e-6 * peak,
                "band {m} frame {t}: {g} vs librosa {w}"
            );
        }
    }
}

#[test]
fn musicnn_log_mel_of_a_tone_matches_the_float16_recipe() {
    let (want, _) = npy("tone_logmel.npy"); // [frames, 96]
    let got = mel::musicnn_log_mel(&MelSpectrogram::new(mel::MUSICNN), &tone_16k());
    assert_eq!(got.len(), want.len());
    // Values round to float16 before the log; a power on a float16 rounding boundary may go
    // either way, which moves the log by at most log10(1 + 2^-11) ≈ 2.1e-4.
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    assert!(worst < 2.5e-4, "max difference {worst}");
}

#[test]
fn musicnn_log_mel_of_real_music_matches_musicnn_first_patch() {
    let (want, shape) = npy("musicnn_patch0_logmel.npy");
    assert_eq!(shape, [187, 96]);
    let samples = audio::decode_file(&fixture("wesnoth_battle_16k.wav")).unwrap();
    assert_eq!(samples.len(), 160_000);
    let got = mel::musicnn_log_mel(&MelSpectrogram::new(mel::MUSICNN), &samples);
    let diffs: Vec<f32> = got[..want.len()]
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .collect();
    let worst = diffs.iter().copied().fold(0f32, f32::max);
    // Apart from float16 boundary flips, values agree to the last bits of float32 log10
    // (numpy's vectorised log10 and libm's may differ by an ulp).
    let close = diffs.iter().filter(|d| **d <= 1e-6).count();
    assert!(worst < 2.5e-4, "max difference {worst}");
    assert!(
        close * 100 > diffs.len() * 99,
        "only {close} of {} within 1e-6",
        diffs.len()
    );
}

#[test]
fn mfcc_matches_librosa_frames_and_track_vector() {
    let samples =
        audio::decode_file_at(&fixture("wesnoth_battle_22k.wav"), mfcc::SAMPLE_RATE).unwrap();
    let mel = MelSpectrogram::new(mfcc::SETTINGS);
    let frames = mfcc::mfcc(&mel, &samples);
    let (want, shape) = npy("mfcc_frames.npy"); // [13, frames]
    assert_eq!(shape, [13, frames.len()]);
    for (t, f) in frames.iter().enumerate() {
        for k in 0..13 {
            let w = want[k * frames.len() + t];
            assert!(
                (f[k] - w).abs() <= 2e-3 + 1e-4 * w.abs(),
                "frame {t} mfcc {k}: {} vs {w}",
                f[k]
            );
        }
    }
    let (want, _) = npy("mfcc_track.npy");
    let got = mfcc::track_vector(&mel, &samples).unwrap();
    assert_eq!(want.len(), mfcc::TRACK_DIM);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-3 * w.abs().max(1.0),
            "dim {i}: {g} vs librosa {w}"
        );
    }
}

/// The script wrote 0.5 s at 44.1 kHz: 0.5·sin(440 Hz) left, 0.5·sin(660 Hz) right.
fn tone_mono(i: usize) -> f32 {
    let t = i as f64 / 44_100.0;
    let tau = 2.0 * std::f64::consts::PI;
    (0.25 * ((tau * 440.0 * t).sin() + (tau * 660.0 * t).sin())) as f32
}

#[test]
fn lossless_decoders_mix_stereo_to_the_mean() {
    for name in ["tone_stereo.wav", "tone_stereo.flac"] {
        let d = audio::decode::decode_file(&fixture(name)).unwrap();
        assert_eq!((d.sample_rate, d.samples.len()), (44_100, 22_050), "{name}");
        // 16-bit quantisation of each channel: half a step each, averaged.
        let worst = d
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| (s - tone_mono(i)).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1.0 / 32_768.0, "{name}: max error {worst}");
    }
}

/// Power of `x` at frequency `hz` (one DFT bin, Goertzel style).
fn power_at(x: &[f32], rate: f64, hz: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let a = 2.0 * std::f64::consts::PI * hz * i as f64 / rate;
        re += f64::from(*v) * a.cos();
        im += f64::from(*v) * a.sin();
    }
    (re * re + im * im) / (x.len() as f64).powi(2)
}

#[test]
fn lossy_decoders_keep_both_tones() {
    for name in ["tone_stereo.mp3", "tone_stereo.ogg"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let d = decode_bytes(&bytes, None).unwrap();
        // lame resamples to 24 kHz at 64 kbit/s; oggenc keeps 44.1 kHz.
        let want_rate = if name.ends_with("mp3") {
            24_000
        } else {
            44_100
        };
        assert_eq!(d.sample_rate, want_rate, "{name}");
        // mp3 adds encoder delay and padding; ogg is sample exact.
        let extra = d.samples.len() as i64 - i64::from(want_rate) / 2;
        assert!(
            (0..=3_000).contains(&extra),
            "{name}: {} samples",
            d.samples.len()
        );
        let rate = f64::from(d.sample_rate);
        let (a, b, off) = (
            power_at(&d.samples, rate, 440.0),
            power_at(&d.samples, rate, 660.0),
            power_at(&d.samples, rate, 1_000.0),
        );
        // Each tone has amplitude 0.25 after mixing: power (0.25/2)^2 ≈ 0.0156 per bin.
        for p in [a, b] {
            assert!(p > 0.01 && p < 0.02, "{name}: tone power {p}");
        }
        assert!(off < 1e-5, "{name}: power at 1 kHz {off}");
    }
}

#[test]
fn resampling_keeps_duration_and_pitch() {
    let samples = audio::decode_file(&fixture("tone_stereo.flac")).unwrap();
    assert!(
        samples.len().abs_diff(8_000) <= 1,
        "{} samples at 16 kHz",
        samples.len()
    );
    let core = &samples[800..7_200];
    assert!(power_at(core, 16_000.0, 440.0) > 0.01);
    assert!(power_at(core, 16_000.0, 660.0) > 0.01);
}

#[test]
fn corrupt_and_unsupported_input_are_typed_errors() {
    let wav = std::fs::read(fixture("tone_stereo.wav")).unwrap();
    // A WAV header whose data is cut short of one sample frame of audio: nothing decodes.
    let header_only = &wav[..44];
    assert!(matches!(
        decode_bytes(header_only, Some("wav")),
        Err(AudioError::Empty | AudioError::Corrupt(_))
    ));
    // Text is no known container.
    let text = b"this is not audio at all, just some words in a file";
    assert!(matches!(
        decode_bytes(text, Some("mp3")),
        Err(AudioError::Unsupported(_))
    ));
    // An empty upload.
    assert!(decode_bytes(&[], None).is_err());
    // A FLAC stream with its frames overwritten by noise.
    let mut flac = std::fs::read(fixture("tone_stereo.flac")).unwrap();
    let mut x = 12345u32;
    for b in flac.iter_mut().skip(200) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 16) as u8;
    }
    match decode_bytes(&flac, Some("flac")) {
        Err(AudioError::Corrupt(_) | AudioError::Unsupported(_)) => {}
        other => panic!("noise decoded as {:?}", other.map(|d| d.samples.len())),
    }
    // Too short for an MFCC covariance (two frames of hop 512).
    let mel = MelSpectrogram::new(mfcc::SETTINGS);
    assert!(matches!(
        mfcc::track_vector(&mel, &[0.1; 500]),
        Err(AudioError::TooShort { .. })
    ));
    assert!(mfcc::track_vector(&mel, &[0.1; 512]).is_ok());
    let missing = audio::decode_file(Path::new("/nonexistent/track.ogg"));
    assert!(matches!(missing, Err(AudioError::Io { .. })));
}
