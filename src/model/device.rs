//! Which device the nets run on: the CLI's `--device`, the service's `AUDIOREC_DEVICE`, and
//! the same switch for model tests and benchmarks, so they run on a GPU the same way.

use candle_core::{CpuStorage, Device, Layout};

/// Parses `cpu`, `cuda` or `cuda:N` into a candle device. CUDA needs the `cuda` feature.
pub fn parse_device(spec: &str) -> Result<Device, String> {
    match spec.trim() {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| format!("`{s}`: expected cuda:N with N a GPU number"))?,
                None => 0,
            };
            Device::new_cuda(ordinal).map_err(|e| {
                format!("`{s}`: {e} (CUDA needs a build with `--features cuda` and an NVIDIA GPU)")
            })
        }
        other => Err(format!("`{other}`: expected cpu, cuda or cuda:N")),
    }
}

/// The f32 values a custom CPU op reads from `s` under layout `l`, which must be
/// contiguous; `op` names the op in the error.
pub(crate) fn cpu_f32<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: expected f32");
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous tensor");
    };
    Ok(&v[start..end])
}

/// The device named by `AUDIOREC_DEVICE` (default `cpu`): the switch the CLI's `--device`
/// reads too, so the model tests and training benchmarks run on a GPU the same way.
pub fn device_from_env() -> Result<Device, String> {
    parse_device(&std::env::var("AUDIOREC_DEVICE").unwrap_or_else(|_| "cpu".into()))
}

/// The device unit tests of the models run on: [`device_from_env`], made once (candle
/// tells CUDA devices apart by instance, so every tensor of a test must share it).
#[cfg(test)]
pub(crate) fn test_device() -> Device {
    static DEVICE: std::sync::LazyLock<Device> =
        std::sync::LazyLock::new(|| device_from_env().expect("AUDIOREC_DEVICE"));
    DEVICE.clone()
}
