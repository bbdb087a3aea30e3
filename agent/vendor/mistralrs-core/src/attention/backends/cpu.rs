#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use candle_core::{Context, Device, Result, Storage, Tensor, WithDType};

use half::bf16;
use half::f16;
use rayon::prelude::*;

use std::{f32, iter::Sum};

// Optional hardware prefetch for ping‑pong style scheduling.
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::_mm_prefetch;

// --- portable wrapper around architecture‑specific prefetch -------------
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch(addr: *const u8) {
    _mm_prefetch(addr as *const i8, core::arch::x86_64::_MM_HINT_T0);
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn prefetch(addr: *const u8) {
    core::arch::asm!(
        "prfm pldl1keep, [{0}]",
        in(reg) addr,
        options(readonly, nostack, preserves_flags)
    );
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
unsafe fn prefetch(_addr: *const u8) {}
// -----------------------------------------------------------------------

use crate::attention::SdpaParams;

// agent patch 18: the CPU kernels here run on rayon's global pool, the pool the forward pass
// runs on (`pipeline/compute_pool.rs`), instead of a second pool of their own: a hand-off
// between pools per layer and token, and twice the threads on the cores, were a large part of
// CPU decode time. (The pool's only setting was a macOS scheduling hint.)

const DOT_LANES: usize = 8;

/// Size (in KV positions) processed by each inner‑tile job.
const TILE_KV: usize = 16;

/// Dot product in `f32`.
///
/// agent patch: eight independent accumulators over exact chunks, so that LLVM vectorises the
/// loop (one running sum forces a serial chain of dependent adds, and indexing kept the bounds
/// checks). This was the single hottest function of CPU decoding (27% of SmolLM2's decode time).
#[inline]
pub(crate) fn vec_dot_f32<T: UpcastF32 + Copy>(a: &[T], b: &[T]) -> f32 {
    // Rows of one head's dimension each: a mismatch is a caller's bug, never to be cut short.
    assert_eq!(a.len(), b.len(), "dot product of rows of different lengths");
    let mut acc = [0f32; DOT_LANES];
    let (ca, cb) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..DOT_LANES {
            acc[i] += x[i].to_f32() * y[i].to_f32();
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        sum += x.to_f32() * y.to_f32();
    }
    sum
}

#[inline]
fn clamp_index(idx: usize, dim: usize) -> usize {
    if dim == 0 {
        0
    } else if idx >= dim {
        dim - 1
    } else {
        idx
    }
}

#[inline]
fn mask_offset(
    dims: &[usize],
    b: usize,
    h: usize,
    b_i: usize,
    h_i: usize,
    q_pos: usize,
    kv_pos: usize,
) -> Option<usize> {
    if dims.is_empty() {
        return Some(0);
    }

    match dims.len() {
        1 => {
            let kv_dim = dims[0];
            if kv_dim == 0 {
                None
            } else {
                Some(clamp_index(kv_pos, kv_dim))
            }
        }
        2 => {
            let q_dim = dims[0];
            let kv_dim = dims[1];
            if q_dim == 0 || kv_dim == 0 {
                None
            } else {
                let q_idx = clamp_index(q_pos, q_dim);
                let kv_idx = clamp_index(kv_pos, kv_dim);
                Some(q_idx * kv_dim + kv_idx)
            }
        }
        3 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            if d0 == 0 || d1 == 0 || d2 == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, d1);
            let kv_idx = clamp_index(kv_pos, d2);
            if d0 == b || d0 == 1 {
                let b_idx = if d0 == 1 { 0 } else { clamp_index(b_i, d0) };
                Some((b_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == h || d0 == 1 {
                let h_idx = if d0 == 1 { 0 } else { clamp_index(h_i, d0) };
                Some((h_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == b.saturating_mul(h) {
                let combined_idx = clamp_index(b_i * h + h_i, d0);
                Some((combined_idx * d1 + q_idx) * d2 + kv_idx)
            } else {
                Some(q_idx * d2 + kv_idx)
            }
        }
        4 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            let d3 = dims[3];
            if d0 == 0 || d1 == 0 || d2 == 0 || d3 == 0 {
                return None;
            }
            let b_idx = if d0 == 1 {
                0
            } else if d0 == b {
                clamp_index(b_i, d0)
            } else if d0 == b.saturating_mul(h) {
                clamp_index(b_i * h + h_i, d0)
            } else {
                clamp_index(b_i, d0)
            };
            let h_idx = if d1 == 1 {
                0
            } else if d1 == h {
                clamp_index(h_i, d1)
            } else if d1 == b {
                clamp_index(b_i, d1)
            } else {
                clamp_index(h_i, d1)
            };
            let q_idx = clamp_index(q_pos, d2);
            let kv_idx = clamp_index(kv_pos, d3);
            Some(((b_idx * d1 + h_idx) * d2 + q_idx) * d3 + kv_idx)
        }
        _ => {
            let q_dim = *dims.get(dims.len().saturating_sub(2))?;
            let kv_dim = *dims.last()?;
            if q_dim == 0 || kv_dim == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, q_dim);
            let kv_idx = clamp_index(kv_pos, kv_dim);
            let mut prefix_dim = 1usize;
            for &dim in &dims[..dims.len() - 2] {
                if dim == 0 {
                    return None;
                }
                prefix_dim = prefix_dim.saturating_mul(dim);
            }
            let combined_idx = if prefix_dim == 0 {
                0
            } else {
                let idx_val = b_i * h + h_i;
                idx_val.min(prefix_dim - 1)
            };
            Some((combined_idx * q_dim + q_idx) * kv_dim + kv_idx)
        }
    }
}

pub(super) struct MaskInfo<'a> {
    pub(super) data: &'a [f32],
    pub(super) dims: &'a [usize],
    pub(super) b: usize,
    pub(super) h: usize,
}

impl<'a> MaskInfo<'a> {
    /// agent patch 16: where `value` reads, for a run of positions.
    #[inline]
    pub(super) fn offset(
        &self,
        b_i: usize,
        h_i: usize,
        q_pos: usize,
        kv_pos: usize,
    ) -> Option<usize> {
        mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, kv_pos)
    }

    #[inline]
    pub(super) fn value(&self, b_i: usize, h_i: usize, q_pos: usize, kv_pos: usize) -> f32 {
        if let Some(idx) = mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, kv_pos) {
            *self.data.get(idx).unwrap_or(&0.0)
        } else {
            0.0
        }
    }
}

pub(crate) trait DowncastF32 {
    fn cast(x: f32) -> Self;
}

impl DowncastF32 for f32 {
    fn cast(x: f32) -> Self {
        x
    }
}

impl DowncastF32 for f16 {
    fn cast(x: f32) -> Self {
        f16::from_f32(x)
    }
}

impl DowncastF32 for bf16 {
    fn cast(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// Up‑cast helper: convert any supported element type to `f32` once so that the
/// hot kernels can run entirely in `f32` and only down‑cast when writing out.
pub trait UpcastF32 {
    fn to_f32(self) -> f32;
}

impl UpcastF32 for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl UpcastF32 for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
}

impl UpcastF32 for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
}

pub fn run_flash_attn_cpu<T>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Result<Tensor>
where
    T: WithDType + Sum + num_traits::real::Real + DowncastF32 + UpcastF32 + Copy,
{
    // agent patch 16: float32 goes through agent-attention's tile kernel (cpu_tiles.rs), the mask
    // read in place rather than copied (16 MB per layer at 2,048 tokens).
    if let Some(out) = f32_tiles(q, k, v, mask, sdpa_params) {
        return out;
    }
    run_flash_attn_cpu_untiled::<T>(q, k, v, mask, sdpa_params)
}

/// The kernels below, patch 14's arithmetic: other dtypes and head sizes, and the reference
/// patch 16 is compared against (`crate::agent_cpu_attention`).
pub(crate) fn run_flash_attn_cpu_untiled<T>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Result<Tensor>
where
    T: WithDType + Sum + num_traits::real::Real + DowncastF32 + UpcastF32 + Copy,
{
    // Inline CPU slice extraction for q, k, v, and optional mask
    let (q_guard, q_layout) = q.storage_and_layout();
    let q_data: &[T] = if let Storage::Cpu(cpu) = &*q_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for q")?;
        &data[q_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for q".into()));
    };
    let (k_guard, k_layout) = k.storage_and_layout();
    let k_data: &[T] = if let Storage::Cpu(cpu) = &*k_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for k")?;
        &data[k_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for k".into()));
    };
    let (v_guard, v_layout) = v.storage_and_layout();
    let v_data: &[T] = if let Storage::Cpu(cpu) = &*v_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for v")?;
        &data[v_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for v".into()));
    };
    let mut mask_buffer: Option<Vec<f32>> = None;
    let mut mask_dims: Option<Vec<usize>> = None;
    if let Some(mask_tensor) = mask {
        mask_dims = Some(mask_tensor.shape().dims().to_vec());
        let buffer = {
            let (guard, layout) = mask_tensor.storage_and_layout();
            if let Storage::Cpu(cpu) = &*guard {
                let data = cpu
                    .as_slice::<T>()
                    .context("Expected CPU storage for mask")?;
                data[layout.start_offset()..]
                    .iter()
                    .map(|v| (*v).to_f32())
                    .collect::<Vec<f32>>()
            } else {
                return Err(candle_core::Error::Msg(
                    "Expected CPU storage for mask".into(),
                ));
            }
        };
        mask_buffer = Some(buffer);
    }
    // q_guard, k_guard, v_guard, and m_guard (if any) are kept in scope to hold storage alive

    let q_stride = q.stride();
    let k_stride = k.stride();
    let v_stride = v.stride();

    // Fast path for decode: q_len == 1
    let mask_dims_ref = mask_dims.as_deref();
    let mask_slice = mask_buffer.as_deref();

    if q.shape().dims()[1] == 1 {
        return flash_attn_cpu_single_q(
            q_data,
            k_data,
            v_data,
            mask_slice,
            mask_dims_ref,
            q.shape().dims(),
            k.shape().dims(),
            v.shape().dims(),
            q_stride,
            k_stride,
            v_stride,
            sdpa_params.softmax_scale,
            0.0,
            sdpa_params.softcap.unwrap_or(0.0),
        );
    }

    flash_attn_cpu(
        q_data,
        k_data,
        v_data,
        mask_slice,
        mask_dims_ref,
        q.shape().dims(),
        k.shape().dims(),
        v.shape().dims(),
        q_stride,
        k_stride,
        v_stride,
        sdpa_params.softmax_scale,
        0.0,
        sdpa_params.softcap.unwrap_or(0.0),
    )
}

/// A tensor's float32 data from its first element, when it is float32 on the CPU.
fn f32_data<'a>(storage: &'a Storage, layout: &candle_core::Layout) -> Option<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => cpu
            .as_slice::<f32>()
            .ok()
            .map(|d| &d[layout.start_offset()..]),
        _ => None,
    }
}

