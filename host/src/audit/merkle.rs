//! RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, the tree
//! head of a growing log kept in O(log n) memory, and inclusion and
//! consistency proofs with their verification (RFC 9162 §2.1.3–2.1.4).
//!
//! Pure: no I/O. The log feeds it leaves; verification recomputes it.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of one record.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: an interior node.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of an empty tree: `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The tree head of a log that only grows: the roots of its perfect
/// subtrees, largest first (a "compact range"), so appending is O(1)
/// amortized and the root O(log n).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    size: u64,
    /// (height, hash) of each perfect subtree, left to right.
    peaks: Vec<(u32, Hash)>,
}

impl Tree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.peaks.last() {
            if height != node.0 {
                break;
            }
            self.peaks.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The root hash (RFC 9162 MTH) of the leaves so far.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = peaks.next() else {
            return empty_root();
        };
        for (_, left) in peaks {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The root of `leaves` (RFC 9162 MTH).
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    let mut tree = Tree::new();
    for leaf in leaves {
        tree.push(*leaf);
    }
    tree.root()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Every perfect subtree's hash of a growing log (2n hashes), so the root
/// of any prefix, inclusion proofs and consistency proofs cost O(log² n)
/// instead of rehashing the leaves.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// `levels[h][i]`: the subtree of leaves `i·2^h .. (i+1)·2^h`.
    levels: Vec<Vec<Hash>>,
}

impl Stored {
    /// No leaves yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stored hashes of these leaves.
    #[must_use]
    pub fn of(leaves: &[Hash]) -> Self {
        let mut stored = Self::new();
        for leaf in leaves {
            stored.push(*leaf);
        }
        stored
    }

    /// How many leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The hash of leaf `index`.
    #[must_use]
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut height = 0;
        loop {
            if self.levels.len() <= height {
                self.levels.push(Vec::new());
            }
            let Some(level) = self.levels.get_mut(height) else {
                return;
            };
            level.push(node);
            if !level.len().is_multiple_of(2) {
                return;
            }
            let pair = level.get(level.len() - 2..).unwrap_or_default();
            let (Some(left), Some(right)) = (pair.first(), pair.get(1)) else {
                return;
            };
            node = node_hash(left, right);
            height += 1;
        }
    }

    /// The root of leaves `lo..hi` (`lo < hi <= size`, `lo` aligned as RFC
    /// 9162's recursion aligns it).
    fn range(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let height = n.trailing_zeros() as usize;
            let index = usize::try_from(lo / n).unwrap_or(usize::MAX);
            if let Some(hash) = self.levels.get(height).and_then(|l| l.get(index)) {
                return *hash;
            }
        }
        if n == 1 {
            return self.leaf(lo).unwrap_or_else(empty_root);
        }
        let k = split(n);
        node_hash(&self.range(lo, lo + k), &self.range(lo + k, hi))
    }

    /// The root of the first `size` leaves.
    #[must_use]
    pub fn root(&self, size: u64) -> Hash {
        if size == 0 || size > self.size() {
            return empty_root();
        }
        self.range(0, size)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size`
    /// leaves (RFC 9162 §2.1.3.1), or `None` if out of range.
    #[must_use]
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.size() {
            return None;
        }
        let mut out = Vec::new();
        let (mut lo, mut hi, mut m) = (0, size, index);
        let mut stack = Vec::new();
        while hi - lo > 1 {
            let k = split(hi - lo);
            if m < k {
                stack.push(self.range(lo + k, hi));
                hi = lo + k;
            } else {
                stack.push(self.range(lo, lo + k));
                lo += k;
                m -= k;
            }
        }
        while let Some(hash) = stack.pop() {
            out.push(hash);
        }
        Some(out)
    }

    /// The consistency proof from the first `old` leaves to the first `new`
    /// (RFC 9162 §2.1.4.1), or `None` unless `0 < old <= new <= size`.
    #[must_use]
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        if old == 0 || old > new || new > self.size() {
            return None;
        }
        let mut stack = Vec::new();
        let (mut lo, mut hi, mut m, mut whole) = (0, new, old, true);
        loop {
            let n = hi - lo;
            if m == n {
                if !whole {
                    stack.push(self.range(lo, hi));
                }
                break;
            }
            let k = split(n);
            if m <= k {
                stack.push(self.range(lo + k, hi));
                hi = lo + k;
            } else {
                stack.push(self.range(lo, lo + k));
                lo += k;
                m -= k;
                whole = false;
            }
        }
        let mut out = Vec::with_capacity(stack.len());
        while let Some(hash) = stack.pop() {
            out.push(hash);
        }
        Some(out)
    }
}

/// The inclusion proof of leaf `index` in the tree of `leaves`.
#[must_use]
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    Stored::of(leaves).inclusion_proof(index as u64, leaves.len() as u64)
}

/// The consistency proof from the first `old` leaves to all of `leaves`.
#[must_use]
pub fn consistency_proof(leaves: &[Hash], old: usize) -> Option<Vec<Hash>> {
    Stored::of(leaves).consistency_proof(old as u64, leaves.len() as u64)
}

/// Check an inclusion proof (RFC 9162 §2.1.3.2).
#[must_use]
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// Check a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
#[must_use]
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *old_root && sr == *new_root && s_n == 0
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "tests fail loudly by design")]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The leaves of the RFC 6962 test vectors (certificate-transparency-go).
    fn vector_leaves() -> Vec<Hash> {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        data.iter().map(|d| leaf_hash(d)).collect()
    }

    #[test]
    fn known_answers_of_rfc_6962() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let leaves = vector_leaves();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, want) in roots.iter().enumerate() {
            assert_eq!(hex(&root(&leaves[..=n])), *want, "root of {} leaves", n + 1);
        }
    }

    #[test]
    fn stored_roots_of_every_prefix_match() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let stored = Stored::of(&leaves);
        for n in 0..=leaves.len() {
            assert_eq!(stored.root(n as u64), root(&leaves[..n]), "{n}");
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop, reason = "indices are what is proven")]
    fn every_inclusion_and_consistency_proof_verifies_and_no_other() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let tree = &leaves[..n];
            let head = root(tree);
            for i in 0..n {
                let proof = inclusion_proof(tree, i).unwrap();
                assert!(verify_inclusion(
                    &leaves[i], i as u64, n as u64, &proof, &head
                ));
                let other = leaf_hash(b"other");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &head));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify_inclusion(
                        &leaves[i], j as u64, n as u64, &proof, &head
                    ));
                }
            }
            for m in 1..=n {
                let proof = consistency_proof(tree, m).unwrap();
                let old = root(&leaves[..m]);
                assert!(
                    verify_consistency(m as u64, n as u64, &old, &head, &proof),
                    "{m} -> {n}"
                );
                if m < n {
                    let wrong = leaf_hash(b"forged");
                    assert!(!verify_consistency(
                        m as u64, n as u64, &wrong, &head, &proof
                    ));
                    assert!(!verify_consistency(
                        m as u64, n as u64, &old, &wrong, &proof
                    ));
                }
            }
        }
    }
}
