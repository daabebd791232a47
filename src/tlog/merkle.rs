//! The Merkle tree of RFC 9162 section 2.1 over the log's events, kept in memory.
//!
//! Every complete, aligned subtree's hash is kept: level 0 holds the leaf hashes, level `k`
//! the hashes of the subtrees of `2^k` leaves that start at a multiple of `2^k`. That is
//! about two hashes (64 bytes) per leaf. Appending a leaf completes at most one subtree per
//! level, so it costs O(log n) hashes amortised to two; the root of any size is the hash
//! of the O(log n) complete subtrees its size decomposes into, so old roots and proofs
//! against them stay answerable without keeping anything per size.

use sha2::{Digest, Sha256};

/// A SHA-256 digest in the tree.
pub type Node = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Node {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Node, right: &Node) -> Node {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Node {
    Sha256::digest([]).into()
}

/// Why a proof or root cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree size {size} is beyond the {len} leaves of the tree")]
    SizeBeyondTree { size: u64, len: u64 },
    #[error("leaf index {index} is not below tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("fromSize {from} is greater than toSize {to}")]
    FromAfterTo { from: u64, to: u64 },
    #[error("fromSize must be at least 1 (got 0)")]
    EmptyFrom,
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The tree over leaves appended so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[k][i]`: hash of leaves `i * 2^k .. (i + 1) * 2^k`.
    levels: Vec<Vec<Node>>,
}

impl MerkleTree {
    /// A tree over the given leaf hashes (in order).
    pub fn from_leaves(leaves: Vec<Node>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() >= 2) {
            let below = levels.last().expect("a level");
            let above = below.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
            levels.push(above);
        }
        MerkleTree { levels }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Option<&Node> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    /// The hash of the complete subtree of leaves `index * 2^level .. (index + 1) * 2^level`,
    /// if the tree has all of them.
    pub fn subtree(&self, level: u32, index: u64) -> Option<&Node> {
        self.levels.get(level as usize)?.get(usize::try_from(index).ok()?)
    }

    /// Appends one leaf hash, completing the subtrees it closes.
    pub fn push(&mut self, leaf: Node) {
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(node);
            let index = row.len() - 1;
            if index.is_multiple_of(2) {
                return;
            }
            node = node_hash(&row[index - 1], &row[index]);
            level += 1;
        }
    }

    /// Forgets the leaves from `len` on (for a tree found longer than the log it covers).
    pub fn truncate(&mut self, len: u64) {
        for (k, row) in self.levels.iter_mut().enumerate() {
            row.truncate((len >> k) as usize);
        }
        while self.levels.len() > 1 && self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    fn check_size(&self, size: u64) -> Result<(), TreeError> {
        if size > self.len() {
            return Err(TreeError::SizeBeyondTree { size, len: self.len() });
        }
        Ok(())
    }

    /// MTH of leaves `start .. end` (`start < end <= len`), where `start` is a multiple of
    /// the largest power of two not above `end - start`, as every range of the RFC's
    /// recursions is.
    fn range_hash(&self, start: u64, end: u64) -> Node {
        let n = end - start;
        if n.is_power_of_two() {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(start >> k) as usize];
        }
        let k = split(n);
        node_hash(&self.range_hash(start, start + k), &self.range_hash(start + k, end))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Node, TreeError> {
        self.check_size(size)?;
        Ok(if size == 0 {
            empty_root()
        } else {
            self.range_hash(0, size)
        })
    }

    /// The inclusion proof (RFC 9162 section 2.1.3.1) of leaf `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Node>, TreeError> {
        self.check_size(size)?;
        if index >= size {
            return Err(TreeError::IndexBeyondSize { index, size });
        }
        // PATH(m, D[start:end]) from the leaf upwards, iteratively.
        let mut path = Vec::new();
        let (mut start, mut end, m) = (0, size, index);
        while end - start > 1 {
            let k = split(end - start);
            if m < start + k {
                path.push(self.range_hash(start + k, end));
                end = start + k;
            } else {
                path.push(self.range_hash(start, start + k));
                start += k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// The consistency proof (RFC 9162 section 2.1.4.1) between the trees of `from` and `to`
    /// leaves.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Node>, TreeError> {
        self.check_size(to)?;
        if from == 0 {
            return Err(TreeError::EmptyFrom);
        }
        if from > to {
            return Err(TreeError::FromAfterTo { from, to });
        }
        // SUBPROOF(m, D[start:end], b), unrolled: each step adds one hash, collected top-down.
        let mut proof = Vec::new();
        let (mut start, mut end, mut m, mut whole) = (0, to, from, true);
        while m != end - start {
            let n = end - start;
            let k = split(n);
            if m <= k {
                proof.push(self.range_hash(start + k, end));
                end = start + k;
            } else {
                proof.push(self.range_hash(start, start + k));
                start += k;
                m -= k;
                whole = false;
            }
        }
        if !whole {
            proof.push(self.range_hash(start, end));
        }
        proof.reverse();
        Ok(proof)
    }

    /// Bytes held by the tree's hashes.
    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 32).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from the RFC's recursive definition.
    fn mth(leaves: &[Node]) -> Node {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Node> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn roots_match_the_recursive_definition_at_every_size() {
        let all = leaves(70);
        let mut tree = MerkleTree::default();
        assert_eq!(tree.root(0).unwrap(), empty_root());
        for (i, l) in all.iter().enumerate() {
            tree.push(*l);
            for size in 0..=tree.len() {
                assert_eq!(
                    tree.root(size).unwrap(),
                    mth(&all[..size as usize]),
                    "size {size} after {i}"
                );
            }
        }
        assert_eq!(MerkleTree::from_leaves(all.clone()), tree);
        assert!(tree.root(71).is_err());
    }

    #[test]
    fn known_answer_for_the_empty_tree_and_one_leaf() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // SHA-256 of the single byte 0x00 (an empty leaf).
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn truncate_gives_the_tree_of_the_prefix() {
        let mut tree = MerkleTree::from_leaves(leaves(37));
        tree.truncate(21);
        assert_eq!(tree, MerkleTree::from_leaves(leaves(21)));
    }

    #[test]
    fn refuses_bad_sizes() {
        let tree = MerkleTree::from_leaves(leaves(5));
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(TreeError::IndexBeyondSize { index: 5, size: 5 })
        );
        assert!(tree.inclusion_proof(0, 6).is_err());
        assert_eq!(tree.consistency_proof(0, 3), Err(TreeError::EmptyFrom));
        assert_eq!(
            tree.consistency_proof(4, 3),
            Err(TreeError::FromAfterTo { from: 4, to: 3 })
        );
        assert!(tree.consistency_proof(3, 6).is_err());
        assert_eq!(tree.consistency_proof(5, 5), Ok(vec![]));
    }

    #[test]
    fn reads_leaves_and_counts_its_bytes() {
        assert!(MerkleTree::default().is_empty());
        let mut tree = MerkleTree::from_leaves(leaves(4));
        assert!(!tree.is_empty());
        assert_eq!(tree.leaf(3), Some(&leaves(4)[3]));
        assert_eq!((tree.leaf(4), tree.leaf(u64::MAX)), (None, None));
        // Levels of 4, 2 and 1 hashes, each allocated to fit.
        assert_eq!(tree.heap_bytes(), 32 * 7);
        // Truncated to nothing, it is the empty tree, and grows again from there.
        tree.truncate(0);
        assert_eq!(tree, MerkleTree::from_leaves(vec![]));
        assert!(tree.is_empty());
        tree.push(leaves(1)[0]);
        assert_eq!(tree, MerkleTree::from_leaves(leaves(1)));
    }
}
