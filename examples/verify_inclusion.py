#!/usr/bin/env python3
"""Verify a tradeledger inclusion proof with nothing but the standard library.

Usage:
    verify_inclusion.py PROOF.json [CHECKPOINT.txt]

PROOF.json is the `inclusionProof` object of a GraphQL response (or the whole response):
    { revision, treeSize, leafIndex, canonical, hashes, rootHash }
When a checkpoint note (`GET /checkpoint`, or `checkpoint { note }`) is given too, the
proof's root must be the root it states for the same tree size. (This script does not check
the note's Ed25519 signature: `tradeledger witness` or any signed-note library does.)

The leaf is SHA-256(0x00 || entry), interior nodes SHA-256(0x01 || left || right), and the
path is checked with the algorithm of RFC 9162 section 2.1.3.2. The entry is computed here
from the event: the lines "tradeledger/event/v1", the revision and the hex SHA-256 of the
canonical text, each ending in a newline; for an event recorded in format 1, the canonical
text itself. Exits 0 when the proof holds,
1 when it does not.
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


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        proof = json.load(f)
    proof = proof.get("data", proof).get("inclusionProof", proof)
    leaf = hashlib.sha256(b"\x00" + entry(proof["revision"], proof["canonical"])).digest()
    path = [bytes.fromhex(h) for h in proof["hashes"]]
    root = bytes.fromhex(proof["rootHash"])
    if not verify(proof["leafIndex"], proof["treeSize"], leaf, path, root):
        print(f"FAILED: revision {proof['revision']} is not in the tree of size {proof['treeSize']}")
        return 1
    if len(argv) == 3:
        with open(argv[2], encoding="utf-8") as f:
            origin, size, root64 = f.read().split("\n")[:3]
        if int(size) != proof["treeSize"] or base64.b64decode(root64) != root:
            print(f"FAILED: the checkpoint of {origin} (size {size}) states another root")
            return 1
    print(f"ok: revision {proof['revision']} is leaf {proof['leafIndex']} of the tree of size "
          f"{proof['treeSize']} with root {proof['rootHash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
