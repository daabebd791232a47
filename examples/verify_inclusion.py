#!/usr/bin/env python3
"""Verify a tradeledger inclusion proof with nothing but the standard library.

Usage:
    verify_inclusion.py PROOF.json [CHECKPOINT.txt]

PROOF.json is the `inclusionProof` object of a GraphQL response (or the whole response):
    { revision, treeSize, leafIndex, canonical, hashes, rootHash }
`leafIndex`, `canonical`, `hashes` and `rootHash` are needed; `revision` is `leafIndex + 1`
when it is not selected, and `treeSize` may come from the checkpoint instead. When a
checkpoint note (`GET /checkpoint`, or `checkpoint { note }`) is given too, the proof's root
must be the root it states for the same tree size. (This script does not check the note's
Ed25519 signature: `tradeledger witness` or any signed-note library does.)

The leaf is SHA-256(0x00 || entry), interior nodes SHA-256(0x01 || left || right), and the
path is checked with the algorithm of RFC 9162 section 2.1.3.2. The entry is computed here
from the event: the lines "tradeledger/event/v1", the revision and the hex SHA-256 of the
canonical text, each ending in a newline; for an event recorded in format 1, the canonical
text itself. Exits 0 when the proof holds, 1 when it does not, 2 when the input is not a
proof (naming what is missing).
"""
import base64
import hashlib
import json
import sys


def verify(leaf_index, tree_size, leaf, path, root):
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def entry(revision, canonical):
    data = canonical.encode("utf-8")
    if canonical.startswith('{"format":1,'):
        return data
    return f"tradeledger/event/v1\n{revision}\n{hashlib.sha256(data).hexdigest()}\n".encode()


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    return 2


def read_proof(path):
    """The proof object in PROOF.json, or the reason it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return None, f"cannot read {path}: {e}"
    if isinstance(doc, dict) and "data" in doc:
        if not isinstance(doc["data"], dict):
            return None, f"{path} is a response without data: {doc.get('errors')}"
        doc = doc["data"]
    if isinstance(doc, dict) and isinstance(doc.get("inclusionProof"), dict):
        doc = doc["inclusionProof"]
    if not isinstance(doc, dict):
        return None, f"{path} holds no inclusionProof object"
    missing = [k for k in ("leafIndex", "canonical", "hashes", "rootHash") if k not in doc]
    if missing:
        return None, f"the proof has no {', '.join(missing)}: select them in the inclusionProof query"
    return doc, None


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    proof, why = read_proof(argv[1])
    if why:
        return fail(why)
    checkpoint = None
    if len(argv) == 3:
        with open(argv[2], encoding="utf-8") as f:
            lines = f.read().split("\n")
        if len(lines) < 3 or not lines[1].isdigit():
            return fail(f"{argv[2]} is not a checkpoint note (origin, size, root)")
        checkpoint = (lines[0], int(lines[1]), base64.b64decode(lines[2]))
    tree_size = proof.get("treeSize", checkpoint[1] if checkpoint else None)
    if tree_size is None:
        return fail("the proof has no treeSize: select it in the inclusionProof query, or give the checkpoint")
    revision = proof.get("revision", proof["leafIndex"] + 1)
    leaf = hashlib.sha256(b"\x00" + entry(revision, proof["canonical"])).digest()
    path = [bytes.fromhex(h) for h in proof["hashes"]]
    root = bytes.fromhex(proof["rootHash"])
    if not verify(proof["leafIndex"], tree_size, leaf, path, root):
        print(f"FAILED: revision {revision} is not in the tree of size {tree_size}")
        return 1
    if checkpoint:
        origin, size, checkpoint_root = checkpoint
        if size != tree_size or checkpoint_root != root:
            print(f"FAILED: the checkpoint of {origin} (size {size}) states another root")
            return 1
    print(f"ok: revision {revision} is leaf {proof['leafIndex']} of the tree of size "
          f"{tree_size} with root {proof['rootHash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
