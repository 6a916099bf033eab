#!/usr/bin/env python3
"""Verifies SM2 certificate signatures with gmssl (PyPI), an SM2 implementation independent of
govtrust's (RustCrypto) and OpenSSL's.

    sm2_chain.py ISSUER.der CERT.der [ISSUER.der CERT.der ...]

Each pair: CERT's signature (SM2 with SM3, ID 1234567812345678) must verify under ISSUER's
public key. Before trusting gmssl's verdicts, the script checks that it refuses the same
signature over a changed TBS and under another key. Exit 0 when every pair verifies; 1 with the
reason otherwise. Only the standard library and gmssl.
"""
import sys

from gmssl import sm2


def tlv(data, at):
    """(tag, start of value, end of value) of the DER element at `at`."""
    tag = data[at]
    length = data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def children(data, start, end):
    """The (tag, value start, value end, element start) of each element in data[start:end]."""
    out = []
    at = start
    while at < end:
        tag, value, after = tlv(data, at)
        out.append((tag, value, after, at))
        at = after
    return out


def parse(der):
    """(raw TBS, r, s, uncompressed public point) of a certificate."""
    _, start, end = tlv(der, 0)
    tbs, alg, signature = children(der, start, end)
    raw_tbs = der[tbs[3]:tbs[2]]
    fields = children(der, tbs[1], tbs[2])
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    spki = fields[5]
    _, key = children(der, spki[1], spki[2])
    point = der[key[1] + 1:key[2]]  # BIT STRING: skip the unused-bits byte
    bits = der[signature[1] + 1:signature[2]]
    _, seq_start, seq_end = tlv(bits, 0)
    r, s = [int.from_bytes(bits[v:e], "big") for (_, v, e, _) in children(bits, seq_start, seq_end)]
    return raw_tbs, r, s, point


def verifies(point, tbs, r, s):
    if len(point) != 65 or point[0] != 4:
        raise SystemExit("not an uncompressed SM2 point")
    key = sm2.CryptSM2(private_key=None, public_key="00")
    key.public_key = point[1:].hex()  # set directly: the constructor's lstrip("04") can eat digits
    return bool(key.verify_with_sm3("%064x%064x" % (r, s), tbs))


def main(paths):
    if not paths or len(paths) % 2:
        raise SystemExit("usage: sm2_chain.py ISSUER.der CERT.der [...]")
    pairs = [(paths[i], paths[i + 1]) for i in range(0, len(paths), 2)]
    for issuer_path, cert_path in pairs:
        issuer = parse(open(issuer_path, "rb").read())
        tbs, r, s, _ = parse(open(cert_path, "rb").read())
        if not verifies(issuer[3], tbs, r, s):
            print(f"{cert_path}: signature does not verify under {issuer_path}")
            return 1
        changed = bytearray(tbs)
        changed[len(changed) // 2] ^= 1
        if verifies(issuer[3], bytes(changed), r, s):
            print("gmssl accepted a signature over a changed TBS: not a verifier to rely on")
            return 1
        other = parse(open(cert_path, "rb").read())[3]
        if other != issuer[3] and verifies(other, tbs, r, s):
            print("gmssl accepted a signature under another key: not a verifier to rely on")
            return 1
        print(f"{cert_path}: verified under {issuer_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
