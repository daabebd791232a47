//! The C2SP `tlog-tiles` encoding of the tree: tile paths, hash tiles and entry bundles.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of the tree's level `8 L`, the
//! hashes of the aligned subtrees of `256^L` leaves, which [`MerkleTree`] keeps anyway: a
//! tile is a copy of at most 8 KiB, with no hashing. Entry bundles are the level-0 entries
//! themselves, each a big-endian `u16` length then its bytes.

use super::merkle::MerkleTree;

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// The largest entry a bundle can hold (its length is a `u16`).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;
/// The longest tile path accepted (`entries/` and seven `xNNN/` elements, with `.p/255`).
const MAX_PATH_BYTES: usize = 64;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Hashes of the tree's level `8 * level`.
    Hashes { level: u8 },
    /// The entries of level 0.
    Entries,
}

/// A parsed `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` path (after `tile/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    pub kind: TileKind,
    /// The tile's index within its level.
    pub index: u64,
    /// 256 for a full tile, 1 to 255 for a partial one.
    pub width: u64,
}

/// Why a tile path is refused or a tile cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path is not one the spec defines.
    #[error("bad tile path: {0}")]
    BadPath(String),
    /// The path is well formed but the tree does not (yet) have that tile.
    #[error("no such tile: {0}")]
    NotFound(String),
    /// The log cannot produce it (damaged, or an entry too large for a bundle).
    #[error("{0}")]
    Unavailable(String),
}

fn bad(why: impl Into<String>) -> TileError {
    TileError::BadPath(why.into())
}

/// A decimal with no leading zeroes (`0` itself allowed), within `max`.
fn small_decimal(text: &str, what: &str, max: u64) -> Result<u64, TileError> {
    let canonical = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    let value = if canonical { text.parse::<u64>().ok() } else { None };
    match value {
        Some(v) if v <= max => Ok(v),
        _ => Err(bad(format!(
            "{what} `{}` is not a decimal from 0 to {max} without leading zeroes",
            text.escape_debug()
        ))),
    }
}

/// Encodes a tile index as 3-digit path elements, all but the last prefixed with `x`.
pub fn encode_index(index: u64) -> String {
    let mut groups = vec![index % 1000];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let mut out = String::new();
    for (i, g) in groups.iter().rev().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if i + 1 < groups.len() {
            out.push('x');
        }
        out.push_str(&format!("{g:03}"));
    }
    out
}

/// The path of a tile, after `tile/`.
pub fn encode_path(path: &TilePath) -> String {
    let level = match path.kind {
        TileKind::Hashes { level } => level.to_string(),
        TileKind::Entries => "entries".to_owned(),
    };
    let mut out = format!("{level}/{}", encode_index(path.index));
    if path.width < TILE_WIDTH {
        out.push_str(&format!(".p/{}", path.width));
    }
    out
}

impl TilePath {
    /// Parses the part of a tile URL after `tile/`, accepting only the canonical encoding.
    pub fn parse(text: &str) -> Result<TilePath, TileError> {
        if text.len() > MAX_PATH_BYTES {
            return Err(bad(format!("longer than {MAX_PATH_BYTES} bytes")));
        }
        let mut parts: Vec<&str> = text.split('/').collect();
        if parts.len() < 2 {
            return Err(bad("expected <L>/<N>[.p/<W>] or entries/<N>[.p/<W>]"));
        }
        let kind = match parts[0] {
            "entries" => TileKind::Entries,
            l => TileKind::Hashes {
                level: small_decimal(l, "the level", 63)? as u8,
            },
        };
        let mut width = TILE_WIDTH;
        if parts.len() >= 3 {
            if let Some(last_index) = parts[parts.len() - 2].strip_suffix(".p") {
                let w = parts[parts.len() - 1];
                width = small_decimal(w, "the partial width", 255)?;
                if width == 0 {
                    return Err(bad(
                        "the partial width must be from 1 to 255 (an empty tile is never served)",
                    ));
                }
                let n = parts.len();
                parts[n - 2] = last_index;
                parts.pop();
            }
        }
        let elements = &parts[1..];
        let mut index: u64 = 0;
        for (i, element) in elements.iter().enumerate() {
            let last = i + 1 == elements.len();
            let digits = if last {
                *element
            } else {
                element.strip_prefix('x').ok_or_else(|| {
                    bad(format!(
                        "index element `{}` must start with `x` (all but the last do)",
                        element.escape_debug()
                    ))
                })?
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!(
                    "index element `{}` is not three digits",
                    element.escape_debug()
                )));
            }
            let group: u64 = digits.parse().expect("three digits");
            index = index
                .checked_mul(1000)
                .and_then(|v| v.checked_add(group))
                .ok_or_else(|| bad("the tile index is too large"))?;
        }
        let path = TilePath { kind, index, width };
        // One index, one path: `x000/005` is not 5, and every part is in canonical form.
        if encode_path(&path) != text {
            return Err(bad(format!(
                "`{}` is not the canonical form `{}`",
                text.escape_debug(),
                encode_path(&path)
            )));
        }
        Ok(path)
    }

    /// The leaves `start..end` of level 0 this tile covers (for entry bundles), or `None`
    /// when beyond any tree.
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        let level = match self.kind {
            TileKind::Hashes { level } => level as u32,
            TileKind::Entries => 0,
        };
        let span = 1u64.checked_shl(8 * level)?;
        let start = self.index.checked_mul(TILE_WIDTH)?.checked_mul(span)?;
        let end = self
            .index
            .checked_mul(TILE_WIDTH)?
            .checked_add(self.width)?
            .checked_mul(span)?;
        Some((start, end))
    }

    /// Whether the tree of `size` leaves determines this tile.
    pub fn within(&self, size: u64) -> bool {
        self.leaf_range().is_some_and(|(_, end)| end <= size)
    }
}

