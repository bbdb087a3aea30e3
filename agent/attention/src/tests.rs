use super::*;

struct Rng(u64);

impl Rng {
    fn float(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn ulps(a: f32, b: f64) -> f64 {
    let b32 = b as f32;
    ((a - b32).abs() as f64) / (b32.abs() * f32::EPSILON).max(f32::MIN_POSITIVE) as f64
}

#[test]
fn exp_is_within_two_ulp_and_exact_at_the_edges() {
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp(-100.0), 0.0);
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        worst = worst.max(ulps(exp(x), (x as f64).exp()));
        x += 0.000_97;
    }
    assert!(worst <= 2.0, "worst error {worst} ulp");
}

/// Random rows, keys and values; masks with some keys out; the four-row kernel's results
/// against float64 attention over the same tile.
#[test]
fn a_tile_is_attention_within_float_rounding() {
    const D: usize = 64;
    let mut rng = Rng(11);
    let kv: Vec<f32> = (0..3 * TILE * D).map(|_| rng.float() * 2.0).collect();
    let heads = |base| Heads {
        data: &kv,
        base,
        step: D,
    };
    let (k, v) = (heads(0), heads(TILE * D));
    let q: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..D).map(|_| rng.float()).collect())
        .collect();
    let mut mask = [[0f32; TILE]; 4];
    for (r, m) in mask.iter_mut().enumerate() {
        for (i, x) in m.iter_mut().enumerate() {
            *x = if (i + r) % 5 == 0 {
                f32::NEG_INFINITY
            } else {
                rng.float()
            };
        }
    }
    mask[3] = [f32::NEG_INFINITY; TILE];
    let n = 13;
    let scoring = Scoring {
        scale: 0.125,
        softcap: 0.0,
    };
    let kt = KeysT::<D>::load(k, 0, n);
    let rows: Vec<&[f32]> = q.iter().map(|r| r.as_slice()).collect();
    let mut out: Vec<TileOut<D>> = vec![TileOut::default(); 4];
    tile(&rows, &mask, &kt, v, 0, n, scoring, &mut out);
    for r in 0..4 {
        let scores: Vec<f64> = (0..n)
            .map(|i| {
                let dot: f64 = (0..D).map(|d| q[r][d] as f64 * k.row(i, D)[d] as f64).sum();
                dot * 0.125 + mask[r][i] as f64
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            assert_eq!((out[r].sum, out[r].max), (0.0, f32::NEG_INFINITY));
            continue;
        }
        let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = w.iter().sum();
        assert!(((out[r].max as f64) - max).abs() <= 1e-5 * max.abs().max(1.0));
        assert!(
            ((out[r].sum as f64) - sum).abs() <= 1e-5 * sum,
            "row {r}: sum"
        );
        for j in 0..D {
            let want: f64 = (0..n).map(|i| w[i] * v.row(i, D)[j] as f64).sum::<f64>() / sum;
            let got = out[r].vkq[j] as f64 / out[r].sum as f64;
            assert!(
                (got - want).abs() <= 1e-5,
                "row {r} element {j}: {got} vs {want}"
            );
        }
    }
}

/// A row's bits do not depend on the rows computed with it nor on the instruction set.
#[test]
fn a_row_gets_the_same_bits_in_any_company_and_on_any_cpu() {
    const D: usize = 128;
    let mut rng = Rng(5);
    let kv: Vec<f32> = (0..2 * TILE * D).map(|_| rng.float() * 3.0).collect();
    let (k, v) = (
        Heads {
            data: &kv,
            base: 0,
            step: D,
        },
        Heads {
            data: &kv,
            base: TILE * D,
            step: D,
        },
    );
    let q: Vec<[f32; D]> = (0..4)
        .map(|_| std::array::from_fn(|_| rng.float()))
        .collect();
    let mask: [[f32; TILE]; 4] = std::array::from_fn(|r| {
        std::array::from_fn(|i| if i > 10 + r { f32::NEG_INFINITY } else { 0.0 })
    });
    let kt = KeysT::<D>::load(k, 0, TILE);
    for scoring in [
        Scoring {
            scale: 0.09,
            softcap: 0.0,
        },
        Scoring {
            scale: 0.09,
            softcap: 30.0,
        },
    ] {
        let bits = |o: &TileOut<D>| {
            let mut b: Vec<u32> = o.vkq.iter().map(|x| x.to_bits()).collect();
            b.extend([o.sum.to_bits(), o.max.to_bits()]);
            b
        };
        let mut four: [TileOut<D>; 4] = std::array::from_fn(|_| TileOut::default());
        body::<D, 4>(
            [&q[0], &q[1], &q[2], &q[3]],
            &mask,
            &kt,
            v,
            0,
            TILE,
            scoring,
            &mut four,
        );
        for r in 0..4 {
            let want = bits(&four[r]);
            let m1 = [mask[r]];
            let mut one = [TileOut::default()];
            body::<D, 1>([&q[r]], &m1, &kt, v, 0, TILE, scoring, &mut one);
            assert_eq!(bits(&one[0]), want, "row {r} alone, baseline");
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: checked just above.
                    unsafe { body_avx2::<D, 1>([&q[r]], &m1, &kt, v, 0, TILE, scoring, &mut one) };
                    assert_eq!(bits(&one[0]), want, "row {r} alone, AVX2");
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    let mut two: [TileOut<D>; 2] = std::array::from_fn(|_| TileOut::default());
                    let m2 = [mask[r], mask[(r + 1) % 4]];
                    // SAFETY: checked just above.
                    unsafe {
                        body_avx512::<D, 2>(
                            [&q[r], &q[(r + 1) % 4]],
                            &m2,
                            &kt,
                            v,
                            0,
                            TILE,
                            scoring,
                            &mut two,
                        )
                    };
                    assert_eq!(bits(&two[0]), want, "row {r} in a pair, AVX-512");
                }
            }
        }
    }
}

/// A tile's transposed keys hold exactly the keys (gathered or copied), zeros past `n`.
#[test]
fn transposed_keys_are_the_keys() {
    const D: usize = 32;
    let mut rng = Rng(3);
    // Three KV heads interleaved, as the cache lays them out: position-major.
    let data: Vec<f32> = (0..40 * 3 * D).map(|_| rng.float()).collect();
    for (base, start, n) in [(D, 0, 16), (2 * D, 16, 7), (0, 32, 1)] {
        let k = Heads {
            data: &data,
            base,
            step: 3 * D,
        };
        let kt = KeysT::<D>::load(k, start, n);
        for d in 0..D {
            let want: Vec<f32> = (0..TILE)
                .map(|i| if i < n { k.row(start + i, D)[d] } else { 0.0 })
                .collect();
            assert_eq!(kt.t[d].to_vec(), want, "element {d} of tile at {start}");
        }
    }
}
