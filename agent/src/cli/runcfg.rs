//! The prefix caches `agent run` and `agent serve` set up from their flags.

use agent::mistral::Caches;
use agent::mistral::disk_cache::DiskCacheOptions;

/// `--disk-cache-mb`'s default: 4 GiB.
pub const DISK_CACHE_MIB: u64 = agent::mistral::disk_cache::DEFAULT_MAX_BYTES >> 20;

/// The prefix caches of `agent run` and `agent serve`: `memory` sequences, and the disk cache
/// bounded by `disk_mib` (0: none).
pub fn caches(memory: Option<usize>, disk_mib: u64) -> Caches {
    let disk = (disk_mib > 0).then(|| DiskCacheOptions {
        max_bytes: disk_mib << 20,
        ..DiskCacheOptions::standard()
    });
    Caches { memory, disk }
}
