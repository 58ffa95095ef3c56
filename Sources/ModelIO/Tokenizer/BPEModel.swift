import Foundation

/// The BPE model of `tokenizer.json`: a vocabulary, ranked merges, and what to do with characters
/// the vocabulary lacks (byte fallback to `<0xNN>` tokens, or the unknown token).
///
/// Word-piece markers as the reference library applies them: `end_of_word_suffix` (CLIP's `</w>`) is
/// appended to the last character of each word before lookup, `continuing_subword_prefix` prepended
/// to every other character but the first; a merge of `a` and `prefix + b` yields `a + b`.
///
/// Merging follows the reference library exactly: the adjacent pair with the lowest merge rank is
/// merged first, leftmost first among equal ranks, until no ranked pair is left.
struct BPEModel: Sendable {
    let vocab: [String: Int]
    let idToToken: [Int: String]
    /// (left id, right id) → (rank, merged id).
    let merges: [BPEPair: BPEMerge]
    let unkID: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// `continuing_subword_prefix` / `end_of_word_suffix` (empty: none).
    let subwordPrefix: String
    let wordSuffix: String
    /// `<0xNN>` ids, looked up once, for byte fallback.
    let byteIDs: [Int?]

    init(json: JSONValue) throws {
        let type = json["type"]?.stringValue ?? "BPE"
        guard type == "BPE" else {
            throw TokenizerError("unsupported model type '\(type)' (only BPE is implemented)")
        }
        guard let vocabObject = json["vocab"]?.objectValue else {
            throw TokenizerError("model: missing 'vocab' object")
        }
        var vocab: [String: Int] = [:]
        var idToToken: [Int: String] = [:]
        vocab.reserveCapacity(vocabObject.count)
        for (token, value) in vocabObject {
            guard let id = value.intValue, id >= 0 else {
                throw TokenizerError("model.vocab: id of '\(token)' is not a non-negative integer")
            }
            vocab[token] = id
            idToToken[id] = token
        }
        if let dropout = json.tokPresent("dropout"), (dropout.doubleValue ?? 0) != 0 {
            throw TokenizerError("model: BPE dropout \(dropout) is not supported (encoding would be random)")
        }
        func marker(_ key: String) throws -> String {
            guard let v = json.tokPresent(key) else { return "" }
            guard let s = v.stringValue else { throw TokenizerError("model: BPE '\(key)' must be a string, found \(v)") }
            return s
        }
        let prefix = try marker("continuing_subword_prefix"), suffix = try marker("end_of_word_suffix")
        var merges: [BPEPair: BPEMerge] = [:]
        let list = json["merges"]?.arrayValue ?? []
        merges.reserveCapacity(list.count)
        for (rank, entry) in list.enumerated() {
            let parts: [String]
            if let s = entry.stringValue {
                // "a b": the split is at the first space; tokens themselves never hold a plain space
                // in this form (that is why the list form was introduced).
                guard let space = s.firstIndex(of: " ") else {
                    throw TokenizerError("model.merges[\(rank)]: '\(s)' is not of the form 'a b'")
                }
                parts = [String(s[..<space]), String(s[s.index(after: space)...])]
            } else if let a = entry.arrayValue, a.count == 2, let l = a[0].stringValue, let r = a[1].stringValue {
                parts = [l, r]
            } else {
                throw TokenizerError("model.merges[\(rank)]: expected \"a b\" or [a, b], got \(entry)")
            }
            guard let l = vocab[parts[0]], let r = vocab[parts[1]] else {
                throw TokenizerError("model.merges[\(rank)]: '\(parts[0])' or '\(parts[1])' is not in the vocabulary")
            }
            // The right part loses its continuing-subword prefix in the merged token.
            let right = !prefix.isEmpty && parts[1].hasPrefix(prefix) ? String(parts[1].dropFirst(prefix.count)) : parts[1]
            guard let m = vocab[parts[0] + right] else {
                throw TokenizerError("model.merges[\(rank)]: merged token '\(parts[0] + right)' is not in the vocabulary")
            }
            let key = BPEPair(left: l, right: r)
            if merges[key] == nil { merges[key] = BPEMerge(rank: rank, id: m) }
        }
        self.vocab = vocab
        self.idToToken = idToToken
        self.merges = merges
        subwordPrefix = prefix
        wordSuffix = suffix
        if let unk = json.tokPresent("unk_token")?.stringValue {
            guard let id = vocab[unk] else {
                throw TokenizerError("model: unk_token '\(unk)' is not in the vocabulary")
            }
            unkID = id
        } else {
            unkID = nil
        }
        fuseUnk = json.tokBool("fuse_unk", default: false)
        byteFallback = json.tokBool("byte_fallback", default: false)
        ignoreMerges = json.tokBool("ignore_merges", default: false)
        byteIDs = (0..<256).map { vocab[String(format: "<0x%02X>", $0)] }
    }

