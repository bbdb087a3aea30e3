//! `cargo bench -p agent-attention`: (query row, key) pairs per second of the
//! attention tile kernel at SmolLM2's head size (64) and Qwen3's (128), four rows per call
//! (prefill) and one (decode), with the keys transposed beforehand.

use std::time::Instant;

use agent_attention::{Heads, KeysT, Scoring, TILE, TileOut, tile};

fn run<const D: usize>(rows: usize) {
    let kv: Vec<f32> = (0..2 * 4096 * D)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let k = Heads {
        data: &kv,
        base: 0,
        step: D,
    };
    let v = Heads {
        data: &kv,
        base: 4096 * D,
        step: D,
    };
    let q: Vec<Vec<f32>> = (0..rows)
        .map(|r| (0..D).map(|d| ((r * 31 + d) % 17) as f32 / 17.0).collect())
        .collect();
    let q: Vec<&[f32]> = q.iter().map(|r| r.as_slice()).collect();
    let mask = vec![[0f32; TILE]; rows];
    let mut out = vec![TileOut::<D>::default(); rows];
    let scoring = Scoring {
        scale: 0.125,
        softcap: 0.0,
    };
    let tiles = 4096 / TILE;
    // Keys are transposed once per layer and KV head (as the engine's prefill does), so the
    // loop times the kernel alone.
    let kts: Vec<Box<KeysT<D>>> = (0..tiles)
        .map(|t| KeysT::<D>::load(k, t * TILE, TILE))
        .collect();
    let reps = 400;
    let start = Instant::now();
    let mut sink = 0f32;
    for _ in 0..reps {
        for t in 0..tiles {
            tile(&q, &mask, &kts[t], v, t * TILE, TILE, scoring, &mut out);
            sink += out[0].sum;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let pairs = (reps * tiles * TILE * rows) as f64;
    println!(
        "| {D} | {rows} | {:.1} | {:.2} |",
        pairs / secs / 1e6,
        secs / pairs * 1e9
    );
    std::hint::black_box(sink);
}

fn main() {
    println!("| head dim | rows per call | M pairs/s (one thread) | ns per pair |");
    println!("|---|---|---|---|");
    for rows in [4, 1] {
        run::<64>(rows);
        run::<128>(rows);
    }
}
