//! Attention of a few query rows over one tile of 16 key positions, in f32: the unit from
//! which the vendored mistralrs-core's CPU attention builds every row, in decode and in prefill
//! (agent/vendor/README.md, mistralrs-core patches 14 and 17).
//!
//! A row's result for a tile depends only on that row and that tile: scores are a fused
//! multiply-add chain over the head dimension in order, the weights `exp(s - max)` come from
//! [`exp`] (ours, so that a vector lane and a scalar compute the same bits), their sum is a
//! fixed tree, and the output a fused multiply-add chain over the keys in order. So however
//! many rows are computed together, on whichever instruction set, a row gets the same bits: a
//! prompt prefilled whole, a step after a prefix-cache hit and a decode step agree exactly.
//! The arithmetic is written once, as plain loops, and compiled for AVX-512, AVX2+FMA and
//! the baseline; the CPU picks one at run time.
#![deny(missing_docs)]

/// Key positions per tile.
pub const TILE: usize = 16;

/// Head sizes with a kernel (others keep the engine's own code).
pub const HEAD_DIMS: [usize; 5] = [16, 32, 64, 128, 256];

const _: () = {
    let mut i = 0;
    while i < HEAD_DIMS.len() {
        assert!(HEAD_DIMS[i].is_multiple_of(16));
        i += 1;
    }
};

/// The keys or the values of one KV head: position `p` is `data[base + p * step..][..dim]`.
#[derive(Clone, Copy, Debug)]
pub struct Heads<'a> {
    /// The buffer that holds the head's rows (it may hold other heads' rows too).
    pub data: &'a [f32],
    /// Index in `data` of element 0 of position 0.
    pub base: usize,
    /// Distance in elements from one position's row to the next.
    pub step: usize,
}

impl<'a> Heads<'a> {
    #[inline(always)]
    fn row(&self, pos: usize, dim: usize) -> &'a [f32] {
        &self.data[self.base + pos * self.step..][..dim]
    }
}

/// A tile's keys, transposed so that one register holds element `d` of all 16 keys.
pub struct KeysT<const D: usize> {
    pub(crate) t: [[f32; TILE]; D],
}

impl<const D: usize> KeysT<D> {
    /// Keys `start..start + n` (`n <= 16`) of `k`; the rest of the tile is zero.
    pub fn load(k: Heads<'_>, start: usize, n: usize) -> Box<Self> {
        let mut kt = Box::new(KeysT {
            t: [[0f32; TILE]; D],
        });
        kt.fill(k, start, n);
        kt
    }

    /// Reloads this buffer with keys `start..start + n` of `k`.
    ///
    /// # Panics
    /// When `n > 16` or a key lies outside `k.data`.
    pub fn fill(&mut self, k: Heads<'_>, start: usize, n: usize) {
        assert!(n <= TILE, "a tile has at most {TILE} keys");
        if n > 0 {
            let last = k.base + (start + n - 1) * k.step + D;
            assert!(
                last <= k.data.len(),
                "key {} is outside the keys",
                start + n - 1
            );
        }
        #[cfg(target_arch = "x86_64")]
        if level() == Level::Avx512 && i32::try_from(k.step * TILE).is_ok() {
            // SAFETY: the level says the CPU has AVX-512 F; the bounds and the stride were
            // checked just above.
            unsafe { avx512::fill(self, k, start, n) };
            return;
        }
        for i in 0..TILE {
            if i < n {
                for (d, &x) in k.row(start + i, D).iter().enumerate() {
                    self.t[d][i] = x;
                }
            } else {
                for row in self.t.iter_mut() {
                    row[i] = 0.0;
                }
            }
        }
    }
}

/// How scores are formed: `s = (q · k) * scale`, then `softcap * tanh(s / softcap)` when
/// `softcap` is not 0, then the mask added (`-inf`: the key is not attended).
#[derive(Clone, Copy, Debug)]
pub struct Scoring {
    /// Multiplies every dot product, usually `1 / sqrt(head dimension)`.
    pub scale: f32,
    /// The soft cap on scaled scores; 0 for none.
    pub softcap: f32,
}