/// The hash tile `path` of the tree of `size` leaves (`size <= tree.len()`).
pub fn hash_tile(tree: &MerkleTree, size: u64, path: &TilePath) -> Result<Vec<u8>, TileError> {
    let TileKind::Hashes { level } = path.kind else {
        return Err(bad("an entry bundle is not a hash tile"));
    };
    if !path.within(size) || size > tree.len() {
        return Err(TileError::NotFound(format!(
            "the tree of {size} leaves has no tile {}",
            encode_path(path)
        )));
    }
    let first = path.index * TILE_WIDTH;
    let mut out = Vec::with_capacity(path.width as usize * 32);
    for i in first..first + path.width {
        let node = tree
            .subtree(8 * level as u32, i)
            .ok_or_else(|| TileError::NotFound(format!("tile {} is beyond the tree", encode_path(path))))?;
        out.extend_from_slice(node);
    }
    Ok(out)
}

/// Appends one entry to a bundle; refuses an entry a `u16` length cannot describe.
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), usize> {
    let len = u16::try_from(entry.len()).map_err(|_| entry.len())?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::{leaf_hash, node_hash};

    #[test]
    fn index_encoding_follows_the_spec_example() {
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
        let p = TilePath::parse("2/x001/x234/067.p/8").unwrap();
        assert_eq!(
            p,
            TilePath {
                kind: TileKind::Hashes { level: 2 },
                index: 1_234_067,
                width: 8
            }
        );
        let e = TilePath::parse("entries/x018/x446/x744/x073/x709/x551/615").unwrap();
        assert_eq!((e.kind, e.index, e.width), (TileKind::Entries, u64::MAX, 256));
        assert_eq!(e.leaf_range(), None);
    }

    #[test]
    fn refuses_every_non_canonical_or_out_of_range_path() {
        for path in [
            "",
            "0",
            "0/",
            "00/000",
            "64/000",
            "-1/000",
            "0/5",
            "0/0005",
            "0/x000/005",
            "0/001/002",
            "0/x001",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "0/000.p/",
            "0/000.p",
            "0/000/.p/5",
            "entries/000.p/1/2",
            "entry/000",
            "0/x018/x446/x744/x073/x709/x551/616",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
            "0/+12",
            "0/٣٣٣",
        ] {
            assert!(TilePath::parse(path).is_err(), "{path:?}");
        }
        assert!(TilePath::parse(&"x".repeat(100)).is_err());
        // A path of 64 bytes is read (here, to find it is not a path); one byte more is refused
        // for its length.
        let e = TilePath::parse(&"0".repeat(MAX_PATH_BYTES)).unwrap_err().to_string();
        assert!(!e.contains("longer"), "{e}");
        let e = TilePath::parse(&"0".repeat(MAX_PATH_BYTES + 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than 64 bytes"), "{e}");
        // The error names the part that is wrong.
        for (path, says) in [
            ("+1/000", "the level `+1`"),
            ("08/000", "the level `08`"),
            ("0/000.p/+8", "the partial width `+8`"),
            ("0/000.p/08", "the partial width `08`"),
        ] {
            let e = TilePath::parse(path).unwrap_err().to_string();
            assert!(e.contains(says), "{path}: {e}");
        }
    }

    #[test]
    fn a_level_one_tile_hashes_full_level_zero_tiles() {
        let leaves: Vec<_> = (0u32..600).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = MerkleTree::from_leaves(leaves.clone());
        let t0 = hash_tile(&tree, 600, &TilePath::parse("0/001").unwrap()).unwrap();
        assert_eq!(&t0[..32], &leaves[256]);
        let p = hash_tile(&tree, 600, &TilePath::parse("0/002.p/88").unwrap()).unwrap();
        assert_eq!(p.len(), 88 * 32);
        assert!(hash_tile(&tree, 600, &TilePath::parse("0/002.p/89").unwrap()).is_err());
        assert!(hash_tile(&tree, 600, &TilePath::parse("0/002").unwrap()).is_err());
        // Served only within the size asked for, even when the tree holds more.
        assert!(hash_tile(&tree, 511, &TilePath::parse("0/001").unwrap()).is_err());
        // A smaller tree's tile is served from the same hashes; a size past the tree is not.
        assert_eq!(hash_tile(&tree, 512, &TilePath::parse("0/001").unwrap()).unwrap(), t0);
        let e = hash_tile(&tree, 768, &TilePath::parse("0/002").unwrap()).unwrap_err();
        assert!(matches!(e, TileError::NotFound(_)), "{e}");
        let t1 = hash_tile(&tree, 600, &TilePath::parse("1/000.p/2").unwrap()).unwrap();
        let mut level: Vec<_> = leaves[256..512].to_vec();
        while level.len() > 1 {
            level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        assert_eq!(&t1[32..], &level[0]);
    }

    /// An entry bundle holds each entry after its length, two bytes big-endian; an entry whose
    /// length does not fit is refused, naming its length, and the bundle is left as it was.
    #[test]
    fn bundles_entries_after_their_length() {
        let mut bundle = Vec::new();
        push_entry(&mut bundle, b"ab").unwrap();
        push_entry(&mut bundle, &[7; 300]).unwrap();
        assert_eq!(&bundle[..6], &[0, 2, b'a', b'b', 1, 44]);
        assert_eq!(bundle.len(), 2 + 2 + 2 + 300);
        assert_eq!(push_entry(&mut bundle, &vec![0; 65_536]), Err(65_536));
        assert_eq!(bundle.len(), 306);
        push_entry(&mut bundle, &vec![0; 65_535]).unwrap();
        assert_eq!(&bundle[306..308], &[255, 255]);
    }
}