/// agent patch 16: [`super::cpu_tiles::run`] when every input is float32 and the head size
/// has a kernel; `None` leaves the call to the code below.
fn f32_tiles(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Option<Result<Tensor>> {
    let (q_guard, q_layout) = q.storage_and_layout();
    let (k_guard, k_layout) = k.storage_and_layout();
    let (v_guard, v_layout) = v.storage_and_layout();
    let q_data = f32_data(&q_guard, q_layout)?;
    let k_data = f32_data(&k_guard, k_layout)?;
    let v_data = f32_data(&v_guard, v_layout)?;
    let mask_guard = mask.map(|m| m.storage_and_layout());
    let (b, h) = (q.dims()[0], q.dims()[2]);
    let mask_info = match (&mask_guard, mask) {
        (Some((guard, layout)), Some(m)) => Some(MaskInfo {
            data: f32_data(guard, layout)?,
            dims: m.dims(),
            b,
            h,
        }),
        _ => None,
    };
    let call = super::cpu_tiles::Call {
        q: q_data,
        k: k_data,
        v: v_data,
        mask: mask_info,
        qshape: q.dims(),
        kshape: k.dims(),
        qstride: q.stride(),
        kstride: k.stride(),
        vstride: v.stride(),
        scoring: agent_attention::Scoring {
            scale: sdpa_params.softmax_scale,
            softcap: sdpa_params.softcap.unwrap_or(0.0),
        },
    };
    super::cpu_tiles::run(&call)
}

/// Where one query row reads its keys and values, and how it scores them.
struct Row<'a, T> {
    q: &'a [T],
    k_data: &'a [T],
    v_data: &'a [T],
    /// Offsets of the row's head at position 0, and the step from one position to the next.
    k_base: usize,
    k_step: usize,
    v_base: usize,
    v_step: usize,
    dv: usize,
    scale: f32,
    logit_softcap: f32,
}

