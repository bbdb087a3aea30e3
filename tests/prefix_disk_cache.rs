//! The on-disk prefix cache (issue 20, vendored mistral.rs patch 17): a new engine, as in a
//! new process, starts from KV that an earlier one kept on disk, with logits bit-identical to
//! a cold prefill; a damaged entry is never trusted and is written again. Reuse is measured by
//! the tokens the engine prefilled, so the tests here run one at a time.

mod common;

use agent::Device;
use agent::mistral::disk_cache::{DEFAULT_MAX_BYTES, DiskCacheOptions, DiskCacheStats};
use agent::mistral::{Caches, MistralBackend, prefilled_tokens};
use agent::models::{self, ResolvedModel};
use agent::prompt::{self, Message, RenderOptions};
use common::*;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn smollm2() -> ResolvedModel {
    models::resolve("smollm2-135m").unwrap()
}

/// A fresh engine (nothing in memory) over the disk cache in `root`.
async fn with_disk(m: &ResolvedModel, root: &std::path::Path) -> MistralBackend {
    let caches = Caches {
        memory: Some(4),
        disk: Some(DiskCacheOptions {
            root: root.to_path_buf(),
            max_bytes: DEFAULT_MAX_BYTES,
        }),
    };
    MistralBackend::load_with(m, Device::Cpu, caches)
        .await
        .unwrap()
}

/// A prompt long enough to be kept (a system prompt and some tool-like text, ~600 tokens).
fn long_prompt(m: &ResolvedModel, tail: &str) -> String {
    let system = "You answer questions about the harbour's records. Tools: ledger(ship, year) \
                  returns the cargo entries of a ship in a year; tides(date) returns the \
                  heights of the tides on a date; weather(date) returns the wind and the \
                  rain on a date. "
        .repeat(8);
    prompt::render(
        &m.family,
        &m.template,
        &[Message::system(&system), Message::user(tail)],
        &[],
        RenderOptions::default(),
    )
    .unwrap()
}

/// (first token's logits, tokens the engine prefilled) for `prompt`.
async fn logits(b: &MistralBackend, prompt: &str) -> (Vec<f32>, usize) {
    let before = prefilled_tokens();
    let (_, logits, _) = b.generate_with_logits(prompt, 1, vec![]).await.unwrap();
    (logits, prefilled_tokens() - before)
}

async fn cold(m: &ResolvedModel, prompt: &str) -> Vec<f32> {
    let off = MistralBackend::load_with_prefix_cache(m, Device::Cpu, None)
        .await
        .unwrap();
    logits(&off, prompt).await.0
}

fn only_entry(b: &MistralBackend) -> std::path::PathBuf {
    let dir = b.disk_cache_dir().unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "kv"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_engine_starts_from_the_disk_with_the_same_logits() {
    let _one = serial();
    let m = smollm2();
    let root = tmp_dir("disk-cache-hit");
    let p = long_prompt(&m, "Which ship carried the most salt in 1851?");
    let n = with_disk(&m, &root).await.tokenize(&p).await.unwrap().len();
    assert!(n > 300, "{n} tokens");

    let first = with_disk(&m, &root).await;
    let (_, count) = logits(&first, &p).await;
    assert_eq!(count, n);
    assert_eq!(
        first.disk_cache_stats(),
        Some(DiskCacheStats {
            saved: 1,
            ..Default::default()
        })
    );
    drop(first);

    let want = cold(&m, &p).await;
    // The same task again, in a new engine: one token prefilled, the same bits.
    let second = with_disk(&m, &root).await;
    let (got, count) = logits(&second, &p).await;
    assert_eq!((count, max_diff(&got, &want).0), (1, 0.0));
    assert_eq!(
        second.disk_cache_stats(),
        Some(DiskCacheStats {
            hits: 1,
            tokens_reused: n - 1,
            ..Default::default()
        })
    );

    // Another question after the same system prompt: only what differs is prefilled.
    let q = long_prompt(&m, "How high was the tide on the 3rd of May?");
    let shared = {
        let (a, b) = (
            second.tokenize(&p).await.unwrap(),
            second.tokenize(&q).await.unwrap(),
        );
        let s = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        (s, b.len())
    };
    let third = with_disk(&m, &root).await;
    let (got, count) = logits(&third, &q).await;
    assert_eq!(
        (count, max_diff(&got, &cold(&m, &q).await).0),
        (shared.1 - shared.0, 0.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_entry_is_never_trusted_and_is_written_again() {
    let _one = serial();
    let m = smollm2();
    let root = tmp_dir("disk-cache-damage");
    let p = long_prompt(&m, "Which ship left first in the spring of 1852?");
    let want = cold(&m, &p).await;
    let first = with_disk(&m, &root).await;
    let n = first.tokenize(&p).await.unwrap().len();
    logits(&first, &p).await;
    let path = only_entry(&first);
    drop(first);
    let good = std::fs::read(&path).unwrap();

    let cut = good[..good.len() - 4096].to_vec();
    let mut flipped = good.clone();
    // A bit deep in the KV: only the checksum can tell.
    flipped[good.len() / 2] ^= 0x01;
    for damaged in [cut, flipped] {
        std::fs::write(&path, &damaged).unwrap();
        let b = with_disk(&m, &root).await;
        let (got, count) = logits(&b, &p).await;
        assert_eq!((count, max_diff(&got, &want).0), (n, 0.0));
        assert_eq!(
            b.disk_cache_stats(),
            Some(DiskCacheStats {
                rejected: 1,
                saved: 1,
                ..Default::default()
            })
        );
        // Rebuilt: the same bytes as the first time.
        assert!(
            std::fs::read(&path).unwrap() == good,
            "the entry is written again"
        );
    }
    let b = with_disk(&m, &root).await;
    let (got, count) = logits(&b, &p).await;
    assert_eq!((count, max_diff(&got, &want).0), (1, 0.0));
}
