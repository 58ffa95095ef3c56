/// The `post_processor` of tokenizer.json: adds the special tokens around an encoded sequence
/// (LLaMA's `<s>` in front, BERT's [CLS]/[SEP]) when special tokens are requested.
indirect enum PostProcessor: Sendable {
    case sequence([PostProcessor])
    /// Each item is either the sequence itself (nil) or a list of special token ids.
    case template([[Int]?])
    case identity

    init(json: JSONValue) throws {
        let type = try json.tokString("type", in: "post_processor")
        switch type {
        case "Sequence":
            guard let list = json["processors"]?.arrayValue else {
                throw TokenizerError("post_processor Sequence: missing 'processors' list")
            }
            self = .sequence(try list.map { try PostProcessor(json: $0) })
        case "ByteLevel":
            // Only adjusts offsets; ids are unchanged.
            self = .identity
        case "TemplateProcessing":
            guard let single = json["single"]?.arrayValue else {
                throw TokenizerError("post_processor TemplateProcessing: missing 'single' template")
            }
            let specials = json["special_tokens"]?.objectValue ?? [:]
            self = .template(try single.map { item in
                if let seq = item["Sequence"] {
                    guard seq["id"]?.stringValue == "A" else {
                        throw TokenizerError("post_processor TemplateProcessing: single template refers to sequence \(seq["id"] ?? .null)")
                    }
                    return nil
                }
                guard let name = item["SpecialToken"]?["id"]?.stringValue else {
                    throw TokenizerError("post_processor TemplateProcessing: unknown template item \(item)")
                }
                guard let ids = specials[name]?["ids"]?.arrayValue?.compactMap(\.intValue) else {
                    throw TokenizerError("post_processor TemplateProcessing: special token '\(name)' has no ids in special_tokens")
                }
                return ids
            })
        case "BertProcessing", "RobertaProcessing":
            guard let cls = json["cls"]?.arrayValue, cls.count == 2, let clsID = cls[1].intValue,
                  let sep = json["sep"]?.arrayValue, sep.count == 2, let sepID = sep[1].intValue else {
                throw TokenizerError("post_processor \(type): 'cls' and 'sep' must be [token, id]")
            }
            self = .template([[clsID], nil, [sepID]])
        default:
            throw TokenizerError("unsupported post_processor '\(type)' (supported: TemplateProcessing, ByteLevel, Sequence, BertProcessing, RobertaProcessing)")
        }
    }

    func apply(_ ids: [Int]) -> [Int] {
        switch self {
        case .identity: return ids
        case .sequence(let list): return list.reduce(ids) { $1.apply($0) }
        case .template(let items):
            var out: [Int] = []
            for item in items {
                if let special = item { out.append(contentsOf: special) } else { out.append(contentsOf: ids) }
            }
            return out
        }
    }
}
