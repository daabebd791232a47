//! Checking proofs as a client does (RFC 9162 sections 2.1.3.2 and 2.1.4.2), for the witness.
//! Written from the RFC's verification algorithms, not from the code that makes the proofs.

use super::merkle::{node_hash, Node};

/// Whether `proof` shows that `leaf` is leaf `index` of the tree of `size` with `root`.
pub fn inclusion(index: u64, size: u64, leaf: &Node, proof: &[Node], root: &Node) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Whether `proof` shows that the tree of `first` leaves with `first_root` is a prefix of
/// the tree of `second` leaves with `second_root` (`0 < first <= second`).
pub fn consistency(first: u64, second: u64, first_root: &Node, second_root: &Node, proof: &[Node]) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Node> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((c0, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*c0, *c0);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_root && sr == *second_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::super::merkle::{leaf_hash, MerkleTree};
    use super::*;

    /// Sizes out of order, or a first tree of no leaves, prove nothing, whatever the proof.
    #[test]
    fn consistency_needs_a_first_tree_of_one_leaf_or_more_within_the_second() {
        let leaves: Vec<Node> = (0u32..8).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = MerkleTree::from_leaves(leaves);
        let (r3, r5) = (tree.root(3).unwrap(), tree.root(5).unwrap());
        let proof = tree.consistency_proof(3, 5).unwrap();
        assert!(consistency(3, 5, &r3, &r5, &proof));
        assert!(!consistency(5, 3, &r5, &r3, &proof));
        assert!(!consistency(0, 5, &tree.root(0).unwrap(), &r5, &proof));
        assert!(!consistency(0, 5, &tree.root(0).unwrap(), &r5, &[]));
        // Equal sizes need equal roots and an empty proof, both.
        assert!(consistency(5, 5, &r5, &r5, &[]));
        assert!(!consistency(5, 5, &r5, &r3, &[]));
        assert!(!consistency(5, 5, &r5, &r5, &[r3]));
    }

    #[test]
    fn proofs_of_the_tree_verify_and_tampered_ones_do_not() {
        let leaves: Vec<Node> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = MerkleTree::from_leaves(leaves.clone());
        for size in 1..=40 {
            let root = tree.root(size).unwrap();
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                assert!(inclusion(index, size, &leaves[index as usize], &proof, &root));
                let wrong = (index + 1) % size;
                if wrong != index {
                    assert!(!inclusion(wrong, size, &leaves[index as usize], &proof, &root));
                }
            }
            for first in 1..=size {
                let proof = tree.consistency_proof(first, size).unwrap();
                let first_root = tree.root(first).unwrap();
                assert!(
                    consistency(first, size, &first_root, &root, &proof),
                    "{first} -> {size}"
                );
                if first < size {
                    assert!(!consistency(first, size, &leaves[0], &root, &proof) || first == 1);
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(!consistency(first, size, &first_root, &root, &bad), "{first} -> {size}");
                }
            }
        }
    }
}