/// agent patch: one query row over the key/value positions of one tile, with the tile's own
/// running maximum: returns the tile's (sum, maximum) and leaves its unnormalised output in
/// `vkq`. Both kernels build every row from these tiles, at the same positions (multiples of
/// `TILE_KV`), and merge them in order with [`merge_tile`], so a row's result does not depend
/// on how many queries were computed with it: a step after a prefix-cache hit, the same
/// prompt prefilled whole and a decode step give the same bits. (Stock 0.8.1 ran decode tiled
/// and prefill untiled, scoring and masking differently: float32 outputs differed in the last
/// bits between a cached and a fresh run, and sampled text diverged.)
#[inline]
fn attend_tile<T: UpcastF32 + Copy>(
    row: &Row<'_, T>,
    tile: std::ops::Range<usize>,
    mask: impl Fn(usize) -> f32,
    vkq: &mut [f32],
) -> (f32, f32) {
    vkq.fill(0.0);
    let (d, dv) = (row.q.len(), row.dv);
    let mut s = 0f32;
    let mut m = f32::NEG_INFINITY;
    let end = tile.end;
    for kv_pos in tile {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            // One‑step look‑ahead prefetch of the next K and V rows.
            let next = kv_pos + 1;
            if next < end {
                unsafe {
                    prefetch(row.k_data.as_ptr().add(row.k_base + next * row.k_step) as *const u8);
                    prefetch(row.v_data.as_ptr().add(row.v_base + next * row.v_step) as *const u8);
                }
            }
        }
        let mask_delta = mask(kv_pos);
        if mask_delta == f32::NEG_INFINITY {
            continue;
        }
        let k_base = row.k_base + kv_pos * row.k_step;
        let mut s_val = vec_dot_f32(row.q, &row.k_data[k_base..k_base + d]) * row.scale;
        if row.logit_softcap != 0.0 {
            s_val = row.logit_softcap * (s_val / row.logit_softcap).tanh();
        }
        s_val += mask_delta;

        // Online softmax within the tile.
        let m_old = m;
        let mut ms = 1.0;
        let mut vs = 1.0;
        if s_val > m {
            m = s_val;
            ms = (m_old - m).exp();
            for v in vkq.iter_mut() {
                *v *= ms;
            }
        } else {
            vs = (s_val - m).exp();
        }
        let v_base = row.v_base + kv_pos * row.v_step;
        // agent patch: iterate slices so the loop vectorises without bounds checks.
        for (o, v) in vkq.iter_mut().zip(&row.v_data[v_base..v_base + dv]) {
            *o += v.to_f32() * vs;
        }
        s = s * ms + vs;
    }
    (s, m)
}

