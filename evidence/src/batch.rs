//! Batched Ed25519 signature verification for `evidence verify`.
//!
//! Checking 10,000 bundles means 20,000 Ed25519 signatures. Checked one at a time each costs a
//! full double-scalar multiplication and a point compression; checked as a batch, the random
//! linear combination `8·(Σ zᵢRᵢ + (Σ zᵢkᵢ)A − (Σ zᵢsᵢ)B) = 0` costs one multi-scalar
//! multiplication with 128-bit coefficients for the whole batch, and since every bundle of a
//! chain is signed by the same key, `A` appears once per batch instead of once per signature.
//! (ed25519-dalek's own `verify_batch` needs the `merlin` crate, which is not available here,
//! and does not share `A`.)
//!
//! Strictness matches `VerifyingKey::verify_strict` for everything checked per signature:
//! `s` must be canonical, `R` must decompress and not be of small order, `A` must not be weak.
//! The batch equation is the cofactored one (as in every Ed25519 batch verifier); a signature
//! that passes it but not the cofactorless equation can only be made by the key holder, and
//! cannot make a modified bundle verify. When a batch fails, each of its signatures is checked
//! on its own (cofactorless, exactly `verify_strict`) to name the bad ones.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use rand_core::RngCore;
use sha2::{Digest, Sha512};

/// Signatures per multi-scalar multiplication (larger batches gain little and a failing batch
/// costs a re-check of each member).
const BATCH: usize = 64;

/// One signature to check: `sig` over a message whose challenge `k` was computed with
/// [`challenge`] (so the message itself need not be kept).
#[derive(Debug, Clone)]
pub struct SigCheck {
    pub key: VerifyingKey,
    pub r: [u8; 32],
    pub s: [u8; 32],
    pub k: Scalar,
}

impl SigCheck {
    /// Prepare a check of a 64-byte Ed25519 signature `sig` over `msg` by `key`.
    pub fn new(key: VerifyingKey, sig: &[u8; 64], msg: &[u8]) -> SigCheck {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&sig[..32]);
        s.copy_from_slice(&sig[32..]);
        let k = challenge(&r, &key, msg);
        SigCheck { key, r, s, k }
    }
}

/// The Ed25519 challenge `k = SHA-512(R ‖ A ‖ M) mod ℓ` (RFC 8032, 5.1.7).
pub fn challenge(r: &[u8; 32], key: &VerifyingKey, msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(key.as_bytes());
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Per-signature preconditions (the `verify_strict` ones); `None` if any fails.
fn prepare(c: &SigCheck) -> Option<(EdwardsPoint, Scalar)> {
    let s: Option<Scalar> = Scalar::from_canonical_bytes(c.s).into();
    let r = CompressedEdwardsY(c.r).decompress()?;
    if r.is_small_order() || c.key.is_weak() {
        return None;
    }
    Some((r, s?))
}

/// One signature, cofactorless: `[s]B − [k]A` must encode to exactly `R`.
fn verify_one(c: &SigCheck, s: &Scalar) -> bool {
    let minus_a = -EdwardsPoint::from(c.key);
    EdwardsPoint::vartime_double_scalar_mul_basepoint(&c.k, &minus_a, s)
        .compress()
        .0
        == c.r
}

/// Check every signature; `result[i]` says whether `checks[i]` is valid.
pub fn verify_all(checks: &[SigCheck]) -> Vec<bool> {
    let mut ok = vec![false; checks.len()];
    // Group by key so that A is shared within a batch.
    let mut order: Vec<usize> = (0..checks.len()).collect();
    order.sort_by_key(|&i| *checks[i].key.as_bytes());
    let mut start = 0;
    while start < order.len() {
        let key = checks[order[start]].key;
        let mut end = start;
        while end < order.len() && end - start < BATCH && checks[order[end]].key == key {
            end += 1;
        }
        verify_batch(checks, &order[start..end], &mut ok);
        start = end;
    }
    ok
}

/// A batch of signatures by one key.
fn verify_batch(checks: &[SigCheck], idx: &[usize], ok: &mut [bool]) {
    let prepared: Vec<(usize, EdwardsPoint, Scalar)> = idx
        .iter()
        .filter_map(|&i| prepare(&checks[i]).map(|(r, s)| (i, r, s)))
        .collect();
    if prepared.is_empty() {
        return;
    }
    let a = EdwardsPoint::from(checks[prepared[0].0].key);
    let mut random = vec![0u8; 16 * prepared.len()];
    rand_core::OsRng.fill_bytes(&mut random);
    let z: Vec<Scalar> = random
        .chunks_exact(16)
        .map(|c| {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(c);
            Scalar::from_bytes_mod_order(b)
        })
        .collect();
    let mut b_coeff = Scalar::ZERO;
    let mut a_coeff = Scalar::ZERO;
    for ((i, _, s), zi) in prepared.iter().zip(&z) {
        b_coeff -= zi * s;
        a_coeff += zi * checks[*i].k;
    }
    let scalars = [b_coeff, a_coeff].into_iter().chain(z.iter().copied());
    let points = [ED25519_BASEPOINT_POINT, a]
        .into_iter()
        .chain(prepared.iter().map(|(_, r, _)| *r));
    if EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
    {
        for (i, _, _) in &prepared {
            ok[*i] = true;
        }
    } else {
        // Something in the batch is bad: find out which, one at a time.
        for (i, _, s) in &prepared {
            ok[*i] = verify_one(&checks[*i], s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn sig(sk: &SigningKey, msg: &[u8]) -> [u8; 64] {
        sk.sign(msg).to_bytes()
    }

    #[test]
    fn batches_accept_good_and_name_each_bad_signature() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let mut checks = Vec::new();
        let mut expect = Vec::new();
        for i in 0..150u32 {
            let msg = format!("bundle {i}");
            let signer = if i % 3 == 0 { &b } else { &a };
            let mut s = sig(signer, msg.as_bytes());
            let mut m = msg.clone().into_bytes();
            let good = match i % 37 {
                5 => {
                    s[40] ^= 1; // flipped bit in s
                    false
                }
                6 => {
                    s[3] ^= 1; // flipped bit in R
                    false
                }
                7 => {
                    m.push(b'!'); // other message
                    false
                }
                _ => true,
            };
            checks.push(SigCheck::new(signer.verifying_key(), &s, &m));
            expect.push(good);
            // dalek agrees on every case.
            let dalek = signer
                .verifying_key()
                .verify_strict(&m, &ed25519_dalek::Signature::from_bytes(&s))
                .is_ok();
            assert_eq!(dalek, good, "case {i}");
        }
        // A signature by the wrong key.
        checks.push(SigCheck::new(a.verifying_key(), &sig(&b, b"x"), b"x"));
        expect.push(false);
        assert_eq!(verify_all(&checks), expect);
        assert!(verify_all(&[]).is_empty());
    }
}
