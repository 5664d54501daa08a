import Foundation

// SentencePiece's precompiled_charsmap (the Precompiled normalizer of XLM-R, multilingual-e5):
// base64 of a little-endian u32 trie size in bytes, a Darts double-array trie over UTF-8 keys of
// that size, then the pool of NUL-terminated replacement strings the trie's values point into.
// Applied as the `tokenizers` crate (spm_precompiled) applies it, odd rules included:
// - per extended grapheme cluster: a cluster under 6 UTF-8 bytes is looked up whole first, and
//   only when that finds nothing is it looked up one scalar at a time;
// - a lookup takes the SHORTEST key that prefixes the bytes, and the replacement stands for
//   all of them (a cluster "Ａ" + U+0301 whose prefix "Ａ" is a key becomes that key's "A");
// - a NUL byte ends a lookup, as in the C++ original.

struct PrecompiledCharsmap: Sendable {
    private let trie: [UInt32]
    private let pool: [UInt8]

    init(base64: String) throws {
        guard let data = Data(base64Encoded: base64), data.count >= 4 else {
            throw TextError.tokenizer("normalizer Precompiled: precompiled_charsmap is not base64 of a charsmap")
        }
        let bytes = [UInt8](data)
        func u32(at offset: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
        }
        let trieBytes = Int(u32(at: 0))
        guard trieBytes % 4 == 0, 4 + trieBytes <= bytes.count, trieBytes > 0 else {
            throw TextError.tokenizer("normalizer Precompiled: a trie of \(trieBytes) bytes does not fit a charsmap of \(bytes.count)")
        }
        trie = stride(from: 4, to: 4 + trieBytes, by: 4).map(u32)
        pool = Array(bytes[(4 + trieBytes)...])
        guard String(bytes: pool, encoding: .utf8) != nil else {
            throw TextError.tokenizer("normalizer Precompiled: the replacement strings are not UTF-8")
        }
    }

    func normalize(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for cluster in text {
            let bytes = Array(cluster.utf8)
            if bytes.count < 6, let replacement = replacement(for: bytes) {
                out += replacement
                continue
            }
            for scalar in cluster.unicodeScalars {
                let scalarBytes = Array(String(scalar).utf8)
                out += replacement(for: scalarBytes) ?? scalarBytes[...]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The replacement of the shortest trie key that prefixes `key`, nil when none does.
    func replacement(for key: [UInt8]) -> ArraySlice<UInt8>? {
        // A Darts unit: bits 0-7 the label, bit 8 "has a leaf", bits 10-31 the offset to the
        // children (shifted left 8 more when bit 9 is set); a leaf unit holds a value in bits 0-30.
        func offset(_ unit: UInt32) -> Int { Int(unit >> 10) << Int((unit & (1 << 9)) >> 6) }
        var node = offset(trie[0])
        for byte in key {
            if byte == 0 { break }
            node ^= Int(byte)
            guard node < trie.count, trie[node] & ((1 << 31) | 0xFF) == UInt32(byte) else { return nil }
            let hasLeaf = (trie[node] >> 8) & 1 == 1
            node ^= offset(trie[node])
            guard node < trie.count else { return nil }
            if hasLeaf {
                let start = Int(trie[node] & ((1 << 31) - 1))
                guard start <= pool.count else { return nil }
                let end = pool[start...].firstIndex(of: 0) ?? pool.count
                return pool[start..<end]
            }
        }
        return nil
    }
}
