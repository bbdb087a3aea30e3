//! agent patch 16: float32 CPU attention through agent-attention's tile kernel.
//!
//! Every query row is built from the same tiles of 16 key positions, merged in order with
//! [`merge_tile`] as in patch 14; what changes is how a tile is computed: by
//! `agent_attention::tile`, several rows of one KV head at once over keys transposed
//! once per tile, with vectorised scores, weights (our own `exp`) and output. A row's bits do
//! not depend on the rows computed with it, so prefill (rows in blocks of query positions ×
//! the heads sharing a KV head) and decode (tiles in parallel, merged in order afterwards)
//! still agree exactly. Other dtypes and head sizes keep the code in `cpu.rs`.

use agent_attention::{self as kernel, Heads, KeysT, Scoring, TileOut, TILE};
use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

use super::cpu::{merge_tile, Acc, MaskInfo};

/// Query positions per prefill job (each with every head of its KV group).
const POSITIONS_PER_JOB: usize = 8;

/// The shapes and strides of one attention call, (B, S, H, D) as candle lays them out.
pub(super) struct Call<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub mask: Option<MaskInfo<'a>>,
    pub qshape: &'a [usize],
    pub kshape: &'a [usize],
    pub qstride: &'a [usize],
    pub kstride: &'a [usize],
    pub vstride: &'a [usize],
    pub scoring: Scoring,
}

/// `Some(output)` when the kernel handles this head size.
pub(super) fn run(call: &Call<'_>) -> Option<Result<Tensor>> {
    let d = call.qshape[3];
    if call.kshape[3] != d || call.qstride[3] != 1 || call.kstride[3] != 1 || call.vstride[3] != 1 {
        return None;
    }
    Some(match d {
        16 => run_d::<16>(call),
        32 => run_d::<32>(call),
        64 => run_d::<64>(call),
        128 => run_d::<128>(call),
        256 => run_d::<256>(call),
        _ => return None,
    })
}

/// One row: its batch, head and query position.
#[derive(Clone, Copy)]
struct RowAt {
    b: usize,
    h: usize,
    pos: usize,
}

impl Call<'_> {
    fn q_row(&self, at: RowAt, d: usize) -> &[f32] {
        let base = at.b * self.qstride[0] + at.pos * self.qstride[1] + at.h * self.qstride[2];
        &self.q[base..base + d]
    }

    fn kv_heads(&self, b: usize, kv_head: usize) -> (Heads<'_>, Heads<'_>) {
        (
            Heads {
                data: self.k,
                base: b * self.kstride[0] + kv_head * self.kstride[2],
                step: self.kstride[1],
            },
            Heads {
                data: self.v,
                base: b * self.vstride[0] + kv_head * self.vstride[2],
                step: self.vstride[1],
            },
        )
    }

    /// The mask of `at`'s row over keys `start..start + n` (0 without a mask).
    fn mask_tile(&self, at: RowAt, start: usize, n: usize) -> [f32; TILE] {
        let mut m = [0f32; TILE];
        let Some(mask) = &self.mask else { return m };
        if n == 0 {
            return m;
        }
        // The positions of a row are consecutive in every mask layout unless clamped (a
        // broadcast dimension): then one copy reads them all.
        let first = mask.offset(at.b, at.h, at.pos, start);
        let last = mask.offset(at.b, at.h, at.pos, start + n - 1);
        match (first, last) {
            (Some(a), Some(z)) if z == a + n - 1 && z < mask.data.len() => {
                m[..n].copy_from_slice(&mask.data[a..=z]);
            }
            _ => {
                for (i, x) in m.iter_mut().take(n).enumerate() {
                    *x = mask.value(at.b, at.h, at.pos, start + i);
                }
            }
        }
        m
    }
}