/// One row's result over one tile: the unnormalised output `Σ p_i v_i`, the sum of the
/// weights `p_i = exp(s_i - max)`, and the maximum score; `(0, -inf)` when every key of the
/// tile is masked for the row.
#[derive(Clone, Debug)]
pub struct TileOut<const D: usize> {
    /// The unnormalised output `Σ p_i v_i` (all zero when every key is masked).
    pub vkq: [f32; D],
    /// The sum of the weights `p_i`.
    pub sum: f32,
    /// The maximum score the weights are relative to; `-inf` when every key is masked.
    pub max: f32,
}

impl<const D: usize> Default for TileOut<D> {
    fn default() -> Self {
        TileOut {
            vkq: [0.0; D],
            sum: 0.0,
            max: f32::NEG_INFINITY,
        }
    }
}

/// `e^x` for `x <= 88`, within 2 ulp: `2^n · e^r` with `n = round(x · log2 e)`, `r` reduced
/// with two constants, a degree-7 polynomial for `e^r`; 0 below -87.3 (and for `-inf`). Only
/// lane-wise operations and selects, so that the vectorised loops compute exactly what this
/// scalar code computes.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const LOW: f32 = -87.3;
    const HIGH: f32 = 88.0;
    // 1.5 · 2^23: adding it rounds a value below 2^22 to an integer (ties to even), which
    // then sits in the low bits of the sum.
    const MAGIC: f32 = 12_582_912.0;
    // Selects, not `clamp`: the vector version's min/max must compute what this does.
    #[allow(clippy::manual_clamp)]
    let xc = if x < LOW {
        LOW
    } else if x > HIGH {
        HIGH
    } else {
        x
    };
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = n.mul_add(-LN2_HI, xc);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = 1.0 / 5040.0f32;
    p = p.mul_add(r, 1.0 / 720.0);
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    if x < LOW { 0.0 } else { p * two_n }
}

/// Lane-wise halving, a fixed order (the AVX-512 version repeats it with shuffles): `op(t[i], t[i + w])` for w = 8, 4, 2, 1.
#[inline(always)]
fn tree(mut t: [f32; TILE], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = TILE / 2;
    while w > 0 {
        for i in 0..w {
            t[i] = op(t[i], t[i + w]);
        }
        w /= 2;
    }
    t[0]
}

