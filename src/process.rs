//! Process-level settings, set once at the binary's edge before any work starts: logging,
//! and for training, glibc's allocator tunables.
//!
//! Training churns through gigabytes of short-lived tensors per step (attention scores
//! alone are 46 MB per layer at batch 64 × 300). glibc's allocator serves every block
//! over its mmap threshold (at most 32 MiB) straight from the kernel and gives it back
//! when freed, so each step page-faults its memory in again: on 2 cores a quarter of a
//! BERT4Rec step went to zeroing pages and TLB shoot-downs. Told to keep freed memory
//! (`mmap_max=0`, a trim threshold of 16 GiB) it reuses it; the price is that the
//! process holds on to its peak size, which suits a training run, not the service.
//!
//! glibc reads these tunables only at start-up, so [`keep_freed_memory`] restarts the
//! process once with `GLIBC_TUNABLES` set.

/// What a training process asks of glibc's allocator.
pub const GLIBC_TUNABLES: &str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184";

/// Re-executes the current program, same arguments, with [`GLIBC_TUNABLES`], unless
/// `GLIBC_TUNABLES` is already set (by this or by the user). Returns only when no
/// restart happened; on other platforms it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
            .exec();
        eprintln!("warning: could not restart with GLIBC_TUNABLES ({err}); training runs slower");
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`; symphonia's own log lines off,
/// its errors reach the user as ours).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,symphonia=off")),
        )
        .with_writer(std::io::stderr)
        .init();
}
