//! `y = x · Wᵀ` for Q8_0 weights, as candle's `k_quants::matmul` computes it on AVX2, tiled.
//!
//! candle quantizes the activations on one thread into a new buffer, then runs one rayon
//! fork-join per activation row, each output a separate `vec_dot` that streams its weight row
//! through the cache again: prefill ran at 0.11x llama.cpp (issue 20). Here the activations are
//! quantized in parallel, once, and the output is cut into tiles of weight rows × tokens, each
//! computed by a register-blocked micro-kernel that loads a weight block once for several
//! tokens and a token block once for several weight rows, all in one fork-join.
//!
//! Every output is the stock arithmetic: per 32-element block, eight i32 sums of four
//! products, converted to f32, times `f16(d_w) * f16(d_x)`, fused-multiply-added into eight
//! lanes in block order, and the lanes summed as candle's `hsum_float_8` sums them. Integer
//! sums are exact whichever instructions form them, so the AVX-512 VNNI kernel (`vpdpbusd`)
//! and the AVX2 one (`vpmaddubsw` + `vpmaddwd`) give the same bits as candle.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_token;
pub mod quant;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use half::f16;
use rayon::prelude::*;

/// Elements per block.
pub const QK: usize = 32;

/// A Q8_0 block as ggml and candle lay it out: an f16 scale, then 32 signed quants.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    /// The scale: element `i` of the block is `d * qs[i]`.
    pub d: f16,
    /// The quants, one per element.
    pub qs: [i8; QK],
}

/// The micro-kernels this crate has, by the instructions they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX2, FMA and F16C: every x86-64-v3 CPU.
    Avx2,
    /// AVX-512 (F, BW, DQ, VL) with VNNI: 64 products per instruction, two tokens per register
    /// (or, for one token, two weight rows).
    Avx512Vnni,
}

const UNSET: u8 = 0;
const STOCK: u8 = 1;
const AVX2: u8 = 2;
const AVX512_VNNI: u8 = 3;
static SELECTED: AtomicU8 = AtomicU8::new(UNSET);
static OUTSIDE_A_POOL: AtomicUsize = AtomicUsize::new(0);

/// How many matmuls this process started on a thread outside every rayon pool. Each of those
/// paid a hand-off to the pool and back; a forward pass that runs on the pool, as the vendored
/// mistralrs-core's does on the CPU, starts none (a test holds it to that).
pub fn matmuls_outside_a_pool() -> usize {
    OUTSIDE_A_POOL.load(Ordering::Relaxed)
}

/// The environment variable that picks a kernel: `stock` keeps candle's own code (the
/// baseline of `agent-bench prefill`), `avx2` forces the AVX2 kernel; unset, the best one the
/// CPU runs.
pub const ENV: &str = "AGENT_CPU_KERNELS";

