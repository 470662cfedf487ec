//! MusiCNN against the original musicnn 0.1.0 code (fixtures from
//! `scripts/musicnn_fixtures.py`): the checkpoint reader against TensorFlow's reader, the
//! network on musicnn's own log-mel patch, and the whole pipeline from a WAV file.
//!
//! These need the real weights (`audiorec setup musicnn`, which CI runs first). Without
//! them each test prints a SKIPPED line and passes.

use std::path::{Path, PathBuf};

use audiorec::audio;
use audiorec::model::musicnn::{self, Musicnn, MusicnnError, TensorBundle};
use candle_core::{Device, Tensor};

use crate::audio::npy;

/// The weights folder (as `audiorec setup musicnn` puts it), or `None` after saying so.
fn weights(test: &str) -> Option<PathBuf> {
    let dir = musicnn::default_dir();
    let dir = if dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
    } else {
        dir
    };
    if dir.join(".index").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED {test}: no MusiCNN weights in {} (run `cargo run -- setup musicnn` or set {})",
            dir.display(),
            musicnn::DIR_ENV
        );
        None
    }
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, worst) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold(
            (0, 0f32),
            |acc, (i, d)| if d > acc.1 { (i, d) } else { acc },
        );
    assert!(
        worst <= tol,
        "{what}: index {i} differs by {worst} ({} vs {})",
        got[i],
        want[i]
    );
}

#[test]
fn checkpoint_reader_agrees_with_tensorflow_on_the_real_folder() {
    let Some(dir) = weights("checkpoint_reader") else {
        return;
    };
    let bundle = TensorBundle::open(&musicnn::prefix(&dir)).unwrap();
    let text =
        std::fs::read_to_string(crate::audio::fixture("musicnn_checkpoint_summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        bundle.entries().count() as u64,
        summary["tensors"].as_u64().unwrap()
    );
    let variables = summary["variables"].as_object().unwrap();
    assert_eq!(variables.len(), 64);
    for (name, want) in variables {
        let (shape, values) = bundle.f32_tensor(name).unwrap();
        let want_shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(shape, want_shape, "{name}");
        let first: Vec<f64> = serde_json::from_value(want["first"].clone()).unwrap();
        for (g, w) in values.iter().zip(&first) {
            assert_eq!(f64::from(*g), *w, "{name}: first values");
        }
        let sum: f64 = values.iter().map(|v| f64::from(*v)).sum();
        let want_sum = want["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
    }
}

#[test]
fn network_on_musicnn_log_mel_patch_matches_tensorflow() {
    let Some(dir) = weights("network_on_patch") else {
        return;
    };
    let model = Musicnn::load(&dir, &Device::Cpu).unwrap();
    let (patch, _) = npy("musicnn_patch0_logmel.npy");
    let x = Tensor::from_vec(patch, (1, 187, 96), &Device::Cpu).unwrap();
    let out = model.forward(&x).unwrap();
    let (pen, _) = npy("musicnn_penultimate.npy");
    let (tags, _) = npy("musicnn_tags.npy");
    let got_pen: Vec<f32> = out.penultimate.flatten_all().unwrap().to_vec1().unwrap();
    let got_tags: Vec<f32> = out.tags.flatten_all().unwrap().to_vec1().unwrap();
    assert_close(&got_pen, &pen[..200], 1e-3, "penultimate of patch 0");
    assert_close(&got_tags, &tags[..50], 1e-3, "tags of patch 0");
}

#[test]
fn wav_to_embedding_matches_the_original_extractor() {
    let Some(dir) = weights("wav_to_embedding") else {
        return;
    };
    let model = Musicnn::load(&dir, &Device::Cpu).unwrap();
    let samples = audio::decode_file(&crate::audio::fixture("wesnoth_battle_16k.wav")).unwrap();
    let (pen, shape) = npy("musicnn_penultimate.npy");
    let (tags, _) = npy("musicnn_tags.npy");
    let n = shape[0];
    assert_eq!(n, 3);

    // Patch by patch, as extractor() cuts them.
    let log_mel = audio::mel::musicnn_log_mel(
        &audio::mel::MelSpectrogram::new(audio::mel::MUSICNN),
        &samples,
    );
    let patches = musicnn::patches(&log_mel);
    let x = Tensor::from_vec(patches, (n, 187, 96), &Device::Cpu).unwrap();
    let out = model.forward(&x).unwrap();
    let got_pen: Vec<f32> = out.penultimate.flatten_all().unwrap().to_vec1().unwrap();
    let got_tags: Vec<f32> = out.tags.flatten_all().unwrap().to_vec1().unwrap();
    assert_close(&got_pen, &pen, 1e-3, "penultimate per patch");
    assert_close(&got_tags, &tags, 1e-3, "tags per patch");

    // The track: means over patches.
    let track = model.embed(&samples).unwrap();
    assert_eq!(track.patches, n);
    let mean = |v: &[f32], dim: usize| -> Vec<f32> {
        (0..dim)
            .map(|d| (0..n).map(|p| v[p * dim + d]).sum::<f32>() / n as f32)
            .collect()
    };
    assert_close(
        &track.penultimate,
        &mean(&pen, 200),
        1e-3,
        "track penultimate",
    );
    let track_tags: Vec<f32> = track.tags.iter().map(|(_, p)| *p).collect();
    assert_close(&track_tags, &mean(&tags, 50), 1e-3, "track tags");
    assert_eq!(track.top_tags(1)[0].0, "jazz");
}

#[test]
fn a_track_shorter_than_a_patch_is_repeated_to_fill_one() {
    let Some(dir) = weights("short_track") else {
        return;
    };
    let model = Musicnn::load(&dir, &Device::Cpu).unwrap();
    let samples = audio::decode_file(&crate::audio::fixture("wesnoth_battle_16k.wav")).unwrap();
    let one_second = model.embed(&samples[..16_000]).unwrap();
    assert_eq!(one_second.patches, 1);
    assert!(one_second.penultimate.iter().all(|v| v.is_finite()));
    // Three seconds (188 frames) make exactly one patch.
    let tiled: Vec<f32> = samples[..16_000].repeat(3);
    assert_eq!(model.embed(&tiled).unwrap().patches, 1);
    assert!(matches!(model.embed(&[]), Err(MusicnnError::NoAudio)));
}

#[test]
fn missing_weights_say_how_to_get_them() {
    let err = match Musicnn::load(Path::new("/nonexistent/MSD_musicnn"), &Device::Cpu) {
        Err(e) => e,
        Ok(_) => panic!("loaded weights from nowhere"),
    };
    assert!(matches!(err, MusicnnError::WeightsMissing { .. }));
    assert!(err.to_string().contains("audiorec setup musicnn"), "{err}");
}