fn run_d<const D: usize>(call: &Call<'_>) -> Result<Tensor> {
    let (b, q_len, h) = (call.qshape[0], call.qshape[1], call.qshape[2]);
    let kv_len = call.kshape[1];
    let group = h / call.kshape[2];
    let mut out = vec![0f32; b * h * q_len * D];
    // Each row's merged result, written to `out` at (b, h, pos).
    let mut put = |at: RowAt, acc: &Acc<'_>| {
        let inv_s = 1.0 / acc.s;
        let o = ((at.b * h + at.h) * q_len + at.pos) * D;
        for (o, v) in out[o..o + D].iter_mut().zip(acc.vkq.iter()) {
            *o = *v * inv_s;
        }
    };
    if q_len == 1 {
        // Decode: tiles in parallel, every row of a tile at once; then each row's tiles merged
        // in order.
        let tiles = kv_len.div_ceil(TILE);
        let rows = b * h;
        let scratch: Vec<Vec<TileOut<D>>> = (0..tiles)
            .into_par_iter()
            .map(|t| {
                let (start, n) = (t * TILE, TILE.min(kv_len - t * TILE));
                let mut outs = vec![TileOut::<D>::default(); rows];
                let mut kt: Option<Box<KeysT<D>>> = None;
                for bi in 0..b {
                    for kvh in 0..h / group {
                        let (k, v) = call.kv_heads(bi, kvh);
                        match kt.as_mut() {
                            Some(kt) => kt.fill(k, start, n),
                            None => kt = Some(KeysT::load(k, start, n)),
                        }
                        let Some(kt) = kt.as_deref() else { continue };
                        let heads: Vec<usize> = (kvh * group..(kvh + 1) * group).collect();
                        for chunk in heads.chunks(4) {
                            let ats: Vec<RowAt> = chunk
                                .iter()
                                .map(|&hi| RowAt {
                                    b: bi,
                                    h: hi,
                                    pos: 0,
                                })
                                .collect();
                            let q: Vec<&[f32]> = ats.iter().map(|&a| call.q_row(a, D)).collect();
                            let masks: Vec<[f32; TILE]> =
                                ats.iter().map(|&a| call.mask_tile(a, start, n)).collect();
                            let first = bi * h + chunk[0];
                            kernel::tile(
                                &q,
                                &masks,
                                kt,
                                v,
                                start,
                                n,
                                call.scoring,
                                &mut outs[first..first + chunk.len()],
                            );
                        }
                    }
                }
                outs
            })
            .collect();
        let mut vkq = vec![0f32; D];
        for bi in 0..b {
            for hi in 0..h {
                vkq.fill(0.0);
                let mut acc = Acc {
                    vkq: &mut vkq,
                    s: 0.0,
                    m: f32::NEG_INFINITY,
                };
                for tile in &scratch {
                    let o = &tile[bi * h + hi];
                    merge_tile(&mut acc, &o.vkq, o.sum, o.max);
                }
                put(
                    RowAt {
                        b: bi,
                        h: hi,
                        pos: 0,
                    },
                    &acc,
                );
            }
        }
    } else {
        // Prefill: a job is a block of query positions × the heads of one KV group, which
        // share every transposed key tile; its rows merge their tiles as they go.
        // Each KV head's keys are transposed once, tile by tile, for every job to share.
        let kv_heads = h / group;
        let tiles = kv_len.div_ceil(TILE);
        let kts: Vec<Vec<Box<KeysT<D>>>> = (0..b * kv_heads)
            .into_par_iter()
            .map(|bk| {
                let (k, _) = call.kv_heads(bk / kv_heads, bk % kv_heads);
                (0..tiles)
                    .map(|t| KeysT::load(k, t * TILE, TILE.min(kv_len - t * TILE)))
                    .collect()
            })
            .collect();
        let blocks = q_len.div_ceil(POSITIONS_PER_JOB);
        let jobs: Vec<(usize, usize, usize)> = (0..b)
            .flat_map(|bi| {
                (0..h / group).flat_map(move |kvh| (0..blocks).map(move |blk| (bi, kvh, blk)))
            })
            .collect();
        let done: Vec<(Vec<RowAt>, Vec<f32>, Vec<f32>)> = jobs
            .par_iter()
            .map(|&(bi, kvh, blk)| {
                let positions = blk * POSITIONS_PER_JOB..((blk + 1) * POSITIONS_PER_JOB).min(q_len);
                let ats: Vec<RowAt> = positions
                    .flat_map(|pos| {
                        (kvh * group..(kvh + 1) * group).map(move |hi| RowAt { b: bi, h: hi, pos })
                    })
                    .collect();
                let (_, v) = call.kv_heads(bi, kvh);
                let kts = &kts[bi * kv_heads + kvh];
                let mut vkq = vec![0f32; ats.len() * D];
                let mut s = vec![0f32; ats.len()];
                let mut m = vec![f32::NEG_INFINITY; ats.len()];
                let mut outs = vec![TileOut::<D>::default(); 4];
                let mut masks = vec![[0f32; TILE]; ats.len()];
                for (t, kt) in kts.iter().enumerate() {
                    let (start, n) = (t * TILE, TILE.min(kv_len - t * TILE));
                    for (mask, &at) in masks.iter_mut().zip(&ats) {
                        *mask = call.mask_tile(at, start, n);
                    }
                    if masks
                        .iter()
                        .all(|m| m[..n].iter().all(|&x| x == f32::NEG_INFINITY))
                    {
                        continue;
                    }
                    for (c, chunk) in ats.chunks(4).enumerate() {
                        let q: Vec<&[f32]> = chunk.iter().map(|&a| call.q_row(a, D)).collect();
                        let rows = c * 4..c * 4 + chunk.len();
                        kernel::tile(
                            &q,
                            &masks[rows.clone()],
                            kt,
                            v,
                            start,
                            n,
                            call.scoring,
                            &mut outs,
                        );
                        for (r, o) in rows.zip(&outs) {
                            let mut acc = Acc {
                                vkq: &mut vkq[r * D..(r + 1) * D],
                                s: s[r],
                                m: m[r],
                            };
                            merge_tile(&mut acc, &o.vkq, o.sum, o.max);
                            (s[r], m[r]) = (acc.s, acc.m);
                        }
                    }
                }
                let sm = s.iter().zip(&m).flat_map(|(&s, &m)| [s, m]).collect();
                (ats, vkq, sm)
            })
            .collect();
        for (ats, mut vkq, sm) in done {
            for (r, at) in ats.into_iter().enumerate() {
                let acc = Acc {
                    vkq: &mut vkq[r * D..(r + 1) * D],
                    s: sm[2 * r],
                    m: sm[2 * r + 1],
                };
                put(at, &acc);
            }
        }
    }
    Tensor::from_vec(out, (b, h, q_len, D), &Device::Cpu)
}