/// A row's running (output, sum, maximum), started empty (zeros, 0, -inf).
pub(super) struct Acc<'a> {
    pub(super) vkq: &'a mut [f32],
    pub(super) s: f32,
    pub(super) m: f32,
}

/// Folds the next tile (its output, sum and maximum) into a row's running result.
#[inline]
pub(super) fn merge_tile(acc: &mut Acc<'_>, vkq_b: &[f32], s_b: f32, m_b: f32) {
    if s_b == 0.0 {
        // Every position of the tile was masked out.
        return;
    }
    if acc.m >= m_b {
        let factor = (m_b - acc.m).exp();
        for (v, v_b) in acc.vkq.iter_mut().zip(vkq_b) {
            *v += v_b * factor;
        }
        acc.s += s_b * factor;
    } else {
        let factor = (acc.m - m_b).exp();
        for (v, v_a) in acc.vkq.iter_mut().zip(vkq_b) {
            *v = v_a + *v * factor;
        }
        acc.s = s_b + acc.s * factor;
        acc.m = m_b;
    }
}

/// Optimised path for the common decode case: q_len == 1 but kv_len ≫ 1: the tiles of every
/// head are computed in parallel, then merged per head in order.
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_single_q<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, _q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let kv_tiles = kv_len.div_ceil(TILE_KV);
    let dv = d;
    let rk2 = h / kshape[2];
    let rv2 = h / vshape[2];
    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    // Per tile, batch and head: the tile's unnormalised output, sum and maximum.
    let mut scratch = vec![0f32; kv_tiles * b * h * dv];
    let mut scratch_sm = vec![(0f32, f32::NEG_INFINITY); kv_tiles * b * h];

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    scratch
        .par_chunks_mut(b * h * dv)
        .zip(scratch_sm.par_chunks_mut(b * h))
        .enumerate()
        .for_each(|(tile_idx, (tile_out, tile_sm))| {
            let start = tile_idx * TILE_KV;
            let end = (start + TILE_KV).min(kv_len);
            for b_i in 0..b {
                for h_i in 0..h {
                    let slope = alibi_slope(max_bias, h_i, n2);
                    let q_base = b_i * qstride[0] + h_i * qstride[2];
                    let row = Row {
                        q: &q_data[q_base..q_base + d],
                        k_data,
                        v_data,
                        k_base: b_i * kstride[0] + (h_i / rk2) * kstride[2],
                        k_step: kstride[1],
                        v_base: b_i * vstride[0] + (h_i / rv2) * vstride[2],
                        v_step: vstride[1],
                        dv,
                        scale,
                        logit_softcap,
                    };
                    let at = b_i * h + h_i;
                    tile_sm[at] = attend_tile(
                        &row,
                        start..end,
                        |kv_pos| {
                            mask_info
                                .as_ref()
                                .map(|mask| slope * mask.value(b_i, h_i, 0, kv_pos))
                                .unwrap_or(0.0)
                        },
                        &mut tile_out[at * dv..(at + 1) * dv],
                    );
                }
            }
        });

    // Serial reduction over tiles, in order, per batch and head.
    let mut out = vec![T::cast(0.0); b * h * dv];
    let mut vkq = vec![0f32; dv];
    for at in 0..b * h {
        vkq.fill(0.0);
        let mut acc = Acc {
            vkq: &mut vkq,
            s: 0.0,
            m: f32::NEG_INFINITY,
        };
        for tile_idx in 0..kv_tiles {
            let t = tile_idx * b * h + at;
            let (s_b, m_b) = scratch_sm[t];
            merge_tile(&mut acc, &scratch[t * dv..(t + 1) * dv], s_b, m_b);
        }
        let inv_s = 1.0 / acc.s;
        for (o, v) in out[at * dv..(at + 1) * dv].iter_mut().zip(acc.vkq.iter()) {
            *o = T::cast(*v * inv_s);
        }
    }

    Tensor::from_vec(out, (b, h, 1, dv), &Device::Cpu)
}

