//! The tile kernel in AVX-512 intrinsics, operation for operation the arithmetic of `body`
//! in lib.rs (one register holds the 16 keys of a tile, or 16 output elements), so that it
//! gives the same bits (tested against it).

use std::arch::x86_64::*;

use super::{Heads, KeysT, Scoring, TILE, TileOut};

/// `super::exp` on 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const LOW: f32 = -87.3;
    const HIGH: f32 = 88.0;
    const MAGIC: f32 = 12_582_912.0;
    let low = _mm512_set1_ps(LOW);
    let xc = _mm512_min_ps(_mm512_max_ps(x, low), _mm512_set1_ps(HIGH));
    let magic = _mm512_set1_ps(MAGIC);
    let t = _mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(LOG2E)), magic);
    let n = _mm512_sub_ps(t, magic);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), xc);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let bits = _mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(MAGIC.to_bits() as i32),
    );
    let two_n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        bits,
        _mm512_set1_epi32(127),
    )));
    let keep = _mm512_cmp_ps_mask::<_CMP_NLT_US>(x, low);
    _mm512_maskz_mul_ps(keep, p, two_n)
}

/// `super::tree` with `+`: lanes i and i + 8, then i + 4, i + 2, i + 1.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn tree_sum(x: __m512) -> f32 {
    let a = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps::<1>(x));
    let b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
    let c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)))
}

/// # Safety
/// The CPU has AVX-512 F/BW/DQ/VL and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn body<const D: usize, const R: usize>(
    q: [&[f32; D]; R],
    mask: &[[f32; TILE]; R],
    kt: &KeysT<D>,
    v: Heads<'_>,
    start: usize,
    n: usize,
    scoring: Scoring,
    out: &mut [TileOut<D>; R],
) {
    let mut s = [_mm512_setzero_ps(); R];
    for (d, k) in kt.t.iter().enumerate() {
        let k = unsafe { _mm512_loadu_ps(k.as_ptr()) };
        for r in 0..R {
            s[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][d]), k, s[r]);
        }
    }
    let valid: __mmask16 = if n >= TILE { !0 } else { (1u16 << n) - 1 };
    let mut p = [_mm512_setzero_ps(); R];
    let mut live = false;
    for r in 0..R {
        let mut x = _mm512_mul_ps(s[r], _mm512_set1_ps(scoring.scale));
        if scoring.softcap != 0.0 {
            let mut lanes = [0f32; TILE];
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), x) };
            for l in lanes.iter_mut() {
                *l = scoring.softcap * (*l / scoring.softcap).tanh();
            }
            x = unsafe { _mm512_loadu_ps(lanes.as_ptr()) };
        }
        let m = unsafe { _mm512_loadu_ps(mask[r].as_ptr()) };
        let x = _mm512_mask_add_ps(_mm512_set1_ps(f32::NEG_INFINITY), valid, x, m);
        let max = _mm512_reduce_max_ps(x);
        out[r].max = max;
        if max == f32::NEG_INFINITY {
            out[r].sum = 0.0;
            continue;
        }
        live = true;
        p[r] = exp16(_mm512_sub_ps(x, _mm512_set1_ps(max)));
        out[r].sum = tree_sum(p[r]);
    }
    if !live {
        for o in out.iter_mut() {
            o.vkq = [0.0; D];
        }
        return;
    }
    let mut pl = [[0f32; TILE]; R];
    for r in 0..R {
        unsafe { _mm512_storeu_ps(pl[r].as_mut_ptr(), p[r]) };
    }
    for c in (0..D).step_by(16) {
        let mut acc = [_mm512_setzero_ps(); R];
        for i in 0..n {
            let vrow = &v.row(start + i, D)[c..c + 16];
            let vv = unsafe { _mm512_loadu_ps(vrow.as_ptr()) };
            for r in 0..R {
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(pl[r][i]), vv, acc[r]);
            }
        }
        for r in 0..R {
            unsafe { _mm512_storeu_ps(out[r].vkq[c..c + 16].as_mut_ptr(), acc[r]) };
        }
    }
}

/// `KeysT::fill` with gathers: element `d` of the tile's 16 keys in one instruction.
///
/// # Safety
/// The CPU has AVX-512 F; keys `start..start + n` of `k` are inside `k.data` (checked by the
/// caller), `n <= 16`, and `k.step * 15` fits an i32.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn fill<const D: usize>(kt: &mut KeysT<D>, k: Heads<'_>, start: usize, n: usize) {
    let step = k.step as i32;
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(step),
    );
    let valid: __mmask16 = if n >= TILE { !0 } else { (1u16 << n) - 1 };
    let base = unsafe { k.data.as_ptr().add(k.base + start * k.step) };
    for (d, row) in kt.t.iter_mut().enumerate() {
        unsafe {
            let g = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), valid, idx, base.add(d));
            _mm512_storeu_ps(row.as_mut_ptr(), g);
        }
    }
}