/// Computes `out[r]` for each row `q[r]` (each `D` long) over keys `start..start + n` (in `kt`)
/// and the matching values of `v`, with `mask[r][i]` added to the score of key `start + i`.
///
/// # Panics
/// When more than 4 rows are given, or slices are shorter than their shapes.
#[allow(clippy::too_many_arguments)]
pub fn tile<const D: usize>(
    q: &[&[f32]],
    mask: &[[f32; TILE]],
    kt: &KeysT<D>,
    v: Heads<'_>,
    start: usize,
    n: usize,
    scoring: Scoring,
    out: &mut [TileOut<D>],
) {
    assert!(q.len() <= 4 && mask.len() >= q.len() && out.len() >= q.len());
    assert!(n <= TILE);
    match q.len() {
        0 => {}
        1 => dispatch::<D, 1>(q, mask, kt, v, start, n, scoring, out),
        2 => dispatch::<D, 2>(q, mask, kt, v, start, n, scoring, out),
        3 => dispatch::<D, 3>(q, mask, kt, v, start, n, scoring, out),
        _ => dispatch::<D, 4>(q, mask, kt, v, start, n, scoring, out),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn level() -> Level {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}

#[allow(clippy::too_many_arguments)]
fn dispatch<const D: usize, const R: usize>(
    q: &[&[f32]],
    mask: &[[f32; TILE]],
    kt: &KeysT<D>,
    v: Heads<'_>,
    start: usize,
    n: usize,
    scoring: Scoring,
    out: &mut [TileOut<D>],
) {
    let q: [&[f32; D]; R] = std::array::from_fn(|r| {
        q[r].get(..D)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_else(|| panic!("query row {r} is shorter than {D}"))
    });
    let mask: &[[f32; TILE]; R] = mask[..R].try_into().unwrap_or_else(|_| unreachable!());
    let out: &mut [TileOut<D>; R] = (&mut out[..R])
        .try_into()
        .unwrap_or_else(|_| unreachable!());
    match level() {
        // SAFETY: `level()` saw the features each version is compiled for.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { body_avx512::<D, R>(q, mask, kt, v, start, n, scoring, out) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { body_avx2::<D, R>(q, mask, kt, v, start, n, scoring, out) },
        Level::Baseline => body::<D, R>(q, mask, kt, v, start, n, scoring, out),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
use avx512::body as body_avx512;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn body_avx2<const D: usize, const R: usize>(
    q: [&[f32; D]; R],
    mask: &[[f32; TILE]; R],
    kt: &KeysT<D>,
    v: Heads<'_>,
    start: usize,
    n: usize,
    scoring: Scoring,
    out: &mut [TileOut<D>; R],
) {
    body::<D, R>(q, mask, kt, v, start, n, scoring, out)
}

/// The one definition of the arithmetic (see the module's comment).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn body<const D: usize, const R: usize>(
    q: [&[f32; D]; R],
    mask: &[[f32; TILE]; R],
    kt: &KeysT<D>,
    v: Heads<'_>,
    start: usize,
    n: usize,
    scoring: Scoring,
    out: &mut [TileOut<D>; R],
) {
    // Scores: per key, a fused multiply-add chain over d in order.
    let mut s = [[0f32; TILE]; R];
    for (d, k) in kt.t.iter().enumerate() {
        for r in 0..R {
            let qd = q[r][d];
            for i in 0..TILE {
                s[r][i] = qd.mul_add(k[i], s[r][i]);
            }
        }
    }
    let mut p = [[0f32; TILE]; R];
    let mut live = [false; R];
    for r in 0..R {
        let mut x = s[r];
        if scoring.softcap != 0.0 {
            for x in x.iter_mut() {
                *x *= scoring.scale;
                *x = scoring.softcap * (*x / scoring.softcap).tanh();
            }
        } else {
            for x in x.iter_mut() {
                *x *= scoring.scale;
            }
        }
        for (i, x) in x.iter_mut().enumerate() {
            *x = if i < n {
                *x + mask[r][i]
            } else {
                f32::NEG_INFINITY
            };
        }
        let max = tree(x, |a, b| if b > a { b } else { a });
        out[r].max = max;
        if max == f32::NEG_INFINITY {
            out[r].sum = 0.0;
            continue;
        }
        live[r] = true;
        for i in 0..TILE {
            p[r][i] = exp(x[i] - max);
        }
        out[r].sum = tree(p[r], |a, b| a + b);
    }
    // Output: per element, a fused multiply-add chain over the keys in order.
    for o in out.iter_mut() {
        o.vkq = [0.0; D];
    }
    if !live.iter().any(|&l| l) {
        return;
    }
    // 16 output elements at a time (every head size here is a multiple of 16), each row's in
    // registers across the tile's keys.
    for c in (0..D).step_by(16) {
        let mut acc = [[0f32; 16]; R];
        for i in 0..n {
            let vrow: &[f32; 16] = v.row(start + i, D)[c..c + 16]
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            for r in 0..R {
                let pi = p[r][i];
                for j in 0..16 {
                    acc[r][j] = pi.mul_add(vrow[j], acc[r][j]);
                }
            }
        }
        for r in 0..R {
            out[r].vkq[c..c + 16].copy_from_slice(&acc[r]);
        }
    }
}

#[cfg(test)]
mod tests;