    /// The ids of one pre-tokenized word.
    func tokenize(_ word: String, into out: inout [Int]) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocab[word] {
            out.append(id)
            return
        }
        var symbols: [Int] = []
        var lastWasUnk = false
        let scalars = Array(word.unicodeScalars)
        for (i, scalar) in scalars.enumerated() {
            var piece = String(scalar)
            if i > 0 && !subwordPrefix.isEmpty { piece = subwordPrefix + piece }
            if i == scalars.count - 1 && !wordSuffix.isEmpty { piece += wordSuffix }
            if let id = vocab[piece] {
                symbols.append(id)
                lastWasUnk = false
                continue
            }
            if byteFallback {
                let bytes = Array(String(scalar).utf8)
                let ids = bytes.compactMap { byteIDs[Int($0)] }
                if ids.count == bytes.count {
                    symbols.append(contentsOf: ids)
                    lastWasUnk = false
                    continue
                }
            }
            // Without an unknown token the reference library drops the character; so do we.
            guard let unk = unkID else { continue }
            if fuseUnk && lastWasUnk { continue }
            symbols.append(unk)
            lastWasUnk = true
        }
        applyMerges(&symbols)
        out.append(contentsOf: symbols)
    }

    /// Lowest rank first, leftmost first: a heap of candidate pairs over a linked list of symbols,
    /// so that long unsplit words (sentencepiece-style tokenizers have no pre-tokenizer) stay fast.
    private func applyMerges(_ symbols: inout [Int]) {
        let n = symbols.count
        if n < 2 { return }
        var ids = symbols
        var next = Array(1...n)           // n means "none"
        var prev = Array(-1..<(n - 1))    // -1 means "none"
        var alive = [Bool](repeating: true, count: n)
        var heap = BPEHeap()
        for i in 0..<(n - 1) {
            if let m = merges[BPEPair(left: ids[i], right: ids[i + 1])] {
                heap.push(BPECandidate(rank: m.rank, position: i, left: ids[i], right: ids[i + 1]))
            }
        }
        while let c = heap.pop() {
            let i = c.position
            guard alive[i], ids[i] == c.left else { continue }
            let j = next[i]
            guard j < n, ids[j] == c.right, let m = merges[BPEPair(left: c.left, right: c.right)], m.rank == c.rank else {
                continue
            }
            ids[i] = m.id
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            let p = prev[i]
            if p >= 0, let pm = merges[BPEPair(left: ids[p], right: ids[i])] {
                heap.push(BPECandidate(rank: pm.rank, position: p, left: ids[p], right: ids[i]))
            }
            let q = next[i]
            if q < n, let qm = merges[BPEPair(left: ids[i], right: ids[q])] {
                heap.push(BPECandidate(rank: qm.rank, position: i, left: ids[i], right: ids[q]))
            }
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        var k = 0
        while k < n {
            out.append(ids[k])
            k = next[k]
        }
        symbols = out
    }
}

struct BPEPair: Hashable, Sendable {
    let left: Int
    let right: Int
}

struct BPEMerge: Sendable {
    let rank: Int
    let id: Int
}

struct BPECandidate {
    let rank: Int
    let position: Int
    let left: Int
    let right: Int

    func precedes(_ other: BPECandidate) -> Bool {
        rank != other.rank ? rank < other.rank : position < other.position
    }
}

/// A binary min-heap ordered by (rank, position).
struct BPEHeap {
    private var items: [BPECandidate] = []

    mutating func push(_ c: BPECandidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> BPECandidate? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count && items[l].precedes(items[best]) { best = l }
                if r < items.count && items[r].precedes(items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top
    }
}