impl Kernel {
    /// Every kernel this CPU can run, best last.
    pub fn available() -> Vec<Kernel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                out.push(Kernel::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                {
                    out.push(Kernel::Avx512Vnni);
                }
            }
        }
        out
    }

    /// The kernel candle's Q8_0 matmul uses now; `None` leaves it to candle's own code. The
    /// first call reads [`ENV`].
    pub fn selected() -> Option<Kernel> {
        match SELECTED.load(Ordering::Relaxed) {
            UNSET => {
                let available = Kernel::available();
                let chosen = match std::env::var(ENV).as_deref() {
                    Ok("stock") => None,
                    Ok("avx2") => available.first().copied(),
                    _ => available.last().copied(),
                };
                Kernel::select(chosen);
                chosen
            }
            code => Kernel::decode(code),
        }
    }

    /// Switches kernels for the whole process (`None`: candle's own code), so that a test or
    /// a benchmark can run both paths on one loaded model. Every path gives the same bits, so
    /// a matmul already running when this is called is unaffected either way.
    ///
    /// # Panics
    /// When the CPU cannot run `kernel`.
    pub fn select(kernel: Option<Kernel>) {
        if let Some(k) = kernel {
            assert!(
                Kernel::available().contains(&k),
                "this CPU cannot run the {k:?} kernel"
            );
        }
        let code = match kernel {
            None => STOCK,
            Some(Kernel::Avx2) => AVX2,
            Some(Kernel::Avx512Vnni) => AVX512_VNNI,
        };
        SELECTED.store(code, Ordering::Relaxed);
    }

    fn decode(code: u8) -> Option<Kernel> {
        match code {
            AVX2 => Some(Kernel::Avx2),
            AVX512_VNNI => Some(Kernel::Avx512Vnni),
            _ => None,
        }
    }

    /// `dst[t][j] = Σ_i lhs[t][i] · rhs[j][i]` for `m` tokens of `k` activations and `n` weight
    /// rows of `k / 32` blocks, `dst` row-major `m × n`.
    ///
    /// # Panics
    /// When `k` is not a multiple of 32 or a slice's length does not match `(m, k, n)`: the
    /// caller's bug (candle's own kernel requires the same).
    pub fn matmul(
        self,
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        rhs: &[BlockQ8_0],
        dst: &mut [f32],
    ) {
        assert!(
            k.is_multiple_of(QK),
            "q8_0 matmul: k = {k} is not a multiple of {QK}"
        );
        assert_eq!(
            lhs.len(),
            m * k,
            "q8_0 matmul: lhs length for ({m}, {k}, {n})"
        );
        assert_eq!(
            rhs.len(),
            n * (k / QK),
            "q8_0 matmul: rhs length for ({m}, {k}, {n})"
        );
        assert_eq!(
            dst.len(),
            m * n,
            "q8_0 matmul: dst length for ({m}, {k}, {n})"
        );
        if m == 0 || n == 0 {
            return;
        }
        if rayon::current_thread_index().is_none() {
            OUTSIDE_A_POOL.fetch_add(1, Ordering::Relaxed);
        }
        match self {
            // SAFETY: `available()` listed the kernel only when the CPU has what it needs.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::matmul((m, k, n), lhs, rhs, dst) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => unsafe { avx512::matmul((m, k, n), lhs, rhs, dst) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no kernel is available off x86-64"),
        }
    }
}

/// Where a tile writes its outputs: every tile owns a disjoint set of `dst` elements.
#[derive(Clone, Copy)]
pub(crate) struct Out(*mut f32);

// SAFETY: tiles write disjoint elements, and the fork-join outlives none of them.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// # Safety
    /// `i` is inside `dst` and no other tile writes it.
    pub(crate) unsafe fn write(self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v };
    }
}

/// Runs `micro(row, rows, unit, units)` over the grid of `units` (tokens or token pairs) × `n`
/// weight rows, cut into micro-tiles of at most `micro_rows` rows × `micro_units` units, in one
/// rayon fork-join. A job is a block of `unit_block` units × a chunk of weight rows: at most 64
/// (about 40-100 KB of Q8_0, which stays in L2 while the job's units pass over it), fewer when
/// there are too few unit blocks to keep every thread busy (decode). Within a job the units
/// are outer, so one micro-tile's activations stay in L1 while the rows pass.
pub(crate) fn for_each_tile(
    (units, unit_block, micro_units): (usize, usize, usize),
    (n, micro_rows): (usize, usize),
    micro: impl Fn(usize, usize, usize, usize) + Sync,
) {
    let unit_blocks = units.div_ceil(unit_block);
    let wanted = (4 * rayon::current_num_threads()).div_ceil(unit_blocks);
    let chunk = n.div_ceil(wanted).next_multiple_of(4).clamp(4, 64);
    let row_chunks = n.div_ceil(chunk);
    (0..unit_blocks * row_chunks)
        .into_par_iter()
        .for_each(|job| {
            let (u, r) = (job / row_chunks, job % row_chunks);
            let (units_end, rows_end) =
                (((u + 1) * unit_block).min(units), ((r + 1) * chunk).min(n));
            for unit in (u * unit_block..units_end).step_by(micro_units) {
                let tu = (units_end - unit).min(micro_units);
                for row in (r * chunk..rows_end).step_by(micro_rows) {
                    micro(row, (rows_end - row).min(micro_rows), unit, tu);
                }
            }
        });
}
