use std::path::Path;

use candle_core::{DType, Device, Tensor};
use mistralrs_core::{PrefixStore, StoredLayer, StoredPrefix};

use super::*;

/// A test's own directory, removed when the test ends (pass or fail).
struct TempRoot(PathBuf);

impl std::ops::Deref for TempRoot {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_root(name: &str) -> TempRoot {
    let dir = std::env::temp_dir().join(format!("agent-disk-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempRoot(dir)
}

/// A fake model file (the identity hashes its bytes) and a cache over `root`.
fn cache(root: &Path, model_bytes: &[u8], max_bytes: u64) -> DiskPrefixCache {
    let model = root.join("model.gguf");
    if std::fs::read(&model).ok().as_deref() != Some(model_bytes) {
        std::fs::write(&model, model_bytes).unwrap();
    }
    let identity = ModelIdentity {
        files: vec![model],
        loading: "cpu f32 isq=none".into(),
    };
    let options = DiskCacheOptions {
        root: root.join("cache"),
        max_bytes,
    };
    DiskPrefixCache::open(&options, &identity).unwrap()
}

/// Two KV layers and a shared one, of `n` positions, with distinct values (bf16 in the second,
/// as a GPU would keep it).
fn prefix(toks: Vec<u32>) -> StoredPrefix {
    let n = toks.len();
    let t = |seed: f32, dtype: DType| {
        Tensor::arange(0f32, (2 * n * 4) as f32, &Device::Cpu)
            .unwrap()
            .affine(0.37, seed as f64)
            .unwrap()
            .reshape((1, 2, n, 4))
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    StoredPrefix {
        toks,
        layers: vec![
            StoredLayer::Normal {
                k: t(1.0, DType::F32),
                v: t(2.0, DType::F32),
                dim: 2,
                max_seq_len: 4096,
            },
            StoredLayer::Shared { owner: 0 },
            StoredLayer::Normal {
                k: t(3.0, DType::BF16),
                v: t(4.0, DType::BF16),
                dim: 2,
                max_seq_len: 4096,
            },
            StoredLayer::Absent,
        ],
    }
}

/// Every layer's kind and values, for whole-object comparisons.
fn flat(p: &StoredPrefix) -> (Vec<u32>, Vec<String>) {
    let layers = p
        .layers
        .iter()
        .map(|l| match l {
            StoredLayer::Absent => "absent".to_string(),
            StoredLayer::Shared { owner } => format!("shared {owner}"),
            StoredLayer::Normal {
                k,
                v,
                dim,
                max_seq_len,
            } => {
                let vals = |t: &Tensor| {
                    t.to_dtype(DType::F32)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                };
                format!(
                    "{dim} {max_seq_len} {:?} {:?} {:?} {:?} {:?}",
                    k.dtype(),
                    k.dims(),
                    vals(k),
                    v.dims(),
                    vals(v)
                )
            }
        })
        .collect();
    (p.toks.clone(), layers)
}

fn only_entry(c: &DiskPrefixCache) -> PathBuf {
    let entries = c.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn a_saved_prefix_loads_back_exactly_for_a_prompt_that_extends_it() {
    let root = temp_root("roundtrip");
    let c = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    let saved = prefix((100..140).collect());
    c.save(saved.clone());
    let prompt: Vec<u32> = (100..140).chain([7, 8]).collect();
    let loaded = c.load(&prompt, 0).unwrap();
    assert_eq!(flat(&loaded), flat(&saved));
    // A new process (another cache object over the same files) finds it too.
    let again = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    assert_eq!(flat(&again.load(&prompt, 0).unwrap()), flat(&saved));
    assert_eq!(
        c.stats(),
        DiskCacheStats {
            hits: 1,
            tokens_reused: 40,
            saved: 1,
            rejected: 0
        }
    );
}

#[test]
fn a_load_offers_only_what_beats_memory_and_leaves_the_last_token() {
    let root = temp_root("longer");
    let c = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    c.save(prefix((0..40).collect()));
    let same: Vec<u32> = (0..40).collect();
    // The whole prompt is stored: 39 tokens usable (the last is computed for its logits).
    assert!(c.load(&same, 39).is_none());
    assert!(c.load(&same, 38).is_some());
    // Shares 10 tokens: used over a memory match of 9, not over one of 10.
    let other: Vec<u32> = (0..10).chain([999, 998]).collect();
    assert!(c.load(&other, 10).is_none());
    assert!(c.load(&other, 9).is_some());
    assert!(c.load(&[5, 6, 7], 0).is_none());
}

#[test]
fn a_cut_off_entry_is_rejected_deleted_and_written_again() {
    let root = temp_root("cut");
    let c = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    let saved = prefix((0..32).collect());
    c.save(saved.clone());
    let path = only_entry(&c);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let prompt: Vec<u32> = (0..33).collect();
    assert!(c.load(&prompt, 0).is_none());
    assert!(!path.exists(), "the damaged entry is deleted");
    c.save(saved.clone());
    assert_eq!(flat(&c.load(&prompt, 0).unwrap()), flat(&saved));
    assert_eq!((c.stats().rejected, c.stats().saved), (1, 2));
}

#[test]
fn a_changed_byte_anywhere_is_caught_by_the_checksum() {
    let root = temp_root("tamper");
    let c = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    let saved = prefix((0..32).collect());
    c.save(saved.clone());
    let path = only_entry(&c);
    let good = std::fs::read(&path).unwrap();
    let prompt: Vec<u32> = (0..33).collect();
    // In the header, the tokens, the KV, the checksum itself.
    for at in [
        good.len() / 2,
        good.len() - 40 * 4 - 32 - 1000,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let err = entry::read(&path, &c.namespace).unwrap_err();
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "the error names the file: {err}"
        );
        assert!(c.load(&prompt, 0).is_none(), "byte {at}");
        assert!(!path.exists());
        std::fs::write(&path, &good).unwrap();
    }
    assert_eq!(flat(&c.load(&prompt, 0).unwrap()), flat(&saved));
}

#[test]
fn another_model_file_or_build_never_reads_the_entry() {
    let root = temp_root("namespace");
    let c = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    c.save(prefix((0..32).collect()));
    let path = only_entry(&c);
    // The same path with other bytes: another namespace, another directory.
    let other = cache(&root, b"other weights", DEFAULT_MAX_BYTES);
    assert_ne!(other.dir(), c.dir());
    assert!(other.load(&(0..33).collect::<Vec<_>>(), 0).is_none());
    // Moved into the other directory by hand, it is refused by its header.
    let moved = other.dir().join(path.file_name().unwrap());
    std::fs::copy(&path, &moved).unwrap();
    let err = entry::read(&moved, &other.namespace).unwrap_err();
    assert_eq!(err.reason, "written for another model file or build");
    assert!(other.load(&(0..33).collect::<Vec<_>>(), 0).is_none());
}

#[test]
fn the_cache_stays_under_its_bound_dropping_the_least_recently_used() {
    let root = temp_root("evict");
    let probe = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    probe.save(prefix((0..32).collect()));
    let one = std::fs::metadata(only_entry(&probe)).unwrap().len();
    std::fs::remove_file(only_entry(&probe)).unwrap();
    // Room for two entries.
    let c = cache(&root, b"weights", 2 * one + one / 2);
    let (a, b, d): (Vec<u32>, Vec<u32>, Vec<u32>) = (
        (0..32).collect(),
        (100..132).collect(),
        (200..232).collect(),
    );
    c.save(prefix(a.clone()));
    std::thread::sleep(Duration::from_millis(20));
    c.save(prefix(b.clone()));
    std::thread::sleep(Duration::from_millis(20));
    // Using `a` makes `b` the least recently used.
    let ext = |t: &Vec<u32>| t.iter().copied().chain([1]).collect::<Vec<_>>();
    assert!(c.load(&ext(&a), 0).is_some());
    std::thread::sleep(Duration::from_millis(20));
    c.save(prefix(d.clone()));
    let kept = [&a, &b, &d].map(|t| c.load(&ext(t), 0).is_some());
    assert_eq!(kept, [true, false, true]);
}

#[test]
fn only_prompts_computed_mostly_afresh_are_kept() {
    let root = temp_root("wants");
    let c = cache(&root, b"weights", DEFAULT_MAX_BYTES);
    // A first step: all of it computed.
    assert!(c.wants(2500, 2500));
    // A later step of the same run: the conversation came from memory.
    assert!(!c.wants(3000, 500));
    // A short prompt is quick to prefill again.
    assert!(!c.wants(200, 200));
}

#[test]
fn a_file_hash_is_remembered_until_the_file_changes() {
    let root = temp_root("hash");
    let (file, memo) = (root.join("w.bin"), root.join("memo"));
    std::fs::write(&file, b"abc").unwrap();
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(file_hash(&file, &memo).unwrap(), abc);
    // Remembered: the memo answers (a wrong memo would be believed, which shows it is read).
    let memo_file = std::fs::read_dir(&memo)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&memo_file).unwrap();
    std::fs::write(&memo_file, text.replace(abc, &"0".repeat(64))).unwrap();
    assert_eq!(file_hash(&file, &memo).unwrap(), "0".repeat(64));
    // A changed file (another length) is hashed again.
    std::fs::write(&file, b"abcd").unwrap();
    assert_eq!(
        file_hash(&file, &memo).unwrap(),
        "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
    );
}