/// Per-head slope for ALiBi / NTK bias.
#[inline]
fn alibi_slope(max_bias: f32, h_i: usize, n2: usize) -> f32 {
    if max_bias > 0.0 {
        2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
    } else {
        1.0
    }
}

/// Main forward flash-attention CPU routine: one query row per job, its tiles computed and
/// merged in order (the same arithmetic as the decode path, see [`attend_tile`]).
/// Shapes follow Candle convention: (B, S, H, D)
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let kv_tiles = kv_len.div_ceil(TILE_KV);
    let rk2 = h / kshape[2];
    let rv2 = h / vshape[2];
    let dv = d;

    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    let mut out = vec![T::cast(0.0); b * q_len * h * dv];

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    out.par_chunks_mut(dv)
        .with_min_len(64)
        .enumerate()
        .for_each(|(row_idx, out_chunk)| {
            // Decode flat index back to (batch, head, q_pos)
            let rows_per_batch = h * q_len;
            let b_i = row_idx / rows_per_batch;
            let rem = row_idx % rows_per_batch;
            let h_i = rem / q_len;
            let q_pos = rem % q_len;
            let slope = alibi_slope(max_bias, h_i, n2);
            let q_base = b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
            let row = Row {
                q: &q_data[q_base..q_base + d],
                k_data,
                v_data,
                k_base: b_i * kstride[0] + (h_i / rk2) * kstride[2],
                k_step: kstride[1],
                v_base: b_i * vstride[0] + (h_i / rv2) * vstride[2],
                v_step: vstride[1],
                dv,
                scale,
                logit_softcap,
            };
            let mut vkq = vec![0f32; dv];
            let mut tile_out = vec![0f32; dv];
            let mut acc = Acc {
                vkq: &mut vkq,
                s: 0.0,
                m: f32::NEG_INFINITY,
            };
            for tile_idx in 0..kv_tiles {
                let start = tile_idx * TILE_KV;
                let end = (start + TILE_KV).min(kv_len);
                let (s_b, m_b) = attend_tile(
                    &row,
                    start..end,
                    |kv_pos| {
                        mask_info
                            .as_ref()
                            .map(|mask| slope * mask.value(b_i, h_i, q_pos, kv_pos))
                            .unwrap_or(0.0)
                    },
                    &mut tile_out,
                );
                merge_tile(&mut acc, &tile_out, s_b, m_b);
            }

            // final normalisation + downcast
            let inv_s = 1.0 / acc.s;
            for (o, v) in out_chunk.iter_mut().zip(acc.vkq.iter()) {
                *o = T::cast(*v * inv_s);
            }
        });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::SdpaParams;
    use candle_core::{Device, Tensor, D};
    use candle_nn::ops::softmax;

    use candle_core::Result as CandleResult;

    const EPS: f32 = 1e-4;

    #[test]
    fn test_flash_attn_cpu_single_q() -> CandleResult<()> {
        // Test for q_len == 1 (single Q)
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q() -> CandleResult<()> {
        // Test for q_len > 1 (full Q)
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        // 7) Compare element‐by‐element
        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_single_q_softcap() -> CandleResult<()> {
        // Test for q_len == 1 (single Q) with softcap
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q_softcap() -> CandleResult<()> {
        // Test for q_len > 1 (full Q) with softcap
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }
}
